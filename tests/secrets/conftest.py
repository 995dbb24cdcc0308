"""Fixtures for the token sources: a fake clock, a Vault stand-in, a moto server."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

AWS_REGION = "eu-west-1"
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": AWS_REGION,
    # No instance-metadata lookups (there is no network) and no developer profile leaking in.
    "AWS_EC2_METADATA_DISABLED": "true",
}


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
async def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(proc: subprocess.Popen[bytes], url: str, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- loopback http
                return True
        except urllib.error.HTTPError:
            return True  # it answered: it is up
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """AWS in a subprocess (moto server mode) on a free loopback port; its endpoint URL."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, **_FAKE_AWS}
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            if _wait_ready(proc, f"{url}/moto-api/", deadline_s=30):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    pytest.fail(f"moto server did not start; its log: {Path(log_path).read_text()[-2000:]}")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through the standard AWS chain, nothing from the developer's ~/.aws."""
    for name, value in _FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))


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


@pytest.fixture(name="make_jwt")
def _make_jwt_fixture() -> Any:
    return make_jwt
