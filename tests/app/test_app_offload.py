"""Shutdown drain and S3 offload, and `lineage-relay replay` back into a fresh relay.

Real processes: `lineage-relay serve` (SIGTERM) and `lineage-relay replay`; S3 is moto in
server mode on loopback; OpenMetadata is the mock, in-process on loopback (or nothing at all:
relay_support.RelayProcess points the relay at a port where nothing listens). Conditions are
polled with a bound, never slept for.
"""

from __future__ import annotations

import asyncio
import gzip
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import pytest
from app_support import REPO
from relay_support import RelayProcess, forwarding_settings, relay_config
from wait_support import wait_until

from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay.testing.events import run_event_pairs
from relay.testing.mock_openmetadata import MockOpenMetadata

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

BUCKET = "lineage-offload"
REGION: Final = "eu-west-1"  # as the aws_env fixture sets


def identity(event: dict[str, Any]) -> tuple[str, str]:
    return (event["run"]["runId"], event["eventType"])


@pytest.fixture
async def s3(moto_server: str) -> AsyncIterator[Any]:
    """An S3 client on the moto server, with a fresh bucket (emptied again at the end)."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3", region_name=REGION, endpoint_url=moto_server
    ) as client:
        await client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        try:
            yield client
        finally:
            listed = await client.list_objects_v2(Bucket=BUCKET)
            for item in listed.get("Contents", []):
                await client.delete_object(Bucket=BUCKET, Key=item["Key"])
            await client.delete_bucket(Bucket=BUCKET)


async def object_lines(client: Any, prefix: str) -> tuple[list[str], list[bytes]]:
    listed = await client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    keys = sorted(item["Key"] for item in listed.get("Contents", []))
    lines: list[bytes] = []
    for key in keys:
        response = await client.get_object(Bucket=BUCKET, Key=key)
        async with response["Body"] as body:
            lines.extend(gzip.decompress(await body.read()).splitlines())
    return keys, lines


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "replay", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


async def post_all(url: str, bodies: list[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        half = len(bodies) // 2
        async with http.post(
            f"{url}/api/v1/lineage/batch", data=b"[" + b",".join(bodies[:half]) + b"]"
        ) as resp:
            assert resp.status == 201
        for body in bodies[half:]:
            async with http.post(f"{url}/api/v1/lineage", data=body) as resp:
                assert resp.status == 201


async def post_and_stop(relay: RelayProcess, bodies: list[bytes]) -> None:
    """Post `bodies` to the relay process, then SIGTERM it; it must exit 0."""
    try:
        url = (await asyncio.to_thread(relay.start)).url
        await post_all(url, bodies)
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(relay.wait) == 0


async def spooled_events(spool_dir: Path) -> int:
    async with await Spool.open(relay_config(spool_dir).spool, metrics=Metrics()) as spool:
        return spool.stats().events


async def test_sigterm_with_openmetadata_down_offloads_and_replay_delivers_exactly_once(
    tmp_path: Path, s3: Any, moto_server: str, mock: MockOpenMetadata
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[offload]\ns3_uri = "s3://{BUCKET}/prod"\nendpoint_url = "{moto_server}"\n'
        f'region = "{REGION}"\nmax_object_bytes = 4096\n'
    )
    bodies = run_event_pairs(20)
    relay = RelayProcess(tmp_path, tmp_path / "spool", config=config)
    await post_and_stop(relay, bodies)
    offloaded = [e for e in relay.logs() if e.get("msg", "").startswith("offloaded")]
    assert offloaded and offloaded[0]["offloaded_events"] == 40 and offloaded[0]["left"] == 0

    keys, lines = await object_lines(s3, "prod/")
    assert len(keys) > 1  # max_object_bytes splits the upload into ordered objects
    assert all(key.startswith("prod/") and key.endswith(".ndjson.gz") for key in keys)
    assert lines == bodies  # every event, in arrival order, byte for byte
    assert await spooled_events(tmp_path / "spool") == 0  # in S3 now, not twice

    fresh = tmp_path / "fresh-spool"
    s3_args = ["--s3", f"s3://{BUCKET}/prod", "--endpoint-url", moto_server, "--region", REGION]
    first = await asyncio.to_thread(replay, *s3_args, "--spool-dir", str(fresh))
    assert first.returncode == 0, first.stderr
    assert "40 event(s) queued, 0 queued before" in first.stdout
    again = await asyncio.to_thread(replay, *s3_args, "--spool-dir", str(fresh))
    assert again.returncode == 0, again.stderr
    assert "0 event(s) queued, 40 queued before" in again.stdout  # idempotent
    assert await spooled_events(fresh) == 40

    settings = forwarding_settings(tmp_path, mock.url)
    delivering = RelayProcess(tmp_path, fresh, name="fresh", settings=settings)
    try:
        await asyncio.to_thread(delivering.start)
        await wait_until(lambda: len(mock.openlineage_events) >= 40, within_s=60)
    finally:
        delivering.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(delivering.wait) == 0
    delivered = Counter(map(identity, mock.openlineage_events))
    assert delivered == Counter(identity(orjson.loads(body)) for body in bodies)
    assert set(delivered.values()) == {1}


async def test_sigterm_drains_what_openmetadata_takes_before_exiting(
    tmp_path: Path, mock: MockOpenMetadata
) -> None:
    bodies = run_event_pairs(10)
    await mock.set_faults({"mode": "down"})  # events pile up in the spool first
    settings = forwarding_settings(tmp_path, mock.url, **{
        "openmetadata.retry_delay_ms": 50,
        "openmetadata.retry_max_delay_ms": 200,
        "relay.drain_timeout_s": 30,
    })  # fmt: skip
    relay = RelayProcess(tmp_path, tmp_path / "spool", settings=settings)
    try:
        url = (await asyncio.to_thread(relay.start)).url
        await post_all(url, bodies)
    finally:
        relay.send_signal(signal.SIGTERM)  # while OpenMetadata is still down ...
    try:
        draining = "draining: forwarding for up to 30 s"
        await wait_until(lambda: any(e.get("msg") == draining for e in relay.logs()), within_s=30)
        await mock.clear_faults()  # ... and back during the drain
        assert await asyncio.to_thread(relay.wait, 60) == 0
    finally:
        await asyncio.to_thread(relay.stop)  # a failed test leaves no relay running
    delivered = Counter(map(identity, mock.openlineage_events))
    assert delivered == Counter(identity(orjson.loads(body)) for body in bodies)
    assert await spooled_events(tmp_path / "spool") == 0


async def test_without_offload_the_drain_ends_and_the_spool_keeps_the_events(
    tmp_path: Path,
) -> None:
    relay = RelayProcess(tmp_path, tmp_path / "spool", settings={"relay.drain_timeout_s": 0.5})
    await post_and_stop(relay, run_event_pairs(3))
    assert await spooled_events(tmp_path / "spool") == 6  # delivered at the next start


async def test_offload_to_a_missing_bucket_keeps_the_events_local(
    tmp_path: Path, moto_server: str
) -> None:
    relay = RelayProcess(
        tmp_path,
        tmp_path / "spool",
        settings={
            "offload.s3_uri": "s3://no-such-bucket/x",
            "offload.endpoint_url": moto_server,
            "offload.region": REGION,
        },
    )
    await post_and_stop(relay, run_event_pairs(2))
    cut = [e for e in relay.logs() if e.get("msg", "").startswith("offload cut short")]
    assert cut and "NoSuchBucket" in cut[0]["msg"] and "create the bucket" in cut[0]["msg"]
    assert await spooled_events(tmp_path / "spool") == 4
