"""HashiCorp Vault KV v2 as a token source, over its HTTP API with aiohttp."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp

from .._config import Secret, VaultConfig
from .._exceptions import AuthError, ConfigError
from .._observe.logging import register_secret
from ._source import MAX_DETAIL_CHARS, Source, clean_token, read_secret_file, token_in

__all__ = ["VaultSource", "vault_ssl"]


class VaultSource(Source):
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
            vault_token = clean_token(read_secret_file(Path(self._config.token_file), where), where)
        elif self._vault_token:
            vault_token = clean_token(self._vault_token.reveal(), self._token_where())
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
        return ": " + "; ".join(str(e) for e in errors)[:MAX_DETAIL_CHARS]

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
        fix = "set openmetadata.vault.field to the key holding the token"
        return token_in(data, field, self.where, noun="field", fix=fix)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def vault_ssl(vault: VaultConfig) -> ssl.SSLContext | bool:
    if not vault.ca_bundle:
        return True  # aiohttp's default: the system trust store, verification on
    try:
        return ssl.create_default_context(cafile=vault.ca_bundle)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(
            f"openmetadata.vault.ca_bundle = {vault.ca_bundle!r} holds no usable PEM "
            f"certificate ({exc}): point it at the CA certificate(s) in PEM format"
        ) from exc
