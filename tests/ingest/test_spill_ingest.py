"""Spill files (what a Spark plugin could not post) taken up by a real relay into its spool.

A real `Relay` (spool on disk, no delivery: `tests/ingest/conftest.py`) with `ingest.spill_dir`;
the tests write spill files the way the plugin does (`spark_plugin._spill.Spill`) or damage
them by hand, and poll for conditions with a bound, never sleep for a duration. Delivery of
spilled events to OpenMetadata is `tests/plugin/test_spill_job.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ingest_support import spooled
from relay_support import StartRelay
from wait_support import wait_until

from relay._app import Relay
from relay.testing.events import run_event_pairs
from spark_plugin._spill import Spill


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "spill"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def start(start_relay: StartRelay, spill_dir: Path) -> StartRelay:
    async def started(**overrides: Any) -> Relay:
        settings = {"ingest.spill_dir": str(spill_dir), "ingest.spill_interval_s": 0.05}
        return await start_relay(**{**settings, **overrides})

    return started


def files(spill_dir: Path) -> list[Path]:
    return [p for p in spill_dir.iterdir() if p.is_file()]


def received(relay: Relay) -> float:
    value: float = relay.metrics.events_received.labels(endpoint="spill")._value.get()
    return value


async def spooled_bodies(relay: Relay) -> list[bytes]:
    return [event.body for event in await spooled(relay)]


async def test_a_spill_file_goes_into_the_spool_and_is_deleted(
    start: StartRelay, spill_dir: Path
) -> None:
    lines = run_event_pairs(20)
    assert Spill(spill_dir, "app-1-run", max_bytes=1 << 20).write(lines).written == 40
    relay = await start()
    await wait_until(lambda: not files(spill_dir) and received(relay) == 40)
    assert await spooled_bodies(relay) == lines  # byte for byte, in file order
    assert not (spill_dir / "quarantine").exists()


async def test_a_file_written_while_the_relay_runs_is_taken_up(
    start: StartRelay, spill_dir: Path
) -> None:
    relay = await start()
    lines = run_event_pairs(3)
    Spill(spill_dir, "later-app", max_bytes=1 << 20).write(lines)
    await wait_until(lambda: not files(spill_dir) and received(relay) == 6)
    assert await spooled_bodies(relay) == lines


async def test_a_truncated_file_keeps_its_good_events_and_quarantines_the_cut_line(
    start: StartRelay, spill_dir: Path
) -> None:
    lines = run_event_pairs(5)
    whole = b"".join(line + b"\n" for line in lines)
    keep = len(lines[-1]) - len(lines[-1]) // 2
    cut = whole[: len(whole) - len(lines[-1]) - 1 + keep]  # the last event cut in its middle
    (spill_dir / "crashed-app.ndjson").write_bytes(cut)
    relay = await start()
    await wait_until(lambda: not files(spill_dir) and received(relay) == 9)
    assert await spooled_bodies(relay) == lines[:-1]
    quarantined = list((spill_dir / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith("crashed-app.")
    assert quarantined[0].read_bytes() == lines[-1][:keep] + b"\n"
    assert relay.metrics.events_rejected.labels(reason="spill_bad_line")._value.get() == 1


async def test_garbage_is_quarantined_and_the_relay_keeps_working(
    start: StartRelay, spill_dir: Path
) -> None:
    good = run_event_pairs(2)
    bad = [b"\x00\xff\xfe garbage", b'{"eventTime": "t"}', b"[1, 2]", b"{not json"]
    mixed = [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3], good[3]]
    (spill_dir / "mixed.ndjson").write_bytes(b"\n".join(mixed) + b"\n")
    (spill_dir / "binary.ndjson").write_bytes(os.urandom(4096).replace(b"\n", b"\x01"))
    relay = await start()
    await wait_until(lambda: not files(spill_dir) and received(relay) == 4)
    assert await spooled_bodies(relay) == good
    kept = b"".join(p.read_bytes() for p in (spill_dir / "quarantine").iterdir())
    assert all(line in kept for line in bad)
    extra = run_event_pairs(1, job="after")[0]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{relay.url}/api/v1/lineage", data=extra) as resp,
    ):
        assert resp.status == 201  # HTTP ingest is unharmed
    assert await spooled_bodies(relay) == [*good, extra]


async def test_the_same_events_in_two_files_are_queued_once(
    start: StartRelay, spill_dir: Path
) -> None:
    lines = run_event_pairs(4)
    relay = await start()
    Spill(spill_dir, "first", max_bytes=1 << 20).write(lines)
    await wait_until(lambda: not files(spill_dir) and received(relay) == 8)
    # the same events again, e.g. a file taken up before a crash removed it
    Spill(spill_dir, "again", max_bytes=1 << 20).write([*lines, *run_event_pairs(1)])
    await wait_until(lambda: not files(spill_dir) and received(relay) == 10)
    bodies = await spooled_bodies(relay)
    assert len(bodies) == 10 and bodies[:8] == lines


async def test_a_file_claimed_before_a_crash_is_taken_up_at_start(
    start: StartRelay, spill_dir: Path
) -> None:
    lines = run_event_pairs(2)
    (spill_dir / "app.ndjson.ingesting").write_bytes(b"".join(x + b"\n" for x in lines))
    (spill_dir / ".app.ndjson.123.tmp").write_bytes(b"half a file")  # a plugin crashed mid-write
    relay = await start()
    await wait_until(lambda: received(relay) == 4)
    assert await spooled_bodies(relay) == lines
    await wait_until(lambda: not (spill_dir / "app.ndjson.ingesting").exists())
    assert (spill_dir / ".app.ndjson.123.tmp").exists()  # never taken for a spill file


async def test_a_directory_every_user_can_write_is_refused(
    start: StartRelay, spill_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Spill(spill_dir, "app", max_bytes=1 << 20).write(run_event_pairs(1))
    spill_dir.chmod(0o777)
    relay = await start()
    await wait_until(lambda: "every local user" in caplog.text)
    assert files(spill_dir) and received(relay) == 0
