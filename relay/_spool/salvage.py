"""Salvage: a damaged spool file rebuilt from every record SQLite can still read, the damaged
files moved aside (never deleted)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .format import DB_NAME, PAGE_SIZE, checksum, connect, decode_key, fsync_dir, init_schema

if TYPE_CHECKING:
    from .recovery import RecoveryReport

__all__ = ["prepare", "rebuild"]

log = logging.getLogger(__name__)

_SALVAGE_SUFFIX = ".salvage"


def prepare(directory: Path) -> None:
    """Finish or undo a salvage that a crash interrupted, so open never loops on it."""
    path, temp = directory / DB_NAME, directory / (DB_NAME + _SALVAGE_SUFFIX)
    if temp.exists() and not path.exists():
        # Crashed after moving the broken file aside: the copy is complete, finish the swap.
        os.replace(temp, path)
        fsync_dir(directory)
    elif temp.exists():
        temp.unlink()  # crashed while copying: the original is still in place, start over


def rebuild(directory: Path, report: RecoveryReport, now: float) -> sqlite3.Connection:
    """Copy every readable, intact record of the damaged database into a fresh one, move the
    damaged files aside (never deleted) and open the fresh one."""
    path, temp = directory / DB_NAME, directory / (DB_NAME + _SALVAGE_SUFFIX)
    report.salvaged = True
    fresh = sqlite3.connect(temp, isolation_level=None)
    try:
        fresh.execute(f"PRAGMA page_size={PAGE_SIZE}")
        fresh.execute("PRAGMA journal_mode=DELETE")
        fresh.execute("PRAGMA synchronous=FULL")
        init_schema(fresh)
        fresh.execute("BEGIN IMMEDIATE")
        try:
            broken = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            log.error("spool database %s cannot be opened at all (%s)", path, exc)
            report.corrupt_records += 1
        else:
            try:
                # Tolerate a header that promises more pages than the (truncated) file has.
                broken.execute("PRAGMA writable_schema=ON")
                broken.execute("PRAGMA query_only=ON")
                _copy_readable(broken, fresh, report, now)
            finally:
                broken.close()
        fresh.execute("COMMIT")
    finally:
        fresh.close()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = directory / f"corrupt-{stamp}-{os.getpid()}"
    aside.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = directory / (DB_NAME + suffix)
        if src.exists():
            os.replace(src, aside / src.name)
            report.moved_aside.append(aside / src.name)
    fsync_dir(aside)
    fsync_dir(directory)
    os.replace(temp, path)
    fsync_dir(directory)
    log.error(
        "spool database rebuilt from what was readable; the damaged files were moved to %s "
        "(%d record(s) lost or quarantined)",
        aside, report.corrupt_records,
    )  # fmt: skip
    return connect(path)


def _readable_rows(
    conn: sqlite3.Connection, sql: str, skipped: list[int]
) -> Iterator[tuple[Any, ...]]:
    """Stream the rows of `sql` (which selects `id` first, takes `id > ?`, orders by id) that
    SQLite can still read, stepping over damaged b-tree regions; `skipped[0]` counts them.
    Streamed, so salvaging a big spool needs no more memory than a small one."""
    last = -1
    while True:
        try:
            for row in conn.execute(sql, (last,)):
                if not isinstance(row[0], int) or row[0] <= last:
                    # A wrecked page can yield rows out of order: treat it as unreadable.
                    raise sqlite3.DatabaseError("row ids out of order")
                last = row[0]
                yield row
            return
        except sqlite3.DatabaseError:
            skipped[0] += 1
            nxt = _next_readable(conn, sql, last)
            if nxt is None:
                return
            last = nxt


def _next_readable(conn: sqlite3.Connection, sql: str, last: int) -> int | None:
    """The smallest `after` > `last` from which a seek no longer fails, found by doubling the
    step then bisecting back; None when nothing readable remains."""
    probe_sql = sql + " LIMIT 1"

    def readable(after: int) -> bool | None:  # True: ok, False: damaged, None: nothing after
        try:
            row = conn.execute(probe_sql, (after,)).fetchone()
        except sqlite3.DatabaseError:
            return False
        if row is None:
            return None
        return isinstance(row[0], int) and row[0] > after

    step, good = 1, None
    while step < 1 << 62:
        state = readable(last + step)
        if state is None:
            return None
        if state:
            good = last + step
            break
        step *= 2
    if good is None:
        return None
    lo, hi = last + step // 2, good  # lo fails (or is `last`), hi reads
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if readable(mid) is False:
            lo = mid
        else:
            hi = mid
    return hi


def _copy_readable(
    broken: sqlite3.Connection, fresh: sqlite3.Connection, report: RecoveryReport, now: float
) -> None:
    skipped = [0]  # unreadable regions: each held at least one record we cannot name
    events = _readable_rows(
        broken,
        "SELECT id, received_at, retry_at, attempts, size, crc, last_error FROM events "
        "WHERE id > ? ORDER BY id",
        skipped,
    )
    bodies = _readable_rows(
        broken, "SELECT id, key, body FROM bodies WHERE id > ? ORDER BY id", skipped
    )
    lost = 0
    top = 0
    ev, bd = next(events, None), next(bodies, None)
    # Merge the two tables by id: both streams are in id order.
    while ev is not None or bd is not None:
        if ev is not None and (bd is None or ev[0] < bd[0]):
            top = max(top, ev[0])
            lost += 1  # metadata without its body
            ev = next(events, None)
            continue
        if bd is not None and (ev is None or bd[0] < ev[0]):
            top = max(top, bd[0])
            lost += 1
            key, body = _as_bytes(bd[1]), _as_bytes(bd[2])
            if key is not None and body is not None:
                # Its metadata (and CRC) is gone: keep the bytes, only as an inspectable
                # dead letter, never handed to the forwarder.
                fresh.execute(
                    "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?)",
                    (bd[0], now, len(body), checksum(key, body), key, body,
                     "corrupt: metadata lost, body unverified", now),
                )  # fmt: skip
                report.quarantined += 1
            bd = next(bodies, None)
            continue
        if ev is None or bd is None:
            break  # unreachable: both streams have a row with the same id here
        ev_id = ev[0]
        top = max(top, ev_id)
        key, body = _as_bytes(bd[1]), _as_bytes(bd[2])
        fields = _event_fields(ev)
        ev, bd = next(events, None), next(bodies, None)
        if key is None or body is None or fields is None:
            lost += 1
            continue
        report.checked_bytes += len(body)
        received_at, retry_at, attempts, size, crc, last_error = fields
        if checksum(key, body) != crc or len(body) != size or not _key_ok(key):
            fresh.execute(
                "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ev_id, received_at, attempts, len(body), crc, key, body,
                 "corrupt: checksum mismatch", now),
            )  # fmt: skip
            report.quarantined += 1
            lost += 1
            continue
        fresh.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ev_id, received_at, retry_at, attempts, size, crc, last_error),
        )
        fresh.execute("INSERT OR IGNORE INTO bodies VALUES (?, ?, ?)", (ev_id, key, body))
    for row in _readable_rows(
        broken,
        "SELECT id, received_at, attempts, size, crc, key, body, reason, dead_at "
        "FROM dead_letters WHERE id > ? ORDER BY id",
        skipped,
    ):
        top = max(top, row[0])
        d_key, d_body = _as_bytes(row[5]), _as_bytes(row[6])
        try:
            if d_key is None or d_body is None:
                raise TypeError("dead letter without bytes")
            fresh.execute(
                "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row[0], float(row[1]), int(row[2]), len(d_body), int(row[4]), d_key,
                 d_body, str(row[7]), float(row[8])),
            )  # fmt: skip
        except (TypeError, ValueError):
            lost += 1
    lost += skipped[0]
    report.corrupt_records += lost
    try:
        seq = broken.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        top = max(top, int(seq[0]) if seq else 0)
    except (sqlite3.DatabaseError, TypeError, ValueError):
        pass
    # Ids keep growing past every id ever handed out, even through a rebuild.
    fresh.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
    fresh.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (top,))


def _as_bytes(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def _event_fields(row: tuple[Any, ...]) -> tuple[float, float, int, int, int, str | None] | None:
    """An events row's fields with their types checked (a damaged page can yield anything)."""
    try:
        received_at, retry_at = float(row[1]), float(row[2])
        attempts, size, crc = int(row[3]), int(row[4]), int(row[5])
    except (TypeError, ValueError):
        return None
    last_error = row[6] if isinstance(row[6], str) or row[6] is None else None
    return received_at, retry_at, attempts, size, crc, last_error


def _key_ok(key: bytes) -> bool:
    try:
        decode_key(key)
    except (ValueError, TypeError):
        return False
    return True
