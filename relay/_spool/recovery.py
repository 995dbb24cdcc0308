"""Opening the spool with recovery: a torn WAL counted, records checked against their CRC,
damaged ones quarantined as dead letters, a malformed file handed to `salvage.py`."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .._exceptions import SpoolError, SpoolFailure
from .format import DB_NAME, INCOMING, check_version, checksum, connect, fsync_dir, init_schema
from .salvage import prepare, rebuild
from .wal import WalDamage, inspect_wal, read_wal_prefix

__all__ = [
    "RecoveryReport",
    "damaged_events",
    "events_with_bodies",
    "is_corruption",
    "is_logic_error",
    "open_database",
    "orphan_bodies",
    "quarantine",
    "quarantine_orphan",
    "salvage",
    "structure_problems",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecoveryReport:
    """What `open_database` found and did; logged and counted by the spool."""

    corrupt_records: int = 0  # records lost or quarantined (torn, bit-flipped, unreadable)
    quarantined: int = 0  # of those, moved to dead letters with reason "corrupt"
    torn_wal_frames: int = 0
    wal_commits_lost: int = 0  # synced transactions after WAL damage (0 for a crash's torn write)
    salvaged: bool = False  # the database was rebuilt from what could be read
    moved_aside: list[Path] = field(default_factory=list)
    checked_bytes: int = 0
    seconds: float = 0.0


def open_database(
    directory: Path, *, now: float | None = None, verify: bool = True
) -> tuple[sqlite3.Connection, RecoveryReport]:
    """Open (or create) the spool in `directory`, repairing what it must. Never raises for
    damage it can work around; raises SpoolError for a newer format or a foreign file.

    A torn or damaged WAL tail is always found and counted here. `verify` also checks the
    file's structure and every record's CRC (what `IntegrityScan` otherwise does in the
    background, on a running spool)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    report = RecoveryReport()
    directory.mkdir(parents=True, exist_ok=True)
    prepare(directory)
    path = directory / DB_NAME
    existed = path.exists()
    wal = directory / (DB_NAME + "-wal")
    torn: WalDamage | None = None
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        new = check_version(conn, path)
        # SQLite has read the WAL by now: only what lies past its valid prefix needs a look.
        torn = inspect_wal(wal, valid=read_wal_prefix(directory / (DB_NAME + "-shm")))
        _count_wal_damage(wal, torn, report)
        if new:
            init_schema(conn)
        else:
            if verify:
                _verify(conn, report, now)
            _due_implausible_retries(conn, now)
            for statement in INCOMING:
                conn.execute(statement)
            if torn or torn.uncommitted_frames or verify:
                # Start from an empty WAL: what SQLite recovered goes into the database, and a
                # damaged tail is not found (and counted) again after the next crash.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except SpoolError:
        if conn is not None:
            conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if not is_corruption(exc):
            raise SpoolFailure(f"spool database {path} cannot be opened: {exc}") from exc
        if torn is None:
            _count_wal_damage(wal, inspect_wal(wal), report)
        log.error("spool database %s is damaged (%s); salvaging what can be read", path, exc)
        conn = rebuild(directory, report, now)
    if not existed:
        fsync_dir(directory)
    report.seconds = time.monotonic() - started
    return conn, report


def _count_wal_damage(wal: Path, torn: WalDamage, report: RecoveryReport) -> None:
    if not torn:
        return
    report.torn_wal_frames = torn.damaged_frames
    report.wal_commits_lost = torn.lost_commits
    # Records in the lost frames cannot be named: count one per lost transaction, at least 1.
    report.corrupt_records += max(1, torn.lost_commits)
    if torn.lost_commits:
        log.error(
            "spool WAL %s is damaged: %d frame(s) unreadable and %d committed transaction(s) "
            "after them lost; everything before the damage is kept",
            wal, torn.damaged_frames, torn.lost_commits,
        )  # fmt: skip
    else:
        log.warning(
            "spool WAL %s ends in a torn write (%d frame(s)), as a crash mid-write leaves it; "
            "the unfinished transaction is discarded, everything before is kept",
            wal, torn.damaged_frames,
        )  # fmt: skip


def salvage(directory: Path, report: RecoveryReport, now: float) -> sqlite3.Connection:
    """Rebuild a damaged spool that is open elsewhere no more (every connection to it closed):
    what `open_database` does when it finds the file malformed, for damage found later."""
    log.error("spool database in %s is damaged; salvaging what can be read", directory)
    return rebuild(directory, report, now)


_MAX_RETRY_DELAY_S = 7 * 24 * 3600


class _Malformed(sqlite3.DatabaseError):
    """SQLite's own check found the file's structure damaged."""


_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Damage worth a salvage, as opposed to an I/O or usage error that must not move data."""
    if isinstance(exc, _Malformed):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def structure_problems(conn: sqlite3.Connection) -> list[str]:
    """What SQLite's own check finds wrong with the file's structure (empty: nothing)."""
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(20)")]
    return [] if problems == ["ok"] else problems


def damaged_events(
    rows: Iterable[tuple[int, int, int, bytes | None, bytes | None]], report: RecoveryReport
) -> list[tuple[int, str]]:
    """(id, reason) of the events among `rows` (id, crc, size, key, body; `_joined` order)
    whose bytes no longer match their CRC; counts the bytes checked in `report`."""
    bad: list[tuple[int, str]] = []
    checked = 0
    # The CRC covers the key too, so a matching CRC means the key decodes as it did when written.
    for ev_id, crc, size, key, body in rows:
        if key is None or body is None:
            bad.append((ev_id, "corrupt: body missing"))
            continue
        checked += len(body)
        if checksum(key, body) != crc or len(body) != size:
            bad.append((ev_id, "corrupt: checksum mismatch"))
    report.checked_bytes += checked
    return bad


def orphan_bodies(conn: sqlite3.Connection, events: int | None = None) -> list[int]:
    """Ids of bodies whose events row is gone. `events`: the number of events rows, when the
    caller knows it (then the join runs only if the counts differ)."""
    if events is not None and conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == events:
        return []
    return [
        row[0]
        for row in conn.execute(
            "SELECT b.id FROM bodies b LEFT JOIN events e ON e.id = b.id WHERE e.id IS NULL"
        )
    ]


def _verify(conn: sqlite3.Connection, report: RecoveryReport, now: float) -> None:
    """Check the file's structure, then every record's CRC; quarantine bad records.

    Raises sqlite3.DatabaseError when SQLite finds the file itself malformed.
    """
    problems = structure_problems(conn)
    if problems:
        raise _Malformed("quick_check: " + "; ".join(problems))
    bad = damaged_events(events_with_bodies(conn), report)
    matched = conn.execute("SELECT count(*) FROM events").fetchone()[0] - sum(
        1 for _, reason in bad if reason == "corrupt: body missing"
    )
    orphans = orphan_bodies(conn, matched)
    if not bad and not orphans:
        return
    conn.execute("BEGIN IMMEDIATE")
    for ev_id, reason in bad:
        quarantine(conn, ev_id, reason, now)
    for body_id in orphans:
        quarantine_orphan(conn, body_id, now)
    conn.execute("COMMIT")
    report.quarantined += len(bad) + len(orphans)
    report.corrupt_records += len(bad) + len(orphans)
    log.warning(
        "spool recovery: %d corrupt record(s) moved to dead letters (reason 'corrupt: ...')",
        len(bad) + len(orphans),
    )  # fmt: skip


def _due_implausible_retries(conn: sqlite3.Connection, now: float) -> None:
    """retry_at is outside the CRC: a damaged one far in the future would park an event for
    good. No backoff or Retry-After plausibly reaches this far: make those due now."""
    horizon = now + _MAX_RETRY_DELAY_S
    parked = conn.execute("UPDATE events SET retry_at = 0 WHERE retry_at > ?", (horizon,)).rowcount
    if parked > 0:
        log.warning("spool recovery: %d event(s) had an implausible retry time; due now", parked)


def events_with_bodies(
    conn: sqlite3.Connection, after: int = 0, limit: int = -1
) -> Iterator[tuple[int, int, int, bytes | None, bytes | None]]:
    """(id, crc, size, key, body) of the events after id `after`, in id order; key and body
    are None when the body row is missing."""
    yield from conn.execute(
        "SELECT e.id, e.crc, e.size, b.key, b.body FROM events e "
        "LEFT JOIN bodies b ON b.id = e.id WHERE e.id > ? ORDER BY e.id LIMIT ?",
        (after, limit),
    )


def quarantine_orphan(conn: sqlite3.Connection, body_id: int, now: float) -> bool:
    """Move a body whose events row is gone to dead letters (inside the caller's transaction):
    its metadata (and CRC) is gone, the bytes are kept, only as an inspectable dead letter.
    False when it is no orphan (any more)."""
    row = conn.execute(
        "SELECT b.key, b.body FROM bodies b LEFT JOIN events e ON e.id = b.id "
        "WHERE b.id = ? AND e.id IS NULL", (body_id,),
    ).fetchone()  # fmt: skip
    if row is None:
        return False
    key, body = row
    conn.execute(
        "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?)",
        (body_id, now, len(body), checksum(key, body), key, body,
         "corrupt: metadata lost, body unverified", now),
    )  # fmt: skip
    conn.execute("DELETE FROM bodies WHERE id = ?", (body_id,))
    return True


def quarantine(conn: sqlite3.Connection, ev_id: int, reason: str, now: float) -> None:
    """Move one event to dead letters (inside the caller's transaction), whatever its state."""
    row = conn.execute(
        "SELECT received_at, attempts, size, crc FROM events WHERE id = ?", (ev_id,)
    ).fetchone()
    body = conn.execute("SELECT key, body FROM bodies WHERE id = ?", (ev_id,)).fetchone()
    if row is not None:
        key, raw = body if body is not None else (b"", b"")
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev_id, row[0], row[1], row[2], row[3], key, raw, reason, now),
        )
    conn.execute("DELETE FROM events WHERE id = ?", (ev_id,))
    conn.execute("DELETE FROM bodies WHERE id = ?", (ev_id,))


# BUSY, LOCKED (contention that outlived busy_timeout), TOOBIG, CONSTRAINT, MISMATCH, RANGE
_LOGIC_CODES: Final = frozenset({5, 6, 18, 19, 20, 25})


def is_logic_error(exc: BaseException) -> bool:
    """True when retrying on a healthy disk would fail the same way: a bug to report, no
    reason to stop the relay. Anything else from SQLite (I/O, corruption, unknown) stops it."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _LOGIC_CODES
