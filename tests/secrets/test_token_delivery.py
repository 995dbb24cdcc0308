"""An expired token (401) is re-fetched and delivery continues: provider + client + native
sink against the mock OpenMetadata, which refuses expired JWTs with 401 as the real one does."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from secrets_fixtures import MakeJwt, VaultStandIn
from wait_support import wait_until

from relay._clock import SystemClock
from relay._config import (
    AwsSecretConfig,
    BreakerConfig,
    ForwarderConfig,
    OpenMetadataConfig,
    SpoolConfig,
    VaultConfig,
)
from relay._events import SpooledEvent
from relay._exceptions import SinkSetupError
from relay._forward.forwarder import Forwarder
from relay._ingest.envelope import parse_event
from relay._observe.metrics import Metrics
from relay._secrets import TokenProvider, make_token_provider
from relay._sinks.base import DELIVERED
from relay._sinks.client import OpenMetadataClient
from relay._sinks.openlineage import BATCH_PATH, OpenLineageSink
from relay._spool import Spool
from relay.testing.mock_openmetadata import MockOpenMetadata

SPARK_EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events" / "spark"
AWS_REGION = "eu-west-1"  # as the aws_env fixture sets
API_PATH = "secret/data/lineage/openmetadata"


def _events() -> list[SpooledEvent]:
    bodies = [p.read_bytes() for p in sorted(SPARK_EVENTS.glob("*.json"))]
    assert bodies, "the project's Spark sample events are missing"
    now = time.time()
    return [
        SpooledEvent(id=i, body=body, key=parse_event(body), received_at=now)
        for i, body in enumerate(bodies, 1)
    ]


def _expired(make_jwt: Any, sub: str = "bot-v1") -> str:
    return str(make_jwt(time.time() - 60, sub))


def _valid(make_jwt: Any, sub: str = "bot-v2") -> str:
    return str(make_jwt(time.time() + 3600, sub))


def _table(schema: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "databaseSchema": f"hive_prod.warehouse.{schema}",
        "columns": [{"name": "id", "dataType": "BIGINT"}],
    }


# The tables the sample events read and write, so the mock resolves every dataset.
CATALOG = {
    "databaseServices": [{"name": "hive_prod", "serviceType": "Hive"}],
    "databases": [{"name": "warehouse", "service": "hive_prod"}],
    "databaseSchemas": [
        {"name": schema, "database": "hive_prod.warehouse"}
        for schema in ("sales", "crm", "reporting")
    ],
    "tables": [
        _table("sales", "orders"),
        _table("crm", "customers"),
        _table("reporting", "revenue_by_country"),
    ],
}


@pytest.fixture
async def mock() -> AsyncIterator[MockOpenMetadata]:
    # tokens=None: any well-formed token is accepted unless it is an expired JWT (401).
    async with MockOpenMetadata(catalog=CATALOG) as server:
        yield server


def _batch_statuses(mock: MockOpenMetadata) -> list[int]:
    return [r["status"] for r in mock.requests if r["path"] == f"/api{BATCH_PATH}"]


@asynccontextmanager
async def _sink(config: OpenMetadataConfig, provider: TokenProvider) -> AsyncIterator[Any]:
    async with OpenMetadataClient(config, metrics=Metrics(), tokens=provider) as client:
        yield OpenLineageSink(client, config)


async def test_vault_token_refetched_on_401(
    mock: MockOpenMetadata, vault: VaultStandIn, make_jwt: MakeJwt
) -> None:
    vault.secrets[API_PATH] = {"token": _expired(make_jwt)}
    config = OpenMetadataConfig(
        host_port=mock.url,
        sink="openlineage",
        vault=VaultConfig(address=vault.address, path="lineage/openmetadata"),
    )
    provider = make_token_provider(
        config, clock=SystemClock(), environ={"VAULT_TOKEN": vault.vault_token}
    )
    events = _events()
    async with provider, _sink(config, provider) as sink:
        await provider.token()  # cached by a relay that has been running; it has expired
        vault.secrets[API_PATH] = {"token": _valid(make_jwt)}  # rotated in Vault
        results = await sink.send(events)
    assert list(results) == [DELIVERED] * len(events)
    assert _batch_statuses(mock) == [401, 200]
    assert len(vault.requests) == 2
    assert len(mock.openlineage_events) == len(events)


@pytest.mark.usefixtures("aws_env")
async def test_aws_token_refetched_on_401(
    mock: MockOpenMetadata, moto_server: str, make_jwt: MakeJwt
) -> None:
    name = f"lineage-relay/delivery/{time.monotonic_ns()}"
    async with get_session().create_client(
        "secretsmanager", region_name=AWS_REGION, endpoint_url=moto_server
    ) as admin:
        await admin.create_secret(Name=name, SecretString=json.dumps({"jwt": _expired(make_jwt)}))
        aws = AwsSecretConfig(
            secret_id=name, region=AWS_REGION, field="jwt", endpoint_url=moto_server
        )
        config = OpenMetadataConfig(host_port=mock.url, sink="openlineage", aws_secret=aws)
        provider = make_token_provider(config, clock=SystemClock())
        events = _events()
        async with provider, _sink(config, provider) as sink:
            await provider.token()
            await admin.put_secret_value(
                SecretId=name, SecretString=json.dumps({"jwt": _valid(make_jwt)})
            )
            results = await sink.send(events)
    assert list(results) == [DELIVERED] * len(events)
    assert _batch_statuses(mock) == [401, 200]
    assert len(mock.openlineage_events) == len(events)


async def test_file_token_refetched_on_401_then_rotation_delivers(
    mock: MockOpenMetadata, tmp_path: Path, make_jwt: MakeJwt, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text(_expired(make_jwt))
    config = OpenMetadataConfig(host_port=mock.url, sink="openlineage", jwt_token_file=str(path))
    metrics = Metrics()
    provider = make_token_provider(config, clock=SystemClock(), metrics=metrics)
    events = _events()
    async with provider, _sink(config, provider) as sink:
        # The file still holds the expired token: re-read after the 401, the same token, so
        # the batch fails as a setup problem and the forwarder keeps the events.
        with pytest.raises(SinkSetupError, match="401") as info:
            await sink.send(events)
        fetched = metrics.token_fetches.labels(source="jwt_token_file", result="ok")
        assert fetched._value.get() == 2  # first read + the re-fetch after the 401
        assert _batch_statuses(mock) == [401]  # no second call with the same refused token
        # Kubernetes updates the mounted secret: the next call picks it up, no 401 needed.
        path.write_text(_valid(make_jwt))
        results = await sink.send(events)
    assert list(results) == [DELIVERED] * len(events)
    assert _batch_statuses(mock) == [401, 200]
    assert len(mock.openlineage_events) == len(events)
    assert path.read_text() not in str(info.value) and path.read_text() not in caplog.text


async def test_env_token_refetched_on_401_and_a_restart_delivers(
    mock: MockOpenMetadata, make_jwt: MakeJwt, caplog: pytest.LogCaptureFixture
) -> None:
    config = OpenMetadataConfig(host_port=mock.url, sink="openlineage", jwt_token_env="OM_JWT")
    expired = _expired(make_jwt)
    events = _events()
    with caplog.at_level(logging.WARNING):
        provider = make_token_provider(config, clock=SystemClock(), environ={"OM_JWT": expired})
        async with provider, _sink(config, provider) as sink:
            with pytest.raises(SinkSetupError, match="401"):
                await sink.send(events)
    assert "$OM_JWT" in caplog.text and "restart" in caplog.text
    assert _batch_statuses(mock) == [401]
    # An environment variable cannot change under a running process: the relay restarts.
    provider = make_token_provider(
        config, clock=SystemClock(), environ={"OM_JWT": _valid(make_jwt)}
    )
    async with provider, _sink(config, provider) as sink:
        results = await sink.send(events)
    assert list(results) == [DELIVERED] * len(events)
    assert len(mock.openlineage_events) == len(events)
    assert expired not in caplog.text


async def test_forwarder_keeps_events_through_401s_and_delivers_after_rotation(
    mock: MockOpenMetadata, tmp_path: Path, make_jwt: MakeJwt
) -> None:
    token_path = tmp_path / "token"
    token_path.write_text(_expired(make_jwt))
    config = OpenMetadataConfig(
        host_port=mock.url,
        sink="openlineage",
        jwt_token_file=str(token_path),
        retry_delay_ms=20,
        retry_max_delay_ms=100,
    )
    metrics = Metrics()
    spool = await Spool.open(SpoolConfig(dir=tmp_path / "spool"), metrics=metrics)
    bodies = [event.body for event in _events()]
    provider = make_token_provider(config, clock=SystemClock(), metrics=metrics)
    try:
        await spool.append([(body, parse_event(body)) for body in bodies])
        async with (
            provider,
            OpenMetadataClient(config, metrics=metrics, tokens=provider) as client,
        ):
            forwarder = Forwarder(
                spool,
                OpenLineageSink(client, config),
                forwarder=ForwarderConfig(linger_ms=0),
                openmetadata=config,
                breaker=BreakerConfig(recovery_timeout_s=0.1, max_recovery_timeout_s=0.2),
                metrics=metrics,
            )
            await forwarder.start()
            try:
                await wait_until(lambda: _batch_statuses(mock).count(401) >= 2)
                assert spool.stats().events == len(bodies)  # all kept
                assert spool.stats().dead_letters == 0
                token_path.write_text(_valid(make_jwt))  # the secret is rotated
                await wait_until(lambda: spool.stats().events == 0)
            finally:
                await forwarder.aclose()
        assert spool.stats().dead_letters == 0
    finally:
        await spool.aclose()
    assert sorted(json.dumps(e, sort_keys=True) for e in mock.openlineage_events) == sorted(
        json.dumps(json.loads(body), sort_keys=True) for body in bodies
    )
    assert _batch_statuses(mock)[-1] == 200
