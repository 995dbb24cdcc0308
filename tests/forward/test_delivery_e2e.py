"""Events posted to a real relay reach the mock OpenMetadata's native endpoint (real HTTP).

Each test runs an in-process `Relay` (ingest, spool on disk, forwarder; the shared
`start_forwarding_relay` fixture) and the in-process `MockOpenMetadata` (`mock`) on loopback
ports, and waits for conditions (never for durations).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from forward_support import fresh_copies, spark_samples
from openmetadata_support import MOCK_TOKEN
from prometheus_client.parser import text_string_to_metric_families
from relay_support import StartRelay
from wait_support import wait_until

from relay._app import Relay
from relay._events import EventKey
from relay._sinks.openlineage import BATCH_PATH
from relay.testing.mock_openmetadata import MockOpenMetadata

TOKEN = MOCK_TOKEN  # the shared `mock` fixture's
NATIVE = "/api/v1/openlineage/lineage/batch"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_batch(http: aiohttp.ClientSession, relay: Relay, bodies: list[bytes]) -> int:
    payload = b"[" + b",".join(bodies) + b"]"
    async with http.post(
        f"{relay.url}/api/v1/lineage/batch",
        data=payload,
        headers={"Content-Type": "application/json"},
    ) as response:
        return response.status


async def post_one(http: aiohttp.ClientSession, relay: Relay, body: bytes) -> int:
    async with http.post(
        f"{relay.url}/api/v1/lineage", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status


def pending(relay: Relay) -> int:
    assert relay.spool is not None
    return relay.spool.stats().events


def native_calls(mock: MockOpenMetadata) -> list[dict[str, Any]]:
    return [r for r in mock.requests if r["path"] == NATIVE]


def received_bodies(mock: MockOpenMetadata) -> collections.Counter[bytes]:
    return collections.Counter(orjson.dumps(e, option=orjson.OPT_SORT_KEYS)
                               for e in mock.openlineage_events)  # fmt: skip


def canonical(bodies: list[bytes]) -> collections.Counter[bytes]:
    return collections.Counter(
        orjson.dumps(orjson.loads(b), option=orjson.OPT_SORT_KEYS) for b in bodies
    )


async def health(http: aiohttp.ClientSession, relay: Relay) -> dict[str, Any]:
    async with http.get(f"{relay.url}/health") as response:
        document: dict[str, Any] = await response.json()
        return document


def counter(relay: Relay, name: str, **labels: str) -> float:
    value = relay.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_posted_events_arrive_in_batches_exactly_once(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    # A linger long enough to gather several of the client's posts into one call.
    relay = await start_forwarding_relay(**{"forwarder.linger_ms": 50})
    items = fresh_copies(30)  # 150 events, 60 runs
    bodies = [body for body, _ in items]
    for start in range(0, len(bodies), 25):
        assert await post_batch(http, relay, bodies[start : start + 25]) in (200, 201)
    # A client retried: the same events again, as single posts and as a batch.
    for body in bodies[:5]:
        assert await post_one(http, relay, body) in (200, 201)
    assert await post_batch(http, relay, bodies[5:10]) in (200, 201)

    await wait_until(lambda: pending(relay) == 0)
    assert received_bodies(mock) == canonical(bodies)  # each exactly once
    calls = native_calls(mock)
    assert all(c["status"] == 200 for c in calls)
    assert len(calls) < len(bodies) / 5  # batched, not one call per event
    assert counter(relay, "openmetadata_lineage_events_sent_total") == len(bodies)
    assert counter(relay, "lineage_relay_events_dropped_total", reason="duplicate") == 10
    assert mock.lineage_edges  # the mock really processed them into lineage


async def test_outage_breaker_opens_then_backlog_drains_without_loss(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "down"})
    relay = await start_forwarding_relay(**{
        "openmetadata.connection_pool_size": 2,
        "breaker.failure_threshold": 3,
        "breaker.recovery_timeout_s": 0.2,
        "breaker.max_recovery_timeout_s": 0.4,
        "forwarder.max_batch_events": 5,
        "forwarder.max_lag_s": 0.3,
    })  # fmt: skip
    items = fresh_copies(12)
    bodies = [body for body, _ in items]
    for start in range(0, 30, 5):
        assert await post_batch(http, relay, bodies[start : start + 5]) in (200, 201)

    await wait_until(lambda: counter(relay, "lineage_relay_circuit_state") == 2)
    # Ingest keeps answering while OpenMetadata is away.
    for start in range(30, len(bodies), 5):
        assert await post_batch(http, relay, bodies[start : start + 5]) in (200, 201)

    async def breaker_reopened() -> bool:
        doc = await health(http, relay)
        return bool(doc["components"]["breaker"]["times_opened"] >= 3)

    await wait_until(breaker_reopened)
    doc = await health(http, relay)
    assert doc["status"] == "degraded"
    assert doc["components"]["breaker"]["state"] in ("open", "half-open")
    assert doc["components"]["forwarding"]["status"] == "degraded"  # older than max_lag_s
    assert doc["components"]["openmetadata"]["last_error"]
    # While open, only probes: every call after the first opening re-opened the breaker.
    failed_calls = counter(
        relay, "lineage_relay_openmetadata_requests_total", endpoint=BATCH_PATH, status="error"
    )
    times_opened = doc["components"]["breaker"]["times_opened"]
    assert failed_calls <= 3 + 1 + times_opened  # threshold + one concurrent + one probe each
    assert pending(relay) == len(bodies)

    await mock.clear_faults()
    await wait_until(lambda: pending(relay) == 0)
    assert received_bodies(mock) == canonical(bodies)
    assert relay.spool is not None and relay.spool.stats().dead_letters == 0
    doc = await health(http, relay)
    assert doc["components"]["breaker"]["state"] == "closed"
    assert doc["status"] == "healthy"
    assert counter(relay, "lineage_relay_circuit_state") == 0
    assert counter(relay, "openmetadata_connection_status") == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    start_forwarding_relay: StartRelay,
    mock: MockOpenMetadata,
    http: aiohttp.ClientSession,
    status: int,
) -> None:
    await mock.set_faults(
        {"mode": "error", "status": status, "retry_after_s": 1, "path": NATIVE, "times": 1}
    )
    relay = await start_forwarding_relay()
    bodies = spark_samples()
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)

    first, second = native_calls(mock)
    assert (first["status"], second["status"]) == (status, 200)
    # Not before the server said: shown on the fake clock (test_forwarder_memory.py), and the
    # header's reading by tests/sinks/test_client.py; here, the round trip over HTTP.
    assert counter(relay, "lineage_relay_retries_total") == 1
    assert received_bodies(mock) == canonical(bodies)


async def test_a_hanging_server_is_cut_by_the_read_timeout(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "hang", "path": NATIVE, "times": 1})
    relay = await start_forwarding_relay(**{"openmetadata.read_timeout_ms": 300})
    bodies = spark_samples()
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)
    assert (
        counter(
            relay,
            "lineage_relay_openmetadata_requests_total",
            endpoint=BATCH_PATH,
            status="timeout",
        )
        == 1
    )
    # The mock logs the hung call when it notices the disconnect, maybe after the retry.
    await wait_until(lambda: len(native_calls(mock)) == 2)
    assert sorted(c["status"] for c in native_calls(mock)) == [0, 200]


async def test_a_refused_event_is_dead_lettered_and_the_rest_delivered(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    items = fresh_copies(3)
    bad_run = items[6][1].run_id  # the child run of the second copy
    assert bad_run is not None
    mock.set_openlineage_failures(
        {"run_id": bad_run, "event_type": "COMPLETE", "reason": "invalid columnLineage facet",
         "retriable": False}
    )  # fmt: skip
    relay = await start_forwarding_relay()
    bodies = [body for body, _ in items]
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)

    assert relay.spool is not None
    [(dead, reason)] = await relay.spool.list_dead_letters()
    assert dead.key.run_id == bad_run and dead.key.event_type == "COMPLETE"
    assert "invalid columnLineage facet" in reason
    assert len(native_calls(mock)) == 1  # the rest of the batch went in the same call
    assert counter(relay, "openmetadata_lineage_events_sent_total") == len(bodies) - 1
    assert counter(relay, "lineage_relay_forward_batches_total", result="partial") == 1


async def test_partial_success_retries_only_the_retriable_events(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    items = fresh_copies(2)
    flaky: EventKey = items[3][1]  # COMPLETE of the first child run
    mock.set_openlineage_failures(
        {"run_id": flaky.run_id, "event_type": "COMPLETE", "reason": "search index busy",
         "retriable": True, "times": 1}
    )  # fmt: skip
    relay = await start_forwarding_relay()
    bodies = [body for body, _ in items]
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)

    calls = native_calls(mock)
    assert len(calls) == 2
    assert len(calls[0]["body"]["events"]) == len(bodies)
    assert [e["run"]["runId"] for e in calls[1]["body"]["events"]] == [flaky.run_id]
    assert relay.spool is not None and relay.spool.stats().dead_letters == 0
    assert counter(relay, "openmetadata_lineage_events_sent_total") == len(bodies)


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (403, "EditLineage"),  # a permission problem: a configuration problem, not poison
        (404, 'openmetadata.sink = "rest"'),  # an OpenMetadata without the native endpoint
    ],
)
async def test_a_setup_problem_keeps_events_degrades_health_and_says_what_to_fix(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture, status: int, fix: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.ERROR, logger="relay._forward.forwarder")
    await mock.set_faults({"mode": "error", "status": status, "path": NATIVE})
    relay = await start_forwarding_relay(**{"breaker.failure_threshold": 100})
    bodies = spark_samples()
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: len(native_calls(mock)) >= 2)
    doc = await health(http, relay)
    assert doc["status"] == "degraded"
    problem = doc["components"]["openmetadata"]["problem"]
    assert fix in problem and str(status) in problem
    assert pending(relay) == len(bodies)  # kept, not dead-lettered
    assert relay.spool is not None and relay.spool.stats().dead_letters == 0
    # One clear line at ERROR saying what to fix, not one per refused call.
    said = [r.getMessage() for r in caplog.records if r.name == "relay._forward.forwarder"]
    assert len([m for m in said if str(status) in m and fix in m]) == 1, said
    assert TOKEN not in caplog.text

    await mock.clear_faults()  # (permission granted, server upgraded)
    await wait_until(lambda: pending(relay) == 0)
    assert received_bodies(mock) == canonical(bodies)
    doc = await health(http, relay)
    assert "problem" not in doc["components"]["openmetadata"]


async def test_a_restart_in_the_middle_of_a_drain_delivers_the_rest(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    await mock.set_faults({"mode": "slow", "latency_ms": 100, "path": NATIVE})
    settings = {
        "forwarder.max_batch_events": 5,
        "forwarder.linger_ms": 0,
        "openmetadata.connection_pool_size": 1,
    }
    first = await start_forwarding_relay(**settings)
    bodies = [body for body, _ in fresh_copies(16)]  # 80 events, 16 calls at 100 ms each
    assert await post_batch(http, first, bodies) in (200, 201)
    await wait_until(lambda: len(mock.openlineage_events) >= 15)
    await first.aclose()
    left = pending(first)
    assert 0 < left < len(bodies)

    second = await start_forwarding_relay(**settings, **{"spool.dir": str(first.config.spool.dir)})
    assert pending(second) == left
    await wait_until(lambda: pending(second) == 0)
    # A graceful stop lets the call in flight finish and be acked: nothing twice, nothing lost.
    assert received_bodies(mock) == canonical(bodies)


async def test_no_token_keeps_events_and_names_the_source(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("RELAY_TEST_OM_TOKEN", raising=False)
    relay = await start_forwarding_relay(**{
        "openmetadata.jwt_token_file": "",
        "openmetadata.jwt_token_env": "RELAY_TEST_OM_TOKEN",
        "breaker.failure_threshold": 100,
    })  # fmt: skip
    bodies = spark_samples()
    assert await post_batch(http, relay, bodies) in (200, 201)

    async def degraded() -> bool:
        doc = await health(http, relay)
        return "problem" in doc["components"]["openmetadata"]

    await wait_until(degraded)
    doc = await health(http, relay)
    assert "RELAY_TEST_OM_TOKEN" in doc["components"]["openmetadata"]["problem"]
    assert pending(relay) == len(bodies)
    assert native_calls(mock) == []  # nothing sent without a token


async def test_an_event_the_server_refuses_with_400_is_isolated_and_the_rest_delivered(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    # The relay checks only the envelope; OpenMetadata refuses the whole batch (400, no
    # per-event results) because one runId is not a UUID: the relay splits to find it.
    items = fresh_copies(3)
    run = items[7][1].run_id
    assert run is not None
    bad = items[7][0].replace(run.encode(), b"not-a-uuid")
    bodies = [body for body, _ in items]
    bodies[7] = bad
    relay = await start_forwarding_relay(**{"forwarder.linger_ms": 200})
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)

    assert relay.spool is not None
    [(dead, reason)] = await relay.spool.list_dead_letters()
    assert dead.body == bad
    assert reason.startswith("HTTP 400") and "runId" in reason  # the server's message
    good = [b for b in bodies if b != bad]
    assert received_bodies(mock) == canonical(good)
    statuses = [c["status"] for c in native_calls(mock)]
    assert statuses.count(400) >= 2 and statuses.count(200) >= 2  # halves, not one by one
    assert len(statuses) <= 2 * 4 + 1  # about two calls per halving of 15 events
    assert counter(relay, "lineage_relay_dead_letters_total", reason="http_400") == 1


def _families(text: str) -> dict[str, tuple[str, set[tuple[str, tuple[str, ...]]]]]:
    """name -> (type, {(sample name, sorted label names)}) from a Prometheus exposition."""
    out: dict[str, tuple[str, set[tuple[str, tuple[str, ...]]]]] = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels))) for s in family.samples}
        out[family.name] = (family.type, samples)
    return out


async def test_the_delivery_metrics_and_health_components_are_exported(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    # One retried call (503) and one dead letter, so every labelled series has a sample.
    await mock.set_faults({"mode": "error", "status": 503, "path": NATIVE, "times": 1})
    items = fresh_copies(1)
    refused_run = items[1][1].run_id  # the child run: its START, RUNNING and COMPLETE
    mock.set_openlineage_failures(
        {"run_id": refused_run, "reason": "unknown table", "retriable": False}
    )
    relay = await start_forwarding_relay()
    bodies = [body for body, _ in items]
    assert await post_batch(http, relay, bodies) in (200, 201)
    await wait_until(lambda: pending(relay) == 0)

    async with http.get(f"{relay.url}/metrics") as response:
        assert response.status == 200
        families = _families(await response.text())
    expected = {
        "openmetadata_lineage_events_sent": (
            "counter", ("openmetadata_lineage_events_sent_total", ())),
        "openmetadata_lineage_send_duration_seconds": (
            "histogram", ("openmetadata_lineage_send_duration_seconds_bucket", ("le",))),
        "openmetadata_connection_status": ("gauge", ("openmetadata_connection_status", ())),
        "lineage_relay_openmetadata_requests": (
            "counter", ("lineage_relay_openmetadata_requests_total", ("endpoint", "status"))),
        "lineage_relay_forward_batches": (
            "counter", ("lineage_relay_forward_batches_total", ("result",))),
        "lineage_relay_retries": ("counter", ("lineage_relay_retries_total", ())),
        "lineage_relay_dead_letters": (
            "counter", ("lineage_relay_dead_letters_total", ("reason",))),
        "lineage_relay_circuit_state": ("gauge", ("lineage_relay_circuit_state", ())),
    }  # fmt: skip
    for name, (kind, sample) in expected.items():
        assert name in families, f"{name} is not exported"
        assert families[name][0] == kind, name
        assert sample in families[name][1], (name, families[name][1])

    def value(name: str, **labels: str) -> float:
        return counter(relay, name, **labels)

    refused = sum(1 for _, key in items if key.run_id == refused_run)
    assert value("openmetadata_lineage_events_sent_total") == len(bodies) - refused
    assert value("lineage_relay_retries_total") == 1
    assert value("lineage_relay_dead_letters_total", reason="http_200") == refused
    assert (
        value("lineage_relay_openmetadata_requests_total", endpoint=BATCH_PATH, status="503") == 1
    )
    assert (
        value("lineage_relay_openmetadata_requests_total", endpoint=BATCH_PATH, status="200") >= 1
    )
    assert value("lineage_relay_forward_batches_total", result="retry") == 1
    assert value("lineage_relay_forward_batches_total", result="partial") >= 1
    assert value("openmetadata_lineage_send_duration_seconds_count") == len(native_calls(mock))
    assert value("openmetadata_connection_status") == 1
    assert value("lineage_relay_circuit_state") == 0

    doc = await health(http, relay)
    assert doc["status"] == "healthy"
    om, breaker = doc["components"]["openmetadata"], doc["components"]["breaker"]
    assert om["status"] == "healthy" and om["last_success"] and "503" in om["last_error"]
    assert breaker["status"] == "healthy" and breaker["state"] == "closed"
    assert doc["components"]["forwarding"]["max_lag_s"] == 300


async def test_health_turns_degraded_when_the_oldest_event_is_older_than_max_lag_s(
    start_forwarding_relay: StartRelay, mock: MockOpenMetadata, http: aiohttp.ClientSession
) -> None:
    # Delivery held up (403, events kept, breaker stays closed): only the lag changes.
    await mock.set_faults({"mode": "error", "status": 403, "path": NATIVE})
    relay = await start_forwarding_relay(
        **{"breaker.failure_threshold": 100, "forwarder.max_lag_s": 1}
    )
    assert await post_batch(http, relay, spark_samples()) in (200, 201)

    async def lag() -> dict[str, Any]:
        component: dict[str, Any] = (await health(http, relay))["components"]["forwarding"]
        return component

    first = await lag()
    if first["oldest_event_age_s"] <= 1:  # (a very slow machine may be past it already)
        assert first["status"] == "healthy"

    async def degraded() -> bool:
        return bool((await lag())["status"] == "degraded")

    await wait_until(degraded)
    component = await lag()
    assert component["oldest_event_age_s"] > 1 and "max_lag_s" in component["error"]
