"""The ingest endpoints against a real relay and spool, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from ingest_support import EVENTS, spooled
from multidict import CIMultiDict
from relay_support import StartRelay

from relay._app import Relay
from relay._config import load_config
from relay._events import EventKey
from relay._exceptions import ConfigError
from relay._ingest.routes import Appender, IngestToken
from relay.testing.fakes import FakeClock

SPARK = sorted(EVENTS.glob("spark/*.json"))
COMPLETE = (EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_bytes()
NO_RUN_ID = (EVENTS / "invalid_envelope" / "no_run_id.json").read_bytes()


async def post(
    http: aiohttp.ClientSession, url: str, data: object, **headers: str
) -> tuple[int, dict[str, object], dict[str, str]]:
    async with http.post(url, data=data, headers=headers) as resp:
        body = await resp.read()
        return resp.status, (json.loads(body) if body else {}), dict(resp.headers)


def metric(relay: Relay, name: str, **labels: str) -> float:
    value = relay.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/lineage",
        "/api/v1/lineage/",
        "/lineage",
        "/api/v1/openlineage/lineage",
        "/api/v1/lineage?api_key=ignored&app_name=x",
    ],
)
async def test_single_event_paths(relay: Relay, http: aiohttp.ClientSession, path: str) -> None:
    status, body, _ = await post(
        http, relay.url + path, COMPLETE, **{"Content-Type": "application/json"}
    )
    assert (status, body) == (201, {"received": 1})
    [event] = await spooled(relay)
    assert event.body == COMPLETE
    assert event.key.run_id == json.loads(COMPLETE)["run"]["runId"]


@pytest.mark.parametrize(
    ("encode", "headers"),
    [
        (lambda b: gzip.compress(b, 3), {"Content-Encoding": "gzip"}),
        (lambda b: gzip.compress(b, 9), {"Content-Encoding": "x-gzip"}),
        (lambda b: gzip.compress(b), {}),  # some Java clients: gzip without the header
        (lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:]), {"Content-Encoding": "gzip"}),
        (lambda b: b, {"Content-Encoding": "identity"}),
        (lambda b: b, {"Content-Type": "application/json; charset=UTF-8"}),
        (lambda b: b, {"Content-Type": "text/plain"}),
    ],
    ids=["gzip", "x-gzip", "sniffed", "two-members", "identity", "charset", "text-plain"],
)
async def test_encodings_and_content_types(
    relay: Relay, http: aiohttp.ClientSession, encode: object, headers: dict[str, str]
) -> None:
    assert callable(encode)
    for path in SPARK:
        status, _, _ = await post(
            http, relay.url + "/api/v1/lineage", encode(path.read_bytes()), **headers
        )
        assert status == 201
    assert [e.body for e in await spooled(relay)] == [p.read_bytes() for p in SPARK]


@pytest.mark.parametrize("header", [True, False], ids=["with-header", "sniffed"])
async def test_chunked_gzip_body(relay: Relay, http: aiohttp.ClientSession, header: bool) -> None:
    """The Java client's gzip path: streamed, chunked transfer-encoding, no Content-Length."""
    compressed = gzip.compress(COMPLETE)

    async def chunks() -> AsyncIterator[bytes]:
        yield compressed[:1]  # the magic bytes split across chunks
        await asyncio.sleep(0.01)
        for i in range(1, len(compressed), 500):
            yield compressed[i : i + 500]
            await asyncio.sleep(0)

    headers = {"Content-Encoding": "gzip"} if header else {}
    async with http.post(relay.url + "/api/v1/lineage", data=chunks(), headers=headers) as resp:
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert resp.status == 201
    assert [e.body for e in await spooled(relay)] == [COMPLETE]


async def test_empty_gzip_declared_body_is_an_empty_body(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(
        http, relay.url + "/api/v1/lineage", b"", **{"Content-Encoding": "gzip"}
    )
    assert status == 400 and "empty" in str(body["error"])


async def test_batch_endpoints_keep_each_events_bytes(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    bodies = [p.read_bytes() for p in SPARK]
    status, body, _ = await post(
        http, relay.url + "/api/v1/lineage/batch", b"[" + b",\n".join(bodies) + b"]"
    )
    assert (status, body) == (201, {"received": len(bodies)})
    wrapped = b'{"events": [' + b", ".join(bodies) + b"]}"
    status, body, _ = await post(
        http,
        relay.url + "/api/v1/openlineage/lineage/batch",
        gzip.compress(wrapped),
        **{"Content-Encoding": "gzip"},
    )
    assert (status, body) == (201, {"received": len(bodies)})
    assert [e.body for e in await spooled(relay)] == bodies + bodies
    assert metric(
        relay, "lineage_relay_events_received_total", endpoint="/api/v1/lineage/batch"
    ) == len(bodies)


async def test_a_bad_element_refuses_the_whole_batch(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(
        http, relay.url + "/api/v1/lineage/batch", b"[" + COMPLETE + b"," + NO_RUN_ID + b"]"
    )
    assert status == 400 and "event [1] has no run.runId" in str(body["error"])
    assert await spooled(relay) == []


async def test_facet_errors_are_accepted(relay: Relay, http: aiohttp.ClientSession) -> None:
    bodies = [p.read_bytes() for p in sorted(EVENTS.glob("invalid_facet/*.json"))]
    for body in bodies:
        assert (await post(http, relay.url + "/api/v1/lineage", body))[0] == 201
    assert [e.body for e in await spooled(relay)] == bodies


async def test_duplicates_are_kept_for_the_forwarder_to_dedupe(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    for _ in range(2):
        assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201
    first, second = await spooled(relay)
    assert first.key == second.key and first.id < second.id


BOMB = gzip.compress(b"\x20" * (64 * 1024 * 1024), 9)  # 64 MiB of spaces, ~64 KiB compressed
NOISE = gzip.compress(random.Random(4).randbytes(150_000))  # incompressible: ~150 KB on the wire


@pytest.mark.parametrize(
    ("data", "headers", "status", "reason", "named"),
    [
        (b'{"eventTime": ', {}, 400, "malformed_json", "not valid JSON"),
        (b"\xff\xfe", {}, 400, "malformed_json", "not valid JSON"),
        (b"", {}, 400, "invalid_event", "empty"),
        (b'"just a string"', {}, 400, "invalid_event", "JSON string"),
        (b"[1]", {}, 400, "invalid_event", "/api/v1/lineage/batch"),
        (NO_RUN_ID, {}, 400, "invalid_event", "run.runId"),
        (b"x" * (300 * 1024), {}, 413, "too_large", "ingest.max_body_bytes"),
        (BOMB, {"Content-Encoding": "gzip"}, 413, "too_large", "ingest.max_body_bytes"),
        (BOMB, {}, 413, "too_large", "ingest.max_body_bytes"),
        (NOISE, {"Content-Encoding": "gzip"}, 413, "too_large", "max_compressed_bytes"),
        (
            zlib.compress(COMPLETE),
            {"Content-Encoding": "deflate"},
            415,
            "encoding",
            "'deflate' is not supported",
        ),
        (COMPLETE, {"Content-Encoding": "br"}, 415, "encoding", "send gzip or no encoding"),
        (COMPLETE, {"Content-Encoding": "gzip"}, 400, "bad_gzip", "not valid gzip"),
        (
            gzip.compress(COMPLETE)[:-20],
            {"Content-Encoding": "gzip"},
            400,
            "bad_gzip",
            "truncated gzip",
        ),
    ],
    ids=[
        "malformed",
        "not-utf8",
        "empty",
        "non-object",
        "array-on-single",
        "no-run-id",
        "oversize",
        "gzip-bomb",
        "gzip-bomb-no-header",
        "compressed-oversize",
        "deflate",
        "br",
        "not-gzip",
        "truncated-gzip",
    ],
)
async def test_bad_requests_get_the_right_4xx_and_harm_nothing(
    start_relay: StartRelay,
    http: aiohttp.ClientSession,
    data: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
    named: str,
) -> None:
    relay = await start_relay(**{
        "ingest.max_body_bytes": 256 * 1024, "ingest.max_compressed_bytes": 96 * 1024,
    })  # fmt: skip
    got, body, resp_headers = await post(http, relay.url + "/api/v1/lineage", data, **headers)
    assert got == status
    assert resp_headers["Content-Type"].startswith("application/json")
    assert named in str(body["error"])
    assert metric(relay, "lineage_relay_events_rejected_total", reason=reason) == 1
    # ... and the relay keeps serving others.
    assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201
    assert [e.body for e in await spooled(relay)] == [COMPLETE]


async def test_token_auth(
    start_relay: StartRelay, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-ingest-token\n")
    relay = await start_relay(**{"ingest.token_file": str(token_file)})
    url = relay.url + "/api/v1/lineage"
    status, body, headers = await post(http, url, COMPLETE)
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    assert "s3cr3t" not in json.dumps(body)
    assert (await post(http, url, COMPLETE, Authorization="Bearer wrong"))[0] == 401
    assert (await post(http, url, COMPLETE, Authorization="s3cr3t-ingest-token"))[0] == 401
    assert (await post(http, url, COMPLETE, Authorization="Bearer s3cr3t-ingest-token"))[0] == 201
    assert (await post(http, url, COMPLETE, Authorization="bearer  s3cr3t-ingest-token "))[0] == 201
    # The Java client can send two Authorization headers (custom header + auth provider).
    both = CIMultiDict(
        [("Authorization", "Bearer other"), ("Authorization", "Bearer s3cr3t-ingest-token")]
    )
    async with http.post(url, data=COMPLETE, headers=both) as resp:
        assert resp.status == 201
    assert len(await spooled(relay)) == 3
    assert metric(relay, "lineage_relay_events_rejected_total", reason="unauthorized") == 3


async def test_inline_token(start_relay: StartRelay, http: aiohttp.ClientSession) -> None:
    relay = await start_relay(**{"ingest.token": "inline-token-value"})
    url = relay.url + "/api/v1/openlineage/lineage/batch"
    assert (await post(http, url, b'{"events": []}'))[0] == 401
    assert (await post(http, url, b'{"events": []}', Authorization="Bearer inline-token-value"))[
        0
    ] == 201


async def test_spool_full_answers_503_with_retry_after(
    start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    relay = await start_relay(**{"spool.max_bytes": 3 * len(COMPLETE)})
    statuses = []
    for _ in range(5):
        status, body, headers = await post(http, relay.url + "/api/v1/lineage", COMPLETE)
        statuses.append(status)
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [503, 503]
    assert headers["Retry-After"] == "1" and "full" in str(body["error"])
    assert metric(relay, "lineage_relay_events_rejected_total", reason="spool_full") == 2
    async with http.get(relay.url + "/health") as resp:
        assert resp.status == 503
        health = await resp.json()
    assert health["status"] == "degraded" and health["components"]["spool"]["events"] == 3
    assert len(await spooled(relay)) == 3


class _GatedAppender:
    """The real spool behind a gate the test opens: appends wait, holding their slot."""

    def __init__(self, spool: Appender) -> None:
        self.spool = spool
        self.gate = asyncio.Event()
        self.waiting = 0

    async def append(self, items: Sequence[tuple[bytes, EventKey]]) -> list[int]:
        self.waiting += 1
        await self.gate.wait()
        return await self.spool.append(items)


async def test_concurrency_cap_counts_requests_being_stored(
    start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    relay = await start_relay(**{"ingest.max_concurrent_requests": 1})
    assert relay.ingest.spool is not None
    gated = _GatedAppender(relay.ingest.spool)
    relay.ingest.spool = gated
    first = asyncio.create_task(post(http, relay.url + "/api/v1/lineage", COMPLETE))
    while gated.waiting == 0:
        await asyncio.sleep(0.01)
    status, body, headers = await post(http, relay.url + "/api/v1/lineage", COMPLETE)
    assert status == 503 and headers["Retry-After"] == "1"
    assert "ingest.max_concurrent_requests" in str(body["error"])
    gated.gate.set()
    assert (await first)[0] == 201
    assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201


async def test_a_stalled_body_holds_no_slot_and_times_out(
    start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    relay = await start_relay(**{"ingest.max_concurrent_requests": 1, "ingest.read_timeout_s": 0.5})
    release = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield COMPLETE[:100]
        await release.wait()
        yield COMPLETE[100:]

    slow_post = asyncio.create_task(post(http, relay.url + "/api/v1/lineage", slow()))
    while relay.ingest.in_flight == 0:
        await asyncio.sleep(0.01)
    # The stalled body takes no processing slot: another client is served meanwhile.
    assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201
    # The slow client is cut off by the read timeout (408), never holding anything for good.
    try:
        status, body, _ = await slow_post
        assert status == 408 and "ingest.read_timeout_s" in str(body["error"])
    except aiohttp.ClientError:
        pass  # the server closed the connection while the client was still sending
    finally:
        release.set()
    assert metric(relay, "lineage_relay_events_rejected_total", reason="read_timeout") == 1
    assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201


async def test_health_and_metrics(relay: Relay, http: aiohttp.ClientSession) -> None:
    for _ in range(2):
        await post(http, relay.url + "/api/v1/lineage", COMPLETE)
    await post(http, relay.url + "/api/v1/lineage", b"{")
    async with http.get(relay.url + "/health") as resp:
        assert resp.status == 200
        health = await resp.json()
    assert health["status"] == "healthy"
    spool = health["components"]["spool"]
    assert (
        spool["status"] == "healthy"
        and spool["events"] == 2
        and spool["bytes"] == 2 * len(COMPLETE)
    )
    async with http.get(relay.url + "/metrics") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    assert 'lineage_relay_events_received_total{endpoint="/api/v1/lineage"} 2.0' in text
    assert 'lineage_relay_events_rejected_total{reason="malformed_json"} 1.0' in text
    assert "lineage_relay_ingest_duration_seconds_count 2.0" in text
    assert "lineage_relay_spool_events 2.0" in text
    assert f"lineage_relay_spool_bytes {float(2 * len(COMPLETE))}" in text
    for name in (
        "lineage_relay_spool_oldest_event_age_seconds",
        "lineage_relay_spool_corrupt_records_total",
    ):
        assert f"\n{name} " in text


async def test_unknown_paths_and_methods_answer_json(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    async with http.get(relay.url + "/api/v1/lineage") as resp:
        assert resp.status == 405 and "POST" in (await resp.json())["error"]
    async with http.post(relay.url + "/api/v2/lineage", data=COMPLETE) as resp:
        assert resp.status == 404 and "/api/v1/lineage" in (await resp.json())["error"]


async def test_a_multi_megabyte_batch_is_parsed_off_the_loop_byte_exact(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    big = (EVENTS / "spark" / "03_RUNNING_insert_revenue_by_country.json").read_bytes()
    bodies = [big] * 80  # ~2.4 MB
    wrapped = b'{"events":[' + b",".join(bodies) + b"]}"
    assert len(wrapped) > 2 * 1024 * 1024
    status, body, _ = await post(
        http, relay.url + "/api/v1/openlineage/lineage/batch", gzip.compress(wrapped),
        **{"Content-Encoding": "gzip"},
    )  # fmt: skip
    assert (status, body) == (201, {"received": 80})
    assert [e.body for e in await spooled(relay)] == bodies


async def test_drop_oldest_policy_keeps_accepting_and_counts_drops(
    start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    relay = await start_relay(
        **{"spool.max_bytes": 3 * len(COMPLETE), "spool.when_full": "drop_oldest"}
    )
    bodies = [
        COMPLETE.replace(b'"rowCount":1843', f'"rowCount":{1000 + n}'.encode()) for n in range(5)
    ]
    assert all(len(b) == len(COMPLETE) for b in bodies)
    for body in bodies:
        assert (await post(http, relay.url + "/api/v1/lineage", body))[0] == 201
    assert [e.body for e in await spooled(relay)] == bodies[2:]
    assert metric(relay, "lineage_relay_events_dropped_total", reason="spool_full") == 2


def test_token_file_rotation_is_picked_up(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text("first-token-value\n")
    token = IngestToken(
        load_config(None, environ={}, overrides={"ingest.token_file": str(path)}).ingest,
        clock=clock,
    )
    assert token.check(["Bearer first-token-value"])
    path.write_text("second-token-value\n")
    assert token.check(["Bearer first-token-value"])  # re-checked at most once a second
    clock.advance(1.5)
    assert token.check(["Bearer second-token-value"])
    assert not token.check(["Bearer first-token-value"])
    path.unlink()  # a broken mount keeps the last good token instead of locking clients out
    clock.advance(1.5)
    assert token.check(["Bearer second-token-value"])


@pytest.mark.parametrize(("content", "named"), [(None, "cannot read it"), ("  \n", "is empty")])
def test_unusable_token_file_is_a_config_error(
    tmp_path: Path, content: str | None, named: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    config = load_config(None, environ={}, overrides={"ingest.token_file": str(path)}).ingest
    with pytest.raises(ConfigError, match=f"ingest.token_file = .*{named}"):
        IngestToken(config)


async def test_a_client_that_hangs_up_mid_body_harms_nothing(
    relay: Relay, http: aiohttp.ClientSession
) -> None:
    host, port = relay.url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/lineage HTTP/1.1\r\nHost: relay\r\n"
        + f"Content-Length: {len(COMPLETE)}\r\n\r\n".encode()
        + COMPLETE[:1000]
    )
    await writer.drain()
    while relay.ingest.in_flight == 0:
        await asyncio.sleep(0.01)
    writer.close()
    await writer.wait_closed()
    while metric(relay, "lineage_relay_events_rejected_total", reason="incomplete_body") == 0:
        await asyncio.sleep(0.01)
    assert relay.ingest.in_flight == 0
    assert (await post(http, relay.url + "/api/v1/lineage", COMPLETE))[0] == 201
    assert [e.body for e in await spooled(relay)] == [COMPLETE]
