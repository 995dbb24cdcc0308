"""A big spool opens at once and is checked in the background: damage is still found (at lease
time or by the scan), counted once, dead-lettered with reason `corrupt: ...`, never handed out;
a malformed file is salvaged while the spool runs, without stopping it."""

from __future__ import annotations

import random
import sqlite3
import struct
import threading
from pathlib import Path

import pytest
from spool_support import Opener, counter, crash_image, flip_a_bit_in_wal, key

from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay._spool.integrity import VERIFY_AT_OPEN_BYTES, IntegrityScan, ScanState
from relay._spool.schema import DB_NAME, PAGE_SIZE, connect, inspect_wal, read_wal_prefix

CORRUPT = "lineage_relay_spool_corrupt_records_total"
BODY_BYTES = 10_000
EVENTS = VERIFY_AT_OPEN_BYTES // BODY_BYTES + 200  # comfortably above the open's own check


def marked(n: int) -> bytes:
    """A ~10 KB body that can be found in the raw file."""
    head = b'{"eventType":"START","marker":"MARK%06d","pad":"' % n
    return head + b"y" * (BODY_BYTES - len(head) - 2) + b'"}'


async def fill_big(open_spool: Opener, spool_dir: Path) -> dict[int, bytes]:
    """A closed spool larger than what the open checks itself."""
    spool = await open_spool(dir=spool_dir)
    written: dict[int, bytes] = {}
    for start in range(0, EVENTS, 100):
        numbers = range(start, min(EVENTS, start + 100))
        ids = await spool.append([(marked(i), key(i)) for i in numbers])
        written.update(zip(ids, (marked(i) for i in numbers), strict=True))
    await spool.aclose()
    assert (spool_dir / DB_NAME).stat().st_size > VERIFY_AT_OPEN_BYTES
    return written


async def fill_big_and_flip(
    open_spool: Opener, directory: Path, n: int
) -> tuple[dict[int, bytes], int]:
    """A closed big spool in which event `n`'s stored body has one bit flipped; returns what
    was written and the damaged event's id."""
    written = await fill_big(open_spool, directory)
    marker = b"MARK%06d" % n
    db = directory / DB_NAME
    raw = bytearray(db.read_bytes())
    raw[raw.index(marker) + 3] ^= 0x01  # "MARK..." -> "MARL...": the CRC no longer matches
    db.write_bytes(bytes(raw))
    return written, next(i for i, b in written.items() if marker in b)


def state(scan: IntegrityScan) -> ScanState:
    return scan.state  # read anew each time: the scan's thread moves it


def salvaged(spool: Spool) -> bool:
    return spool.recovery.salvaged  # the spool's thread sets it when it salvages


async def everything(spool: Spool) -> dict[int, bytes]:
    events = await spool.lease(max_events=100_000, max_bytes=10**10, lease_s=60)
    return {e.id: e.body for e in events}


async def test_a_big_spool_opens_unchecked_and_is_checked_in_the_background(
    open_spool: Opener, tmp_path: Path
) -> None:
    directory = tmp_path / "big"
    written = await fill_big(open_spool, directory)
    gate = threading.Event()
    spool = await open_spool(dir=directory, scan_gate=gate)
    scan = spool.integrity
    assert scan is not None
    assert spool.recovery.checked_bytes == 0  # the open did not read the bodies
    assert state(scan) is ScanState.PENDING and scan.checked_bytes == 0  # held by the gate
    assert spool.stats().events == len(written)  # ... yet the spool serves
    (new_id,) = await spool.append([(marked(10**5), key(1))])
    gate.set()
    await spool.wait_integrity_checked()
    assert state(scan) is ScanState.DONE
    assert scan.checked_bytes == sum(map(len, written.values())) + len(marked(10**5))
    assert scan.found == 0
    assert set(await everything(spool)) == {*written, new_id}


async def test_a_corrupt_event_is_found_at_lease_time_and_never_handed_out(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    directory = tmp_path / "big"
    written, damaged = await fill_big_and_flip(open_spool, directory, 777)
    gate = threading.Event()  # the scan stays held: only the lease can find the damage
    spool = await open_spool(dir=directory, scan_gate=gate)
    assert counter(metrics, CORRUPT) == 0

    got = await everything(spool)
    assert set(got) == set(written) - {damaged}
    assert all(got[i] == written[i] for i in got)
    dead = await spool.list_dead_letters()
    assert [(e.id, reason) for e, reason in dead] == [(damaged, "corrupt: checksum mismatch")]
    assert counter(metrics, CORRUPT) == 1

    # The scan then meets what the lease already moved: counted once, not twice.
    gate.set()
    await spool.wait_integrity_checked()
    assert counter(metrics, CORRUPT) == 1
    assert spool.stats().dead_letters == 1


async def test_the_scan_dead_letters_a_corrupt_event_nobody_leased(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    directory = tmp_path / "big"
    written, damaged = await fill_big_and_flip(open_spool, directory, 42)
    spool = await open_spool(dir=directory)
    await spool.wait_integrity_checked()
    scan = spool.integrity
    assert scan is not None and scan.found == 1
    assert counter(metrics, CORRUPT) == 1
    dead = await spool.list_dead_letters()
    assert [(e.id, reason) for e, reason in dead] == [(damaged, "corrupt: checksum mismatch")]
    assert set(await everything(spool)) == set(written) - {damaged}


def wreck_page(db: Path, marker: bytes) -> None:
    raw = bytearray(db.read_bytes())
    victim = raw.index(marker) // PAGE_SIZE * PAGE_SIZE
    raw[victim : victim + 8] = b"\xff" * 8  # the b-tree page header
    db.write_bytes(bytes(raw))


async def test_a_malformed_big_spool_is_salvaged_by_the_scan_while_it_runs(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    directory = tmp_path / "big"
    written = await fill_big(open_spool, directory)
    wreck_page(directory / DB_NAME, b"MARK000500")
    gate = threading.Event()
    spool = await open_spool(dir=directory, scan_gate=gate)
    assert not salvaged(spool)
    gate.set()
    await spool.wait_integrity_checked()
    assert salvaged(spool)
    assert spool.recovery.moved_aside and all(p.exists() for p in spool.recovery.moved_aside)
    assert counter(metrics, CORRUPT) >= 1
    got = await everything(spool)
    assert all(got[i] == written[i] for i in got)
    lost = set(written) - set(got)
    assert lost and len(lost) <= 10  # only what lived on that page
    (new_id,) = await spool.append([(marked(10**5), key(1))])
    assert new_id > max(written)


async def test_a_damaged_page_met_by_a_lease_is_salvaged_and_the_lease_answered(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    directory = tmp_path / "big"
    written = await fill_big(open_spool, directory)
    wreck_page(directory / DB_NAME, b"MARK000300")
    gate = threading.Event()  # the scan stays held: the lease meets the damage first
    spool = await open_spool(dir=directory, scan_gate=gate)
    got = await everything(spool)
    assert salvaged(spool)
    assert not spool.failed
    assert all(got[i] == written[i] for i in got)
    assert 0 < len(set(written) - set(got)) <= 10
    assert counter(metrics, CORRUPT) >= 1
    with sqlite3.connect(directory / DB_NAME) as conn:  # the rebuilt file is sound
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    gate.set()
    await spool.wait_integrity_checked()  # the salvage made the scan moot; it ends


@pytest.mark.parametrize("damage", ["none", "tear", "flip"])
async def test_the_wal_check_past_sqlites_valid_prefix_finds_what_a_full_check_finds(
    open_spool: Opener, tmp_path: Path, damage: str
) -> None:
    spool = await open_spool(dir=tmp_path / "live")
    for i in range(40):
        await spool.append([(marked(i)[:1500], key(i))])
    image = tmp_path / "image"  # a crash image: the events are in the WAL
    wal = crash_image(tmp_path / "live", image)
    if damage == "tear":
        whole = wal.read_bytes()
        wal.write_bytes(whole[: random.Random(3).randrange(len(whole) // 2, len(whole) - 100)])
    elif damage == "flip":
        flip_a_bit_in_wal(wal, b"MARK000030")
    raw = wal.read_bytes()  # as damaged, before SQLite opens it

    conn = connect(image / DB_NAME)  # SQLite validates the WAL and writes the wal-index
    try:
        conn.execute("SELECT count(*) FROM events").fetchone()
        prefix = read_wal_prefix(image / (DB_NAME + "-shm"))
        assert prefix is not None and prefix.frames > 0  # the short way is really taken
        assert prefix.salt == struct.unpack_from(">2I", raw, 16)  # of this WAL generation
        assert inspect_wal(wal, valid=prefix) == inspect_wal(wal)
        assert bool(inspect_wal(wal)) == (damage != "none")
    finally:
        conn.close()
