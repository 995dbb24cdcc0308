"""The OpenMetadata token: where it comes from, cached, re-fetched on 401 or rotation.

One source per configuration (`OpenMetadataConfig` refuses several):

    jwt_token        inline in the config file (discouraged: warned about once)
    jwt_token_env    an environment variable, read once when the provider is made
    jwt_token_file   a file, re-read when it changes (Kubernetes secret mounts swap a
                     `..data` symlink, which changes the inode we stat)
    vault            HashiCorp Vault KV v2 over HTTP (`GET /v1/<mount>/data/<path>`)
    aws_secret       AWS Secrets Manager through aiobotocore (standard credential chain)

The value is wrapped in a `Secret` the moment it is read. No log line, error message,
repr or metric ever carries it: errors name the source and what to fix instead.

`TokenProvider.token()` is the hot path (every call to OpenMetadata): it answers from the
cache without awaiting anything unless the source changed. `refresh()` is what a sink calls
after a 401; concurrent and repeated refreshes are folded so a storm of 401s costs one fetch.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import aiohttp

from ._aws import require_aws
from ._clock import Clock
from ._config import AwsSecretConfig, OpenMetadataConfig, Secret, VaultConfig
from ._exceptions import AuthError, ConfigError
from ._observe.logging import register_secret

if TYPE_CHECKING:
    from types_aiobotocore_secretsmanager import SecretsManagerClient

    from ._observe.metrics import Metrics

__all__ = ["TokenProvider", "make_token_provider"]

log = logging.getLogger(__name__)

# A storm of 401s (every in-flight request of the pool) costs one fetch per interval.
DEFAULT_MIN_REFRESH_INTERVAL_S = 1.0
# A JWT this close to its `exp` is re-fetched before OpenMetadata refuses it ...
_EXPIRY_SKEW_S = 30.0
# ... but a source that keeps serving an expired token is asked at most this often.
_EXPIRY_RECHECK_S = 30.0
# Vault error texts are short; cap what we copy into our own messages.
_MAX_DETAIL_CHARS = 200


def _clean(raw: str, where: str) -> Secret:
    """Turn what a source holds into a header-safe token, or say what is wrong with it.

    A leading `Bearer ` is dropped: OpenMetadata clients prepend it themselves, so people
    paste it along. Anything but visible ASCII would break (or inject into) the header.
    """
    value = raw.strip()
    if value[:6].lower() == "bearer" and (len(value) == 6 or value[6].isspace()):
        value = value[6:].lstrip()
    if not value:
        raise AuthError(f"{where} is empty: put the OpenMetadata bot's JWT there")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in value):
        raise AuthError(
            f"{where} does not hold a single token (it has spaces, line breaks or non-ASCII "
            "characters): store only the OpenMetadata bot's JWT there"
        )
    return Secret(value)


def _jwt_expiry(token: Secret) -> float | None:
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


class _Source(abc.ABC):
    """Where a token comes from. `where` names it in messages; never holds the value."""

    kind: str = ""  # the metrics label
    # Whether fetching again can give a different value while the relay runs.
    rotatable: ClassVar[bool] = True

    def __init__(self, where: str) -> None:
        self.where = where

    def changed(self) -> bool:
        """Cheap, synchronous: has the source changed since the last fetch?"""
        return False

    @abc.abstractmethod
    async def fetch(self) -> Secret:
        """The current token; `AuthError` naming the source and the fix otherwise."""

    async def aclose(self) -> None:
        """Release what the source holds (sessions, clients)."""
        return None


class _StaticSource(_Source):
    """A value fixed when the relay starts: inline config or an environment variable."""

    rotatable = False

    def __init__(self, kind: str, where: str, raw: str, missing: str) -> None:
        super().__init__(where)
        self.kind = kind
        self._raw = Secret(raw)
        self._missing = missing

    async def fetch(self) -> Secret:
        if not self._raw:
            raise AuthError(self._missing)
        return _clean(self._raw.reveal(), self.where)


_Signature = tuple[int, int, int, int, int]


def _read_secret_file(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthError(f"{where} does not exist: mount the secret there or fix the path") from None
    except PermissionError:
        raise AuthError(
            f"{where} is not readable (permission denied): let the relay's user read it"
        ) from None
    except IsADirectoryError:
        raise AuthError(f"{where} is a directory: point it at the file holding the token") from None
    except UnicodeDecodeError:
        raise AuthError(f"{where} is not UTF-8 text: store only the token there") from None
    except OSError as exc:
        raise AuthError(f"{where} cannot be read ({exc.strerror}): check the mount") from None


class _FileSource(_Source):
    """A token file, re-read whenever its identity or content metadata changes.

    `os.stat` follows symlinks, so the atomic `..data` swap of a Kubernetes secret volume
    shows up as a new inode; an in-place rewrite shows up as a new ctime, mtime or size.
    """

    kind = "jwt_token_file"

    def __init__(self, path: Path) -> None:
        super().__init__(f"openmetadata.jwt_token_file {str(path)!r}")
        self._path = path
        self._seen: _Signature | None = None
        self._fetched = False

    def _signature(self) -> _Signature | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        # ctime too: a same-size rewrite that restores the mtime still moves the ctime.
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def changed(self) -> bool:
        return not self._fetched or self._signature() != self._seen

    async def fetch(self) -> Secret:
        # Stat before reading: a swap in between costs one extra read, never a missed rotation.
        self._seen = self._signature()
        self._fetched = True
        return _clean(_read_secret_file(self._path, self.where), self.where)


class _VaultSource(_Source):
    """HashiCorp Vault KV v2: `GET {address}/v1/{mount}/data/{path}`, `field` of `data.data`."""

    kind = "vault"

    def __init__(
        self,
        config: VaultConfig,
        vault_token: Secret,
        timeout: aiohttp.ClientTimeout,
        ssl_context: ssl.SSLContext | bool,
    ) -> None:
        mount = config.mount.strip("/")
        path = config.path.strip("/")
        # `path` may be given relative to the mount or as the full API path.
        self._api_path = path if path.startswith(f"{mount}/data/") else f"{mount}/data/{path}"
        super().__init__(f"Vault secret {self._api_path!r} at {config.address}")
        self._url = f"{config.address.rstrip('/')}/v1/{self._api_path}"
        self._config = config
        self._vault_token = vault_token  # from token_env, read at the edge
        self._timeout = timeout
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _token_where(self) -> str:
        if self._config.token_file:
            return f"openmetadata.vault.token_file {self._config.token_file!r}"
        return f"${self._config.token_env} (openmetadata.vault.token_env)"

    def _headers(self) -> dict[str, str]:
        if self._config.token_file:
            # Re-read every time: Vault Agent rewrites its token sink when it renews.
            where = self._token_where()
            vault_token = _clean(_read_secret_file(Path(self._config.token_file), where), where)
        elif self._vault_token:
            vault_token = _clean(self._vault_token.reveal(), self._token_where())
        else:
            raise AuthError(
                f"no Vault token for {self.where}: {self._token_where()} is not set; "
                "export it or set openmetadata.vault.token_file"
            )
        register_secret(vault_token)
        headers = {"X-Vault-Token": vault_token.reveal(), "Accept": "application/json"}
        if self._config.namespace:
            headers["X-Vault-Namespace"] = self._config.namespace
        return headers

    async def fetch(self) -> Secret:
        headers = self._headers()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._ssl, limit=2)
            )
        try:
            async with self._session.get(self._url, headers=headers) as resp:
                status = resp.status
                body = await resp.read()
        except TimeoutError:
            raise AuthError(
                f"Vault at {self._config.address} did not answer in time: check that it is up"
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise AuthError(
                f"Vault's TLS certificate at {self._config.address} is not trusted "
                f"({exc.certificate_error}): set openmetadata.vault.ca_bundle to the CA that "
                "signed it"
            ) from None
        except aiohttp.ClientError as exc:
            raise AuthError(f"cannot reach Vault at {self._config.address}: {exc}") from None
        if status == 200:
            return self._extract(body)
        detail = self._errors(body)
        if status == 403:
            raise AuthError(
                f"Vault refused to read {self._api_path!r} (403 permission denied): the token "
                f"from {self._token_where()} is invalid or expired, or its policy lacks `read` "
                "on that path"
            )
        if status == 404:
            raise AuthError(
                f"Vault has no secret at {self._api_path!r} ({self._config.address}): check "
                "openmetadata.vault.mount and openmetadata.vault.path (KV version 2)"
            )
        if status == 503:
            raise AuthError(f"Vault at {self._config.address} is sealed or unavailable{detail}")
        raise AuthError(f"Vault answered {status} for {self._api_path!r}{detail}")

    @staticmethod
    def _errors(body: bytes) -> str:
        try:
            errors = json.loads(body).get("errors")
        except (ValueError, AttributeError):
            return ""
        if not isinstance(errors, list) or not errors:
            return ""
        return ": " + "; ".join(str(e) for e in errors)[:_MAX_DETAIL_CHARS]

    def _extract(self, body: bytes) -> Secret:
        field = self._config.field
        try:
            doc = json.loads(body)
        except ValueError:
            raise AuthError(f"{self.where}: Vault's answer is not JSON") from None
        outer = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(outer, dict) or "data" not in outer:
            raise AuthError(
                f"{self.where}: the answer has no data.data: is the mount a KV version 2 "
                "secrets engine? (KV v1 is not supported)"
            )
        data = outer["data"]
        if data is None:
            raise AuthError(
                f"{self.where}: the latest version is deleted or destroyed: write a new version"
            )
        if not isinstance(data, dict) or field not in data:
            keys = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else "none"
            raise AuthError(
                f"{self.where} has no field {field!r} (fields: {keys}): set "
                "openmetadata.vault.field to the key holding the token"
            )
        value = data[field]
        if not isinstance(value, str):
            raise AuthError(f"{self.where}: field {field!r} is not a string")
        return _clean(value, f"{self.where}, field {field!r}")

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _BotocoreRedactor(logging.Filter):
    """Drop botocore's DEBUG records that carry secrets.

    At DEBUG botocore logs whole response bodies (for GetSecretValue: the token) and the
    signed request (the session token). A relay run with `log_level = debug` must not print
    them, whatever handler is attached, so the filter sits on botocore's own loggers.
    """

    _PREFIXES = ("Response body", "Sending http request", "CanonicalRequest", "StringToSign")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self._PREFIXES))


def _redact_botocore_logs() -> None:
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.auth"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _BotocoreRedactor) for f in logger.filters):
            logger.addFilter(_BotocoreRedactor())


class _AwsSource(_Source):
    """AWS Secrets Manager `GetSecretValue`; optional JSON `field`; standard credential chain."""

    kind = "aws_secret"

    def __init__(self, config: AwsSecretConfig, *, connect_timeout_s: float, read_timeout_s: float):
        super().__init__(f"AWS secret {config.secret_id!r} in {config.region}")
        require_aws("openmetadata.aws_secret.secret_id")
        _redact_botocore_logs()
        self._config = config
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._stack = contextlib.AsyncExitStack()
        self._client: SecretsManagerClient | None = None

    async def _get_client(self) -> SecretsManagerClient:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                connect_timeout=self._connect_timeout_s,
                read_timeout=self._read_timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "secretsmanager",
                    region_name=self._config.region,
                    endpoint_url=self._config.endpoint_url or None,
                    config=config,
                )
            )
        return self._client

    async def fetch(self) -> Secret:
        from botocore import exceptions as bexc

        try:
            client = await self._get_client()
            resp = await client.get_secret_value(SecretId=self._config.secret_id)
        except bexc.ClientError as exc:
            raise AuthError(self._client_error(exc)) from None
        except (bexc.NoCredentialsError, bexc.PartialCredentialsError) as exc:
            raise AuthError(
                f"no usable AWS credentials to read {self.where} ({exc}): configure the "
                "standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an "
                "instance or pod role)"
            ) from None
        except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as exc:
            raise AuthError(f"cannot reach AWS Secrets Manager for {self.where}: {exc}") from None
        except bexc.BotoCoreError as exc:
            raise AuthError(f"reading {self.where} failed: {exc}") from None
        # The stubs type SecretString as always present; the API sends one of the two.
        answer: Mapping[str, object] = resp
        text, binary = answer.get("SecretString"), answer.get("SecretBinary")
        if isinstance(text, str):
            raw = text
        elif isinstance(binary, bytes):
            try:
                raw = binary.decode("utf-8")
            except UnicodeDecodeError:
                raise AuthError(
                    f"{self.where} is binary, not text: store the token as a string"
                ) from None
        else:
            raise AuthError(f"{self.where} has no value: put the token in it")
        return self._extract(raw)

    def _extract(self, raw: str) -> Secret:
        field = self._config.field
        if not field:
            if raw.lstrip().startswith("{"):
                raise AuthError(
                    f"{self.where} holds JSON: set openmetadata.aws_secret.field to the key "
                    "holding the token"
                )
            return _clean(raw, self.where)
        try:
            doc: Any = json.loads(raw)
        except ValueError:
            # `from None`: the decode error keeps the whole document, i.e. the secret.
            raise AuthError(
                f"{self.where} is not JSON but openmetadata.aws_secret.field = {field!r} is set: "
                "store a JSON object, or unset field for a plain-string secret"
            ) from None
        if not isinstance(doc, dict) or field not in doc:
            keys = ", ".join(sorted(map(str, doc))) if isinstance(doc, dict) else "none"
            raise AuthError(
                f"{self.where} has no key {field!r} (keys: {keys}): fix "
                "openmetadata.aws_secret.field"
            )
        value = doc[field]
        if not isinstance(value, str):
            raise AuthError(f"{self.where}: key {field!r} is not a string")
        return _clean(value, f"{self.where}, key {field!r}")

    def _client_error(self, exc: Any) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        message = str(error.get("Message", ""))[:_MAX_DETAIL_CHARS]
        if code == "ResourceNotFoundException":
            return (
                f"AWS Secrets Manager has no {self.where}: check openmetadata.aws_secret.secret_id "
                "and region"
            )
        if code == "AccessDeniedException":
            return (
                f"access to {self.where} denied ({message}): allow secretsmanager:GetSecretValue "
                "(and kms:Decrypt for its key) to the relay's AWS identity"
            )
        if code in (
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ):
            return f"AWS refused the relay's credentials reading {self.where} ({code}): renew them"
        if code == "DecryptionFailure":
            return f"AWS could not decrypt {self.where} ({message}): allow kms:Decrypt on its key"
        return f"reading {self.where} failed: {code}: {message}"

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()


class TokenProvider:
    """The OpenMetadata bearer token, cached; `None` when no token is configured.

    `token()` answers from the cache unless the source changed (file rotation) or the cached
    JWT is about to expire; `refresh()` re-fetches now, after a 401. A fetch that fails while
    a token is cached keeps serving the cached one (the server's answer decides) for
    `token()`, but raises for `refresh()`: the cached one was just refused.
    """

    def __init__(
        self,
        source: _Source | None,
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

    def _stale(self, source: _Source) -> bool:
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

    async def _fetch(self, source: _Source) -> Secret:
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
        exp = self._expires_at = _jwt_expiry(fresh)
        if exp is not None and exp <= self._clock.time() and fresh != self._warned_expired:
            self._warned_expired = fresh  # once per token, not once per retry
            log.warning(
                "the OpenMetadata token from %s expired at %s: OpenMetadata will refuse it; "
                "rotate it at the source",
                source.where,
                _iso(exp),
            )
        return fresh

    def _fetch_failed(self, source: _Source, message: str) -> None:
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


def _vault_ssl(vault: VaultConfig) -> ssl.SSLContext | bool:
    if not vault.ca_bundle:
        return True  # aiohttp's default: the system trust store, verification on
    try:
        return ssl.create_default_context(cafile=vault.ca_bundle)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(
            f"openmetadata.vault.ca_bundle = {vault.ca_bundle!r} holds no usable PEM "
            f"certificate ({exc}): point it at the CA certificate(s) in PEM format"
        ) from exc


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
    source: _Source | None
    if config.jwt_token:
        log.warning(
            "openmetadata.jwt_token is set inline in the configuration: prefer jwt_token_env, "
            "jwt_token_file, vault or aws_secret so the token stays out of config files"
        )
        source = _StaticSource(
            "jwt_token", "openmetadata.jwt_token (inline)", config.jwt_token.reveal(), ""
        )
    elif config.jwt_token_env:
        var = config.jwt_token_env
        where = f"${var} (openmetadata.jwt_token_env)"
        source = _StaticSource(
            "jwt_token_env",
            where,
            env.get(var, ""),
            f"{where} is not set or empty: export the OpenMetadata bot's JWT in it and restart",
        )
    elif config.jwt_token_file:
        source = _FileSource(Path(config.jwt_token_file))
    elif config.vault.enabled:
        vault = config.vault
        vault_token = "" if vault.token_file else env.get(vault.token_env, "")
        timeout = aiohttp.ClientTimeout(
            total=config.read_timeout_ms / 1000, connect=config.connection_timeout_ms / 1000
        )
        source = _VaultSource(vault, Secret(vault_token), timeout, _vault_ssl(vault))
    elif config.aws_secret.enabled:
        source = _AwsSource(
            config.aws_secret,
            connect_timeout_s=config.connection_timeout_ms / 1000,
            read_timeout_s=config.read_timeout_ms / 1000,
        )
    else:
        source = None
    return TokenProvider(source, clock=clock, metrics=metrics)
