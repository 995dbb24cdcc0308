"""Fixtures for the token sources: a Vault stand-in (the fake clock, the moto server and the
fake AWS credentials are shared: `clock`, `moto_server` and `aws_env` in tests/conftest.py).

Registered for the folder by its conftest.py (which only imports them), so the code is
type-checked under its own module name.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay._config import Secret


@dataclass
class VaultStandIn:
    """A KV v2 endpoint that checks the token and namespace and records every request."""

    vault_token: str = "s.vault-root"
    namespace: str = ""
    secrets: dict[str, Any] = field(default_factory=dict)  # api path -> data.data (or None)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    status_override: int | None = None
    address: str = ""
    ca_bundle: str = ""
    gate: asyncio.Event | None = None  # when set, answers wait for it (a hanging Vault)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers)))
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.status_override is not None:
            return web.json_response({"errors": ["Vault is sealed"]}, status=self.status_override)
        if request.headers.get("X-Vault-Token") != self.vault_token:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        if self.namespace and request.headers.get("X-Vault-Namespace") != self.namespace:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        api_path = request.path.removeprefix("/v1/")
        if api_path not in self.secrets:
            return web.json_response({"errors": []}, status=404)
        version = len(self.requests)
        return web.json_response(
            {
                "request_id": "5e0f3bd4-0e3a-4a36-8a3c-26d1b5b6c0c1",
                "lease_duration": 0,
                "renewable": False,
                "data": {
                    "data": self.secrets[api_path],
                    "metadata": {"created_time": "2026-11-26T10:00:00Z", "version": version},
                },
            }
        )


@pytest.fixture
async def vault(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VaultStandIn]:
    """The stand-in on 127.0.0.1; parametrize indirectly with "https" for TLS (trustme CA)."""
    stand_in = VaultStandIn()
    app = web.Application()
    app.router.add_get("/v1/{tail:.*}", stand_in.handle)
    server = TestServer(app, host="127.0.0.1")
    server_ssl = None
    if getattr(request, "param", "http") == "https":
        ca = trustme.CA(organization_name="vault test CA")
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
        stand_in.ca_bundle = str(tmp_path / "vault-ca.pem")
        ca.cert_pem.write_to_path(stand_in.ca_bundle)
    await server.start_server(ssl=server_ssl)
    scheme = "https" if server_ssl else "http"
    stand_in.address = f"{scheme}://127.0.0.1:{server.port}"
    try:
        yield stand_in
    finally:
        if stand_in.gate is not None:
            stand_in.gate.set()
        await server.close()


def make_jwt(exp: float | None, sub: str = "ingestion-bot") -> str:
    """An unsigned-looking JWT with the claims OpenMetadata bot tokens carry."""
    import base64
    import json

    def b64(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims: dict[str, Any] = {"iss": "open-metadata.org", "sub": sub, "isBot": True}
    if exp is not None:
        claims["exp"] = int(exp)
    return f"{b64({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k1'})}.{b64(claims)}.c2lnbmF0dXJl"


MakeJwt = Callable[..., str]


@pytest.fixture(name="make_jwt")
def _make_jwt_fixture() -> MakeJwt:
    return make_jwt


def revealed(token: Secret | None) -> str:
    """The value of a token a provider with a source answered (never None there)."""
    assert token is not None
    return token.reveal()
