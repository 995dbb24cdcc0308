"""Recovery at open: torn and bit-flipped files are detected and counted, intact events kept,
and the relay never crash-loops on a damaged spool."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from spool_support import Opener, body, counter, crash_image, flip_a_bit_in_wal, key

from relay._exceptions import SpoolError
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay._spool.schema import APPLICATION_ID, DB_NAME, FORMAT_VERSION, PAGE_SIZE

CORRUPT = "lineage_relay_spool_corrupt_records_total"


def marked(n: int) -> bytes:
    """A body that can be found in the raw file."""
    return b'{"eventType":"START","marker":"MARK%06d","pad":"%s"}' % (n, b"y" * 900)


async def fill(open_spool: Opener, n: int, *, close: bool = True) -> dict[int, bytes]:
    spool = await open_spool()
    written: dict[int, bytes] = {}
    for i in range(n):
        (ev_id,) = await spool.append([(marked(i), key(i))])
        written[ev_id] = marked(i)
    if close:
        await spool.aclose()
    return written


async def everything(spool: Spool) -> dict[int, bytes]:
    events = await spool.lease(max_events=100_000, max_bytes=10**9, lease_s=60)
    return {e.id: e.body for e in events}


async def test_clean_reopen_counts_nothing(open_spool: Opener, metrics: Metrics) -> None:
    written = await fill(open_spool, 20)
    spool = await open_spool()
    assert await everything(spool) == written
    assert counter(metrics, CORRUPT) == 0
    assert spool.recovery.checked_bytes == sum(map(len, written.values()))


async def test_bit_flip_inside_a_stored_body_is_quarantined_and_counted(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    written = await fill(open_spool, 30)
    db = tmp_path / "spool" / DB_NAME
    raw = bytearray(db.read_bytes())
    at = raw.index(b"MARK000017") + 3
    raw[at] ^= 0x01  # "MARK000017" -> "MARL000017"
    db.write_bytes(bytes(raw))

    spool = await open_spool()
    got = await everything(spool)
    damaged = [i for i, b in written.items() if b"MARK000017" in b]
    assert set(got) == set(written) - set(damaged)
    assert all(got[i] == written[i] for i in got)
    assert counter(metrics, CORRUPT) == 1
    dead = await spool.list_dead_letters()
    assert [(e.id, reason) for e, reason in dead] == [(damaged[0], "corrupt: checksum mismatch")]
    assert spool.stats().dead_letters == 1


async def test_body_damaged_after_open_is_never_handed_out(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    written = await fill(open_spool, 5)
    spool = await open_spool()
    # Bit rot while running: change a body behind the spool's back.
    with sqlite3.connect(tmp_path / "spool" / DB_NAME) as other:
        first = min(written)
        other.execute("UPDATE bodies SET body = ? WHERE id = ?", (b"garbage", first))
    got = await everything(spool)
    assert set(got) == set(written) - {first}
    assert counter(metrics, CORRUPT) == 1
    assert spool.stats().dead_letters == 1


@pytest.mark.parametrize("seed", range(6))
async def test_torn_wal_tail_keeps_the_intact_prefix_and_counts(
    open_spool: Opener, metrics: Metrics, tmp_path: Path, seed: int
) -> None:
    # A crash image: copy the files while the spool is open (after its commits), so the
    # events are in the WAL; then tear the WAL at a random point.
    written = await fill(open_spool, 40, close=False)
    image = tmp_path / "image"
    wal = crash_image(tmp_path / "spool", image)
    size = wal.stat().st_size
    assert size > 40 * 1000  # the events really are in the WAL
    cut = random.Random(seed).randrange(size // 4, size - 100)
    with wal.open("r+b") as f:
        f.truncate(cut)

    spool = await open_spool(dir=image)
    got = await everything(spool)
    order = sorted(written)
    assert sorted(got) == order[: len(got)]  # a prefix: nothing after a tear is half-kept
    assert all(got[i] == written[i] for i in got)
    assert len(got) < len(written)
    assert counter(metrics, CORRUPT) >= 1
    assert spool.recovery.torn_wal_frames >= 1


async def test_bit_flip_in_the_wal_is_counted(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    written = await fill(open_spool, 30, close=False)
    image = tmp_path / "image"
    flip_a_bit_in_wal(crash_image(tmp_path / "spool", image), b"MARK000020")

    spool = await open_spool(dir=image)
    got = await everything(spool)
    assert all(got[i] == written[i] for i in got)
    assert len(got) < len(written)
    # Events 21..29 were committed (and acknowledged) after the flipped frame: counted as lost.
    assert spool.recovery.wal_commits_lost >= 9
    assert counter(metrics, CORRUPT) >= 9


@pytest.mark.parametrize("seed", range(5))
async def test_truncated_database_file_is_salvaged_not_crash_looped(
    open_spool: Opener, metrics: Metrics, tmp_path: Path, seed: int
) -> None:
    written = await fill(open_spool, 60)
    db = tmp_path / "spool" / DB_NAME
    size = db.stat().st_size
    cut = random.Random(seed).randrange(size // 3, size - 4096)
    with db.open("r+b") as f:
        f.truncate(cut)

    spool = await open_spool()
    got = await everything(spool)
    assert all(got[i] == written[i] for i in got)
    assert 0 < len(got) < len(written)
    assert counter(metrics, CORRUPT) >= 1
    assert spool.recovery.salvaged
    assert spool.recovery.moved_aside and all(p.exists() for p in spool.recovery.moved_aside)
    # The rebuilt spool works and the next start is clean.
    (new_id,) = await spool.append([(marked(999), key(999))])
    assert new_id > max(written)
    await spool.aclose()
    again_metrics = Metrics()
    reopened = await open_spool(metrics=again_metrics)
    assert counter(again_metrics, CORRUPT) == 0
    assert set(await everything(reopened)) == {*got, new_id}


async def test_damaged_page_in_the_middle_of_the_file_is_salvaged(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    written = await fill(open_spool, 60)
    db = tmp_path / "spool" / DB_NAME
    raw = bytearray(db.read_bytes())
    page = PAGE_SIZE
    victim = raw.index(b"MARK000030") // page * page
    raw[victim : victim + 8] = b"\xff" * 8  # wreck the b-tree page header
    db.write_bytes(bytes(raw))

    spool = await open_spool()
    got = await everything(spool)
    assert all(got[i] == written[i] for i in got)
    lost = set(written) - set(got)
    assert lost and len(lost) <= 10  # only what lived on or near that page
    assert counter(metrics, CORRUPT) >= 1
    assert spool.recovery.salvaged


@pytest.mark.parametrize("seed", range(8))
async def test_random_byte_flips_never_crash_and_never_hand_out_damaged_events(
    open_spool: Opener, metrics: Metrics, tmp_path: Path, seed: int
) -> None:
    written = await fill(open_spool, 40)
    db = tmp_path / "spool" / DB_NAME
    raw = bytearray(db.read_bytes())
    rng = random.Random(seed)
    for _ in range(3):
        at = rng.randrange(len(raw) // 4, len(raw))  # mid-file and later: pages, not the header
        raw[at] ^= 1 << rng.randrange(8)
    db.write_bytes(bytes(raw))

    spool = await open_spool()
    got = await everything(spool)
    assert all(got[i] == written[i] for i in got)
    if len(got) < len(written):
        assert counter(metrics, CORRUPT) >= 1


async def test_garbage_file_is_moved_aside_and_a_fresh_spool_starts(
    open_spool: Opener, metrics: Metrics, tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / DB_NAME).write_bytes(b"\x00not a database\x00" * 4096)
    spool = await open_spool()
    assert spool.stats().events == 0
    assert counter(metrics, CORRUPT) >= 1
    assert spool.recovery.moved_aside
    assert spool.recovery.moved_aside[0].read_bytes().startswith(b"\x00not a database")
    assert len(await spool.append([(body(1), key(1))])) == 1


async def test_interrupted_salvage_is_finished_at_next_open(
    open_spool: Opener, tmp_path: Path
) -> None:
    written = await fill(open_spool, 5)
    directory = tmp_path / "spool"
    # The crash came after the damaged file was moved aside, before the rebuilt one took its
    # place: the rebuilt copy is complete and must be used, not replaced by an empty spool.
    (directory / DB_NAME).rename(directory / (DB_NAME + ".salvage"))
    spool = await open_spool()
    assert await everything(spool) == written


async def test_newer_format_version_is_refused_with_a_clear_message(
    open_spool: Opener, tmp_path: Path
) -> None:
    await fill(open_spool, 1)
    with sqlite3.connect(tmp_path / "spool" / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    with pytest.raises(SpoolError, match=r"format version 2.*newer lineage-relay.*upgrade"):
        await open_spool()


async def test_foreign_sqlite_file_is_refused(open_spool: Opener, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    with sqlite3.connect(directory / DB_NAME) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(SpoolError, match="not a lineage-relay spool"):
        await open_spool()
    with sqlite3.connect(directory / DB_NAME) as conn:  # left untouched
        assert conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


async def test_wal_damage_is_counted_once_not_again_after_the_next_crash(
    open_spool: Opener, tmp_path: Path
) -> None:
    await fill(open_spool, 30, close=False)
    image = tmp_path / "image"
    flip_a_bit_in_wal(crash_image(tmp_path / "spool", image), b"MARK000010")
    first_metrics = Metrics()
    spool = await open_spool(dir=image, metrics=first_metrics)
    assert counter(first_metrics, CORRUPT) >= 1
    await spool.append([(marked(100), key(100))])
    # Crash again (copy the files while open), then start: nothing new is damaged.
    second = tmp_path / "second"
    crash_image(image, second)
    again = Metrics()
    reopened = await open_spool(dir=second, metrics=again)
    assert counter(again, CORRUPT) == 0
    assert marked(100) in (await everything(reopened)).values()


async def test_an_implausible_retry_time_does_not_park_an_event_for_good(
    open_spool: Opener, tmp_path: Path
) -> None:
    written = await fill(open_spool, 3)
    with sqlite3.connect(tmp_path / "spool" / DB_NAME) as conn:
        conn.execute("UPDATE events SET retry_at = 1e18 WHERE id = ?", (min(written),))
    spool = await open_spool()
    assert await everything(spool) == written
