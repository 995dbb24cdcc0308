"""HTTP for the operator commands (`doctor`, `status`, `smoke`): one call, one answer or one error.

The relay's own delivery client (`_sinks/client.py`) carries metrics, the breaker's view and
retries; the operator commands need none of that, only a bounded call with the configured
TLS and token, whose transport failures come back as `CallFailed` with a message an operator
can act on. Tokens go in the header and nowhere else: messages name URLs and statuses only.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from ._config import Config, Secret

__all__ = ["Answer", "CallFailed", "HttpCaller", "relay_url"]

_MAX_MESSAGE_CHARS = 300


def relay_url(config: Config) -> str:
    """Where a local client reaches the relay `config` describes (a wildcard listen: loopback)."""
    host, port = config.relay.host, config.relay.port
    if host in ("0.0.0.0", ""):  # noqa: S104 -- recognising a wildcard, not binding one
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CallFailed(Exception):
    """No HTTP answer: connection refused, timeout, TLS failure. The message says which."""

    def __init__(self, message: str, *, tls: bool = False) -> None:
        super().__init__(message)
        self.tls = tls  # the TLS handshake failed (certificate not trusted, wrong name)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def message(self) -> str:
        """The server's own words: an error body's `message`, else its text (shortened)."""
        doc = self.json()
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return str(doc["message"])[:_MAX_MESSAGE_CHARS]
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return str(doc["error"])[:_MAX_MESSAGE_CHARS]
        text = self.body.decode("utf-8", "replace").strip()
        return text[:_MAX_MESSAGE_CHARS] or "(empty body)"


class HttpCaller:
    """An aiohttp session for a handful of calls to one base URL; an async context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        token: Secret | None = None,
        ssl_context: ssl.SSLContext | bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers={"User-Agent": "lineage-relay"},
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """`method base_url+path`; raises `CallFailed` when no answer came back."""
        url = f"{self.base_url}{path}"
        sent = dict(headers or {})
        if auth and self._token:
            sent["Authorization"] = f"Bearer {self._token.reveal()}"
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        try:
            async with self._session.request(
                method, url, data=data, params=params, headers=sent, allow_redirects=False
            ) as response:
                return Answer(response.status, await response.read(), url)
        except TimeoutError as exc:
            raise CallFailed(f"{method} {url}: no answer within the timeout") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CallFailed(
                f"{method} {url}: TLS certificate not trusted ({exc.certificate_error})", tls=True
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise CallFailed(f"{method} {url}: TLS handshake failed ({exc})", tls=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise CallFailed(f"{method} {url}: cannot connect ({exc.strerror or exc})") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise CallFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
