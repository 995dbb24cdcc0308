"""TLS to OpenMetadata: verified by default, a private CA through `ca_bundle`, opt-out is loud."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay._clock import SystemClock
from relay._config import OpenMetadataConfig, Secret
from relay._events import SpooledEvent
from relay._exceptions import ConfigError, SinkSetupError
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._secrets import make_token_provider
from relay._sinks.base import DELIVERED
from relay._sinks.client import OpenMetadataClient
from relay._sinks.openlineage import OpenLineageSink
from relay._sinks.tls import make_ssl_context
from relay.testing.mock_openmetadata import MockOpenMetadata


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="lineage-relay test CA")


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def _version(request: web.Request) -> web.Response:
    return web.json_response({"version": "1.12.0"})


async def _serve_https(ca: trustme.CA, *names: str) -> TestServer:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server_ctx)
    app = web.Application()
    app.router.add_get("/api/v1/system/version", _version)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    return server


@pytest.fixture
async def https_server(ca: trustme.CA) -> AsyncIterator[str]:
    server = await _serve_https(ca, "127.0.0.1", "localhost")
    try:
        yield f"https://127.0.0.1:{server.port}/api"
    finally:
        await server.close()


async def _get_version(base: str, ssl_arg: ssl.SSLContext | bool) -> int:
    connector = aiohttp.TCPConnector(ssl=ssl_arg)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{base}/v1/system/version") as response,
    ):
        await response.read()
        return response.status


async def test_private_ca_is_verified_with_ca_bundle(https_server: str, ca_bundle: str) -> None:
    context = make_ssl_context(OpenMetadataConfig(host_port=https_server, ca_bundle=ca_bundle))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert await _get_version(https_server, context) == 200


async def test_private_ca_is_refused_without_ca_bundle(https_server: str) -> None:
    context = make_ssl_context(OpenMetadataConfig(host_port=https_server))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _get_version(https_server, context)


async def test_the_host_name_is_checked_too(ca: trustme.CA, ca_bundle: str) -> None:
    server = await _serve_https(ca, "openmetadata.internal")  # a name that is not 127.0.0.1
    try:
        base = f"https://127.0.0.1:{server.port}/api"
        context = make_ssl_context(OpenMetadataConfig(host_port=base, ca_bundle=ca_bundle))
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get_version(base, context)
    finally:
        await server.close()


async def test_ssl_verify_false_connects_and_is_loud(
    https_server: str, ca_bundle: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = OpenMetadataConfig(host_port=https_server, ssl_verify=False, ca_bundle=ca_bundle)
    with caplog.at_level(logging.WARNING):
        assert make_ssl_context(config) is False
    assert "VERIFICATION IS OFF" in caplog.text
    assert "ca_bundle is ignored" in caplog.text
    assert await _get_version(https_server, False) == 200


def test_default_is_verification_on() -> None:
    config = OpenMetadataConfig(host_port="https://om.example.com/api")
    assert config.ssl_verify is True
    context = make_ssl_context(config)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_unusable_ca_bundle_names_the_key(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("this is not a certificate\n")
    config = OpenMetadataConfig(host_port="https://om.example.com/api", ca_bundle=str(bogus))
    with pytest.raises(ConfigError, match=r"openmetadata.ca_bundle = .*not-a-ca.pem.* PEM"):
        make_ssl_context(config)


def test_plain_http_needs_no_context_and_warns_off_loopback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        local = OpenMetadataConfig(host_port="http://127.0.0.1:8585/api", jwt_token_env="T")
        assert make_ssl_context(local) is True
        assert caplog.text == ""
        remote = OpenMetadataConfig(
            host_port="http://om.example.com:8585/api", jwt_token=Secret("inline.jwt.value")
        )
        assert make_ssl_context(remote) is True
    assert "unencrypted" in caplog.text and "om.example.com" in caplog.text
    assert "inline.jwt.value" not in caplog.text


# -- the relay's own client and sink against the mock OpenMetadata served over HTTPS --------

SPARK_EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events" / "spark"


def _start_event() -> list[SpooledEvent]:
    # A START without datasets: the mock skips it under its default COMPLETE-only filter.
    body = (SPARK_EVENTS / "01_START_orders_daily.json").read_bytes()
    return [SpooledEvent(id=1, body=body, key=parse_event(body), received_at=time.time())]


@pytest.fixture
async def https_mock(ca: trustme.CA) -> AsyncIterator[MockOpenMetadata]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    mock = MockOpenMetadata(tokens=["tls.test.token"])
    await mock.start(ssl_context=server_ctx, control_port=None)
    try:
        yield mock
    finally:
        await mock.aclose()


async def _send(config: OpenMetadataConfig, metrics: Metrics) -> Any:
    provider = make_token_provider(config, clock=SystemClock())
    async with (
        provider,
        OpenMetadataClient(
            config, metrics=metrics, tokens=provider, ssl_context=make_ssl_context(config)
        ) as client,
    ):
        return await OpenLineageSink(client, config).send(_start_event())


async def test_mock_over_https_is_reached_with_ca_bundle(
    https_mock: MockOpenMetadata, ca_bundle: str
) -> None:
    assert https_mock.url.startswith("https://")
    config = OpenMetadataConfig(
        host_port=https_mock.url,
        sink="openlineage",
        ca_bundle=ca_bundle,
        jwt_token=Secret("tls.test.token"),
    )
    metrics = Metrics()
    assert list(await _send(config, metrics)) == [DELIVERED]
    assert metrics.connection_status._value.get() == 1
    assert len(https_mock.openlineage_events) == 1


async def test_mock_over_https_is_refused_without_ca_bundle(https_mock: MockOpenMetadata) -> None:
    config = OpenMetadataConfig(
        host_port=https_mock.url, sink="openlineage", jwt_token=Secret("tls.test.token")
    )
    metrics = Metrics()
    # A failure the forwarder keeps the events for (a setup problem), not a crash.
    with pytest.raises(SinkSetupError, match=r"certificate not trusted.*openmetadata.ca_bundle"):
        await _send(config, metrics)
    assert metrics.connection_status._value.get() == 0
    assert https_mock.requests == []  # the token never left the relay
