"""The one HTTP client to OpenMetadata, and the boundary where aiohttp errors stop.

One `aiohttp.ClientSession` per relay, its connection pool sized by
`openmetadata.connection_pool_size`. Every call:

- carries `Authorization: Bearer <token>` from the token provider (when one is set);
  on a 401 the token is re-fetched once and the call repeated once;
- is bounded by `connection_timeout_ms` (socket connect) and `read_timeout_ms` (each
  read: a server that stops sending mid-answer is cut too);
- is recorded in `openmetadata_lineage_send_duration_seconds`,
  `lineage_relay_openmetadata_requests_total{endpoint,status}` and
  `openmetadata_connection_status`;
- is a write, and leaves one line in the audit log when `[audit] path` is set (the
  sink names what the write is about with an `AuditSubject`). A new write method must
  call `_audit` the same way.

aiohttp and OS errors are translated here, most specific first, into `SinkTimeout` and
`RetriableSinkError`; nothing above this module sees an aiohttp exception. Statuses are
returned as `HttpAnswer` so a sink can read per-event results from a 400 body; a sink
then calls `raise_for_status` for the generic rules.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import aiohttp
import aiohttp.payload
import orjson
import yarl
from aiohttp.abc import AbstractStreamWriter

from .._clock import Clock, SystemClock
from .._config import OpenMetadataConfig, Secret
from .._exceptions import (
    AuthError,
    PermanentSinkError,
    RetriableSinkError,
    SinkSetupError,
    SinkTimeout,
)
from .._observe.audit import AuditLog, AuditSubject, Outcome
from .._observe.metrics import Metrics
from .status import Disposition, cap_retry_after, classify_status, parse_retry_after

__all__ = ["HttpAnswer", "OpenMetadataClient", "TokenSource", "raise_for_status", "server_message"]

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 500
_USER_AGENT = "lineage-relay"


class TokenSource(Protocol):
    """What the client needs of `relay._secrets.TokenProvider`."""

    async def token(self) -> Secret | None: ...

    async def refresh(self, rejected: Secret | None = None) -> Secret | None: ...


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A response OpenMetadata gave, fully read."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    url: str
    method: str = "POST"

    def json(self) -> object:
        """The body as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


def server_message(answer: HttpAnswer) -> str:
    """The server's own words: `message` of an OpenMetadata error body, else the text."""
    doc = answer.json()
    if isinstance(doc, dict):
        message = doc.get("message")
        if isinstance(message, str) and message:
            return message[:_MAX_MESSAGE_CHARS]
    text = answer.body.decode("utf-8", "replace").strip()
    return text[:_MAX_MESSAGE_CHARS] or "(empty body)"


def raise_for_status(answer: HttpAnswer, *, clock: Clock, retry_after_max_s: float) -> None:
    """The generic meaning of a status (sinks handle their special cases first)."""
    disposition = classify_status(answer.status)
    if disposition is Disposition.DELIVERED:
        return
    message = server_message(answer)
    where = f"{answer.method} {answer.url} answered {answer.status}"
    if disposition is Disposition.RETRY:
        retry_after = cap_retry_after(
            parse_retry_after(answer.headers.get("Retry-After"), now=clock.time()),
            retry_after_max_s,
        )
        raise RetriableSinkError(
            f"{where}: {message}", status=answer.status, retry_after_s=retry_after
        )
    if disposition is Disposition.AUTH:
        raise SinkSetupError(
            f"{where} even after re-fetching the token: {message}. The events are kept; "
            "give the relay a valid OpenMetadata bot token (openmetadata.jwt_token_* / vault / "
            "aws_secret)",
            status=answer.status,
        )
    if disposition is Disposition.SETUP:
        if answer.status == 403:
            raise SinkSetupError(
                f"{where} (forbidden): {message}. The events are kept; grant the relay's bot "
                "the EditLineage permission (and Create for auto-created entities)",
                status=403,
            )
        location = answer.headers.get("Location", "?")
        raise SinkSetupError(
            f"{where} (redirect to {location}): the relay does not follow redirects; set "
            "openmetadata.host_port to the final API base URL",
            status=answer.status,
        )
    raise PermanentSinkError(
        f"{where}: {message}", status=answer.status, reason=f"HTTP {answer.status}: {message}"
    )


_SLICE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    body: bytes | None
    endpoint: str
    content_type: str
    audit: AuditSubject | None


class _BodyPayload(aiohttp.payload.Payload):
    """A request body handed to the socket in slices of itself, never copied first.

    aiohttp's own choices for a multi-MB body both copy it: `bytes` in one write (and a
    ResourceWarning: it could hold the loop), `BytesIO` once to measure it (`getbuffer`
    un-shares the bytes) and again in 64 KiB reads. Here each slice is a memoryview of the
    body, and the writer drains between slices once its buffer is full, so other calls and
    the spool's answers keep flowing while a 5 MB batch goes out.
    """

    _autoclose = True  # nothing to close: immutable bytes, can be sent again on a retry

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        super().__init__(body, content_type=content_type)
        self._body = body
        self._size = len(body)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._body.decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._body

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._body)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), _SLICE_BYTES):
            await writer.write(view[start : start + _SLICE_BYTES])


class OpenMetadataClient:
    """One pooled aiohttp session to OpenMetadata; an async context manager."""

    def __init__(
        self,
        config: OpenMetadataConfig,
        *,
        metrics: Metrics,
        tokens: TokenSource | None = None,
        ssl_context: ssl.SSLContext | bool | None = None,
        clock: Clock | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._audit_log = audit
        self._tokens = tokens
        self._ssl: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
        self._clock = clock if clock is not None else SystemClock()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.last_success_at: float | None = None  # epoch, for /health
        self.last_error: str = ""
        self.last_error_at: float | None = None

    @property
    def api_base(self) -> str:
        return self._config.api_base

    @property
    def auditing(self) -> bool:
        """Whether writes are audited: a sink builds an `AuditSubject` only then."""
        return self._audit_log is not None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("OpenMetadataClient is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._config.connection_pool_size,
                limit_per_host=self._config.connection_pool_size,
                ssl=self._ssl,
            )
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self._config.connection_timeout_ms / 1000,
                sock_read=self._config.read_timeout_ms / 1000,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"User-Agent": _USER_AGENT},
                raise_for_status=False,
            )
        return self._session

    async def post(
        self, path: str, body: bytes, *, endpoint: str, audit: AuditSubject | None = None
    ) -> HttpAnswer:
        """POST a JSON body to api_base + path; 401 -> re-fetch the token and retry once.

        Returns every HTTP answer (the caller interprets statuses); raises
        `RetriableSinkError`/`SinkTimeout` for transport failures and `AuthError`
        (a `RelayError`) when no token can be obtained.
        """
        return await self.request("POST", path, body, endpoint=endpoint, audit=audit)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        endpoint: str,
        audit: AuditSubject | None = None,
        content_type: str = "application/json",
    ) -> HttpAnswer:
        """Any call (`GET`, `PUT`, `PATCH`, `DELETE`, `POST`), as `post` does it.

        `path` is already URL-encoded (FQNs with `url_fqn`) and may carry a query string.
        Writes (anything but GET) are audited.
        """
        token = await self._token()
        call = _Call(method, path, body, endpoint, content_type, audit)
        answer = await self._call_once(call, token)
        if answer.status == 401 and self._tokens is not None:
            fresh = await self._tokens.refresh(token)
            if fresh != token:  # the same token again would only be refused again
                answer = await self._call_once(call, fresh)
        return answer

    async def _token(self) -> Secret | None:
        if self._tokens is None:
            return None
        try:
            return await self._tokens.token()
        except AuthError as exc:
            self._record_error(str(exc))
            raise

    async def _call_once(self, call: _Call, token: Secret | None) -> HttpAnswer:
        session = self._get_session()
        url = f"{self.api_base}{call.path}"
        method = call.method
        headers = {"Accept": "application/json"}
        if call.body is not None:
            headers["Content-Type"] = call.content_type
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        started = time.perf_counter()
        status_label = "error"
        answer: HttpAnswer | None = None
        error = ""
        try:
            async with session.request(
                method,
                yarl.URL(url, encoded=True),
                data=None if call.body is None else _BodyPayload(call.body, call.content_type),
                headers=headers,
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                status_label = str(response.status)
                answer = HttpAnswer(
                    status=response.status,
                    body=payload,
                    headers=dict(response.headers),
                    url=url,
                    method=method,
                )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            status_label = "timeout"
            message = error = (
                f"{method} {url} timed out (connect {self._config.connection_timeout_ms} ms / "
                f"read {self._config.read_timeout_ms} ms): OpenMetadata is slow or unreachable"
            )
            self._record_error(message)
            raise SinkTimeout(message) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            message = (
                f"{method} {url}: TLS certificate not trusted ({exc.certificate_error}): set "
                "openmetadata.ca_bundle to the CA that signed OpenMetadata's certificate"
            )
            error = message
            self._record_error(message)
            raise SinkSetupError(message) from exc
        except aiohttp.ClientConnectorError as exc:
            message = f"{method} {url}: cannot connect ({exc.strerror or exc}): is OpenMetadata up?"
            error = message
            self._record_error(message)
            raise RetriableSinkError(message) from exc
        except (aiohttp.ClientError, OSError) as exc:
            message = error = f"{method} {url} failed: {type(exc).__name__}: {exc}"
            self._record_error(message)
            raise RetriableSinkError(message) from exc
        finally:
            elapsed_s = time.perf_counter() - started
            self._metrics.send_duration.observe(elapsed_s)
            self._metrics.openmetadata_requests.labels(call.endpoint, status_label).inc()
            if method != "GET":
                self._audit(method, url, call.audit, answer, elapsed_s, error)
        self._record_answer(answer)
        return answer

    def _audit(
        self,
        method: str,
        url: str,
        subject: AuditSubject | None,
        answer: HttpAnswer | None,
        elapsed_s: float,
        error: str,
    ) -> None:
        """One audit line for one write call (nothing when the audit log is off)."""
        if self._audit_log is None:
            return
        outcome: Outcome
        if answer is None:
            outcome, status = "failed", None
            error = error or "no answer (cancelled)"
        elif 200 <= answer.status < 300:
            status = answer.status
            # The native endpoint answers 200 with per-event failures (partial_success).
            outcome = "partial" if b'"partial_success"' in answer.body else "written"
        else:
            outcome, status = "refused", answer.status
            error = server_message(answer)
        self._audit_log.record(
            subject, method=method, url=url, outcome=outcome, status=status,
            duration_s=elapsed_s, error=error,
        )  # fmt: skip

    def _record_answer(self, answer: HttpAnswer) -> None:
        disposition = classify_status(answer.status)
        if disposition in (Disposition.DELIVERED, Disposition.PERMANENT):
            # The server is up and reading our calls (a 400 is about the events, not it).
            self._metrics.connection_status.set(1)
            self.last_success_at = self._clock.time()
        else:
            self._record_error(f"{answer.method} {answer.url} answered {answer.status}")

    def _record_error(self, message: str) -> None:
        self._metrics.connection_status.set(0)
        self.last_error = message
        self.last_error_at = self._clock.time()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await asyncio.shield(session.close())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
