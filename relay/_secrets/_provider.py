"""The token provider: one source, its token cached, re-fetched on rotation, expiry or 401."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp

from .._clock import Clock
from .._config import OpenMetadataConfig, Secret
from .._exceptions import AuthError
from .._observe.logging import register_secret
from ._aws_secret import AwsSource
from ._source import FileSource, Source, StaticSource
from ._vault import VaultSource, vault_ssl

if TYPE_CHECKING:
    from .._observe.metrics import Metrics

__all__ = ["TokenProvider", "jwt_expiry", "make_token_provider"]

log = logging.getLogger(__name__)

# A storm of 401s (every in-flight request of the pool) costs one fetch per interval.
DEFAULT_MIN_REFRESH_INTERVAL_S = 1.0
# A JWT this close to its `exp` is re-fetched before OpenMetadata refuses it ...
_EXPIRY_SKEW_S = 30.0
# ... but a source that keeps serving an expired token is asked at most this often.
_EXPIRY_RECHECK_S = 30.0


def jwt_expiry(token: Secret) -> float | None:
    """The `exp` claim of a JWT (seconds since the epoch), or None for anything else.

    Read without verifying the signature: only to re-fetch before OpenMetadata says 401.
    """
    parts = token.reveal().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):  # not a JWT after all (UnicodeDecodeError too)
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


class TokenProvider:
    """The OpenMetadata bearer token, cached; `None` when no token is configured.

    `token()` answers from the cache unless the source changed (file rotation) or the cached
    JWT is about to expire; `refresh()` re-fetches now, after a 401. A fetch that fails while
    a token is cached keeps serving the cached one (the server's answer decides) for
    `token()`, but raises for `refresh()`: the cached one was just refused.
    """

    def __init__(
        self,
        source: Source | None,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        min_refresh_interval_s: float = DEFAULT_MIN_REFRESH_INTERVAL_S,
    ) -> None:
        self._source = source
        self._clock = clock
        self._metrics = metrics
        self._min_refresh_interval_s = min_refresh_interval_s
        self._lock = asyncio.Lock()
        self._cached: Secret | None = None
        self._expires_at: float | None = None
        self._fetched_mono: float | None = None
        self._refreshed_mono: float | None = None
        self._failed_mono: float | None = None
        self._last_error: str = ""
        self._warned_static = False
        self._warned_expired: Secret | None = None
        self._closed = False

    @property
    def source(self) -> str:
        """Where the token comes from, for logs and `doctor` (never the value)."""
        return self._source.where if self._source is not None else "none (no token configured)"

    @property
    def enabled(self) -> bool:
        return self._source is not None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("cached" if self._cached else "not fetched")
        return f"<TokenProvider source={self.source} token={state}>"

    __str__ = __repr__

    async def token(self) -> Secret | None:
        """The current token, from the cache when it is still good; `AuthError` if none."""
        if self._source is None:
            return None
        self._check_open()
        if self._cached is not None and not self._stale(self._source):
            return self._cached
        async with self._lock:
            cached = self._cached
            if cached is not None and not self._stale(self._source):
                return cached  # fetched by whoever held the lock
            if cached is None:
                self._raise_if_recently_failed()
                return await self._fetch(self._source)
            try:
                return await self._fetch(self._source)
            except AuthError as exc:
                log.warning("keeping the previous OpenMetadata token: %s", exc)
                return cached

    async def refresh(self, rejected: Secret | None = None) -> Secret | None:
        """Re-fetch now (OpenMetadata answered 401), at most once per interval.

        Pass the token that was refused as `rejected`: if another caller already replaced it,
        the new one is returned without a fetch.
        """
        if self._source is None:
            return None
        self._check_open()
        async with self._lock:
            cached = self._cached
            if rejected is not None and cached is not None and cached != rejected:
                return cached
            now = self._clock.monotonic()
            if (
                self._refreshed_mono is not None
                and now - self._refreshed_mono < self._min_refresh_interval_s
            ):
                if cached is not None:
                    return cached
                self._raise_if_recently_failed()
            self._refreshed_mono = now
            if not self._source.rotatable and not self._warned_static:
                self._warned_static = True
                log.warning(
                    "OpenMetadata refused the token from %s; it cannot change while the relay "
                    "runs: put a valid token there and restart, or use jwt_token_file, vault or "
                    "aws_secret to rotate without a restart",
                    self._source.where,
                )
            fresh = await self._fetch(self._source)
            if fresh == cached:
                log.warning(
                    "re-fetched the OpenMetadata token from %s after a 401 and got the same "
                    "token: rotate it at the source",
                    self._source.where,
                )
            else:
                log.info(
                    "re-fetched the OpenMetadata token from %s after a 401", self._source.where
                )
            return fresh

    def _stale(self, source: Source) -> bool:
        if source.changed():
            return True
        if self._expires_at is None or not source.rotatable:
            return False
        if self._expires_at - _EXPIRY_SKEW_S > self._clock.time():
            return False
        return (
            self._fetched_mono is None
            or self._clock.monotonic() - self._fetched_mono >= _EXPIRY_RECHECK_S
        )

    def _raise_if_recently_failed(self) -> None:
        if (
            self._failed_mono is not None
            and self._clock.monotonic() - self._failed_mono < self._min_refresh_interval_s
        ):
            raise AuthError(self._last_error)

    async def _fetch(self, source: Source) -> Secret:
        self._fetched_mono = self._clock.monotonic()
        try:
            fresh = await source.fetch()
        except AuthError as exc:
            self._fetch_failed(source, str(exc))
            raise
        except Exception as exc:
            # An unforeseen failure of a source library must not reach the forwarder raw.
            message = f"reading the token from {source.where} failed: {type(exc).__name__}"
            log.warning("%s", message, exc_info=True)
            self._fetch_failed(source, message)
            raise AuthError(message) from None
        self._failed_mono = None
        self._count(source.kind, "ok")
        register_secret(fresh)  # scrubbed from every log line, should anything echo it
        self._cached = fresh
        exp = self._expires_at = jwt_expiry(fresh)
        if exp is not None and exp <= self._clock.time() and fresh != self._warned_expired:
            self._warned_expired = fresh  # once per token, not once per retry
            log.warning(
                "the OpenMetadata token from %s expired at %s: OpenMetadata will refuse it; "
                "rotate it at the source",
                source.where,
                _iso(exp),
            )
        return fresh

    def _fetch_failed(self, source: Source, message: str) -> None:
        self._failed_mono = self._fetched_mono
        self._last_error = message
        self._count(source.kind, "error")

    def _count(self, kind: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.token_fetches.labels(source=kind, result=result).inc()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this TokenProvider is closed; make a new one")

    async def aclose(self) -> None:
        """Close the source's sessions and clients; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._cached = None
        if self._source is not None:
            await self._source.aclose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def make_token_provider(
    config: OpenMetadataConfig,
    *,
    clock: Clock,
    environ: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
) -> TokenProvider:
    """Build the provider for the one token source `config` names (or none).

    Environment variables (`jwt_token_env`, `vault.token_env`) are read here, once: this is
    the edge. Nothing is fetched yet; problems surface as `AuthError` from `token()`, so the
    relay still starts and spools events while the token is being fixed. Only an unusable
    `vault.ca_bundle` raises `ConfigError` here.
    """
    env = os.environ if environ is None else environ
    source: Source | None
    if config.jwt_token:
        log.warning(
            "openmetadata.jwt_token is set inline in the configuration: prefer jwt_token_env, "
            "jwt_token_file, vault or aws_secret so the token stays out of config files"
        )
        source = StaticSource(
            "jwt_token", "openmetadata.jwt_token (inline)", config.jwt_token.reveal(), ""
        )
    elif config.jwt_token_env:
        var = config.jwt_token_env
        where = f"${var} (openmetadata.jwt_token_env)"
        source = StaticSource(
            "jwt_token_env",
            where,
            env.get(var, ""),
            f"{where} is not set or empty: export the OpenMetadata bot's JWT in it and restart",
        )
    elif config.jwt_token_file:
        source = FileSource(Path(config.jwt_token_file))
    elif config.vault.enabled:
        vault = config.vault
        vault_token = "" if vault.token_file else env.get(vault.token_env, "")
        timeout = aiohttp.ClientTimeout(
            total=config.read_timeout_ms / 1000, connect=config.connection_timeout_ms / 1000
        )
        source = VaultSource(vault, Secret(vault_token), timeout, vault_ssl(vault))
    elif config.aws_secret.enabled:
        source = AwsSource(
            config.aws_secret,
            connect_timeout_s=config.connection_timeout_ms / 1000,
            read_timeout_s=config.read_timeout_ms / 1000,
        )
    else:
        source = None
    return TokenProvider(source, clock=clock, metrics=metrics)
