"""Disk faults under load, on a real size-limited filesystem (a tmpfs mounted for the test).

A full disk: ingest answers 503 with Retry-After (never a 500, never a 201 for what was
not stored), and takes events again once space returns; mounting needs root, without it
that test skips. A disk whose writes fail (read-only, I/O error; injected at the file
layer, as Linux refuses a read-only remount under open files): 503, the relay stops
acknowledging for good (it must be restarted); everything acknowledged before is there
at the next start.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from relay_support import StartRelay, relay_config

from relay._app import Relay
from relay._observe.metrics import Metrics
from relay._spool import Spool

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
COMPLETE = json.loads((EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_text())
CLIENTS = 8


def _event(run_id: str) -> bytes:
    return json.dumps({**COMPLETE, "run": {**COMPLETE["run"], "runId": run_id}}).encode()


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of our own, unmounted at the end."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mountpoint))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _post(
    http: aiohttp.ClientSession, relay: Relay, run_id: str
) -> tuple[int, dict[str, str], str]:
    async with http.post(relay.url + "/api/v1/lineage", data=_event(run_id)) as resp:
        body = await resp.json()
        return resp.status, dict(resp.headers), str(body.get("error", ""))


async def _stored_run_ids(spool_dir: Path) -> set[str]:
    async with await Spool.open(relay_config(spool_dir).spool, metrics=Metrics()) as spool:
        events = await spool.lease(max_events=1_000_000, max_bytes=1 << 40, lease_s=60)
    return {json.loads(e.body)["run"]["runId"] for e in events}


def _fill(mountpoint: Path, leave_bytes: int) -> Path:
    """Take all but about `leave_bytes` of the filesystem with a file of zeros."""
    filler = mountpoint / "filler"
    stat = subprocess.run(
        ["df", "--output=avail", "-B1", str(mountpoint)], capture_output=True, text=True, check=True
    )
    avail = int(stat.stdout.split()[-1])
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, avail - leave_bytes))
    return filler


async def test_a_full_disk_answers_503_and_recovers_when_space_returns(
    small_fs: Path, http: aiohttp.ClientSession, start_relay: StartRelay
) -> None:
    spool_dir = small_fs / "spool"
    relay = await start_relay(**{"spool.dir": str(spool_dir)})
    filler = _fill(small_fs, leave_bytes=1024 * 1024)
    acknowledged: list[str] = []
    refusals: list[tuple[int, str, str]] = []

    async def client() -> None:
        full_seen = 0
        while full_seen < 5:
            run_id = str(uuid.uuid4())
            status, headers, error = await _post(http, relay, run_id)
            if status == 201:
                acknowledged.append(run_id)
            else:
                refusals.append((status, headers.get("Retry-After", ""), error))
                full_seen += 1

    try:
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CLIENTS))), 120)
        assert acknowledged  # the disk took events until it was full...
        assert refusals and all(  # ...then every refusal is a 503 naming the full disk
            status == 503 and retry and "full" in error for status, retry, error in refusals
        ), refusals[:3]
        filler.unlink()  # space returns
        for _ in range(50):  # bounded: Retry-After is honoured by any client
            run_id = str(uuid.uuid4())
            status, _, _ = await _post(http, relay, run_id)
            if status == 201:
                acknowledged.append(run_id)
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the relay did not take events again once space returned")
    finally:
        await relay.aclose()
    assert set(acknowledged) <= await _stored_run_ids(spool_dir)


@pytest.mark.parametrize("errno_", [errno.EROFS, errno.EIO], ids=["read-only", "io-error"])
async def test_a_failing_disk_stops_acknowledging_and_loses_nothing(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    start_relay: StartRelay,
    monkeypatch: pytest.MonkeyPatch,
    errno_: int,
) -> None:
    # A read-only remount is refused while the spool has files open for writing, so the
    # failure is injected at the file layer: the commit's write fails with this errno.
    broken = threading.Event()

    def commit() -> None:
        if broken.is_set():
            raise OSError(errno_, os.strerror(errno_))

    real_open = Spool.open
    monkeypatch.setattr(
        Spool, "open", lambda config, **kw: real_open(config, before_commit=commit, **kw)
    )
    spool_dir = tmp_path / "spool"
    relay = await start_relay(**{"spool.dir": str(spool_dir)})
    acknowledged: list[str] = []
    try:
        for _ in range(20):
            run_id = str(uuid.uuid4())
            assert (await _post(http, relay, run_id))[0] == 201
            acknowledged.append(run_id)
        broken.set()

        async def client() -> list[int]:
            statuses = []
            for _ in range(4):
                run_id = str(uuid.uuid4())
                status, headers, _ = await _post(http, relay, run_id)
                statuses.append(status)
                assert status == 503 and headers.get("Retry-After")
            return statuses

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        failure = await asyncio.wait_for(relay.wait_failed(), 30)
        assert os.strerror(errno_) in str(failure)
        broken.clear()  # the disk is back, but the relay must be restarted: still 503
        assert (await _post(http, relay, str(uuid.uuid4())))[0] == 503
    finally:
        await relay.aclose()
    monkeypatch.undo()
    assert set(acknowledged) == await _stored_run_ids(spool_dir)
