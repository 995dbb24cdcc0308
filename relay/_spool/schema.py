"""The spool's on-disk format: one SQLite database in WAL mode, its version, and recovery.

Layout (format 1), in `<spool.dir>/spool.db`:

    events(id, received_at, retry_at, attempts, size, crc, last_error)   narrow: scanned by lease
    bodies(id, key, body)                                                 the raw bytes, read by id
    dead_letters(id, received_at, attempts, size, crc, key, body, reason, dead_at)
    incoming                                  a view whose INSTEAD OF trigger fills both tables

Pages are 8 KiB. `crc` is the CRC-32 of `key` then `body`, so a flipped bit in what the
forwarder would send is caught. The format version lives in the SQLite header (`PRAGMA
user_version`) beside our `application_id`, so it is readable without touching a table. Leases
are not stored: at open every pending event is available again.

Everything here is synchronous and runs on the spool's own thread.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .._events import EventKey
from .._exceptions import SpoolError, SpoolFailure

__all__ = [
    "APPLICATION_ID",
    "DB_NAME",
    "FORMAT_VERSION",
    "RecoveryReport",
    "WalDamage",
    "WalPrefix",
    "checksum",
    "connect",
    "damaged_events",
    "decode_key",
    "encode_key",
    "events_with_bodies",
    "inspect_wal",
    "is_corruption",
    "open_database",
    "orphan_bodies",
    "quarantine",
    "quarantine_orphan",
    "read_wal_prefix",
    "salvage",
    "structure_problems",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
APPLICATION_ID = 0x4C524C59  # "LRLY": tells our spool apart from any other SQLite file
DB_NAME = "spool.db"
LOCK_NAME = "spool.lock"
PAGE_SIZE = 8192
# Pages in the WAL before SQLite checkpoints it into the database (16 MiB).
WAL_AUTOCHECKPOINT_PAGES = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    retry_at REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS bodies (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    key BLOB NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""

# Appends go through this view: one INSERT statement fills both tables, so a batch of appends
# is a single SQLite call (in autocommit: insert, commit and fsync at once). Each SQLite call
# hands the GIL to the event loop and has to win it back, which costs more than the call.
_INCOMING = (
    "CREATE VIEW IF NOT EXISTS incoming (id, received_at, size, crc, key, body) AS "
    "SELECT e.id, e.received_at, e.size, e.crc, b.key, b.body "
    "FROM events e JOIN bodies b ON b.id = e.id",
    "CREATE TRIGGER IF NOT EXISTS incoming_insert INSTEAD OF INSERT ON incoming BEGIN "
    "INSERT INTO events (id, received_at, size, crc) "
    "VALUES (NEW.id, NEW.received_at, NEW.size, NEW.crc); "
    "INSERT INTO bodies (id, key, body) VALUES (NEW.id, NEW.key, NEW.body); "
    "END",
)

_KEY_FIELDS = (
    "kind", "event_time", "producer", "event_type", "run_id", "job_namespace", "job_name",
    "body_hash",
)  # fmt: skip


def encode_key(key: EventKey) -> bytes:
    """The key as a compact JSON array (field order fixed by the format version)."""
    return orjson.dumps([getattr(key, name) for name in _KEY_FIELDS])


def decode_key(raw: bytes) -> EventKey:
    values = orjson.loads(raw)
    if not isinstance(values, list) or len(values) != len(_KEY_FIELDS):
        raise ValueError("stored event key has the wrong shape")
    return EventKey(**dict(zip(_KEY_FIELDS, values, strict=True)))


_CRC_CHUNK = 4096  # zlib.crc32 releases the GIL above 5 KiB: a handoff per call costs more


def checksum(key: bytes, body: bytes) -> int:
    """CRC-32 of key then body, in slices small enough to keep the GIL (cheap under load)."""
    crc = zlib.crc32(key)
    if len(body) <= _CRC_CHUNK:
        return zlib.crc32(body, crc)
    view = memoryview(body)
    for start in range(0, len(body), _CRC_CHUNK):
        crc = zlib.crc32(view[start : start + _CRC_CHUNK], crc)
    return crc


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


# ---------------------------------------------------------------------------------------------
# connection and version


def connect(path: Path) -> sqlite3.Connection:
    """Open `path` with the spool's settings: WAL, synchronous=FULL (fsync on every commit)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=True, cached_statements=256
    )
    try:
        # Only takes effect on a new file. 8 KiB pages hold a typical event in one page, which
        # costs ~20% less CPU per insert than 4 KiB pages with overflow chains.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SpoolError(f"spool database {path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA cache_size=-16384")  # 16 MiB
        # Some SQLite builds (Debian's among them) default to secure_delete=ON: every page an
        # ack frees is overwritten with zeros, i.e. written to the WAL and again by the
        # checkpoint, as many bytes as the events themselves. FAST still zeroes deleted cells
        # on pages that are written anyway, and never writes a page only to zero it. Whether a
        # freed page holds old bytes changes nothing for durability or recovery: freed pages
        # are unreachable from the tables, and salvage reads through the tables.
        conn.execute("PRAGMA secure_delete=FAST")
        # One writer (us, under the lock file); only our checkpointer shares the file, briefly.
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_version(conn: sqlite3.Connection, path: Path) -> bool:
    """Refuse foreign or newer files; return True when the file is new (no tables yet)."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()[0]
    if app_id == 0 and version == 0 and tables == 0:
        return True
    if app_id != APPLICATION_ID:
        raise SpoolError(
            f"{path} is not a lineage-relay spool (SQLite application_id {app_id:#x}); "
            "point spool.dir at an empty or lineage-relay directory"
        )
    if version > FORMAT_VERSION:
        raise SpoolError(
            f"spool {path} has format version {version}, written by a newer lineage-relay; "
            f"this one reads format {FORMAT_VERSION} at most: upgrade lineage-relay or set "
            "spool.dir to another directory"
        )
    if version < 1:
        raise SpoolError(f"spool {path} has an invalid format version {version}")
    return False


def _init_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    for statement in _INCOMING:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
    conn.execute("COMMIT")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# torn WAL detection
#
# SQLite silently stops WAL replay at the first frame whose checksum fails, so a torn or
# bit-flipped WAL loses the transactions after it without a word. We read the WAL ourselves
# (format documented at sqlite.org/fileformat2.html#walformat) before SQLite opens it, to count.

_WAL_MAGIC_LE = 0x377F0682
_WAL_MAGIC_BE = 0x377F0683
_WAL_HEADER = 32
_FRAME_HEADER = 24


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


@dataclass(frozen=True, slots=True)
class WalDamage:
    """What `inspect_wal` found. Frames after the first damaged one are lost to SQLite too."""

    damaged_frames: int = 0  # of the current WAL generation, from the first damaged one on
    lost_commits: int = 0  # commit frames after the damage: transactions that had been synced
    uncommitted_frames: int = 0  # intact frames after the last commit (a crash mid-write)

    def __bool__(self) -> bool:
        return self.damaged_frames > 0


def inspect_wal(wal: Path, *, valid: WalPrefix | None = None) -> WalDamage:
    """Find a torn or corrupt tail in the current WAL generation (SQLite drops it silently).

    A partial last frame or a checksum break with no commit after it is what a crash during a
    write leaves (that transaction was never acknowledged); a commit frame after the break means
    synced, acknowledged transactions were damaged later (bad disk, bit flip).

    `valid`: the prefix SQLite itself verified when it opened the WAL (`read_wal_prefix`); only
    the frames after it are checked, seeded with its running checksum, so a large WAL costs a
    header read instead of a pass of Python over every word of it.
    """
    try:
        f = wal.open("rb")
    except FileNotFoundError:
        return WalDamage()
    with f:
        return _scan_wal(f, valid)


@dataclass(frozen=True, slots=True)
class WalPrefix:
    """What SQLite's wal-index header says of the WAL: its first `frames` frames are valid
    (the last of them a commit) and `checksum` is the running checksum after them."""

    frames: int
    checksum: tuple[int, int]
    salt: tuple[int, int]


_WAL_INDEX_VERSION = 3007000
_WAL_INDEX_HEADER = struct.Struct("=IIIBBHII2I2I2I")  # native byte order, 48 bytes
_WAL_INDEX_SALT_OFFSET = 32


def read_wal_prefix(shm: Path) -> WalPrefix | None:
    """The valid WAL prefix from the wal-index (`-shm`) header, as the connection that just
    opened the database left it (documented at sqlite.org/walformat.html, "WAL-index format").

    None when the header cannot be trusted (missing, another version, its two copies differ,
    not initialised): the caller then checks every frame itself.
    """
    try:
        with shm.open("rb") as f:
            raw = f.read(2 * _WAL_INDEX_HEADER.size)
    except OSError:
        return None
    if len(raw) < 2 * _WAL_INDEX_HEADER.size:
        return None
    first, second = raw[: _WAL_INDEX_HEADER.size], raw[_WAL_INDEX_HEADER.size :]
    if first != second:  # a writer was changing it, or it is stale: do not guess
        return None
    (version, _unused, _change, is_init, _big_end, _page, frames, _pages, c0, c1, _salt1, _salt2,
     _h0, _h1) = _WAL_INDEX_HEADER.unpack(first)  # fmt: skip
    if version != _WAL_INDEX_VERSION or not is_init:
        return None
    # SQLite copies the salts byte for byte from the WAL header (big-endian there).
    salt1, salt2 = struct.unpack_from(">2I", first, _WAL_INDEX_SALT_OFFSET)
    return WalPrefix(frames=frames, checksum=(c0, c1), salt=(salt1, salt2))


def _scan_wal(f: BinaryIO, valid: WalPrefix | None = None) -> WalDamage:
    """`inspect_wal` on an open file, a frame at a time (a WAL can be large)."""
    header = f.read(_WAL_HEADER)
    if not header:
        return WalDamage()
    if len(header) < _WAL_HEADER:
        return WalDamage(damaged_frames=1)
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
    if magic not in (_WAL_MAGIC_LE, _WAL_MAGIC_BE):
        return WalDamage(damaged_frames=1)
    big = magic == _WAL_MAGIC_BE
    s0, s1 = _wal_checksum(header[:24], 0, 0, big)
    if (s0, s1) != (c0, c1) or page_size < 512 or page_size & (page_size - 1):
        # A broken header makes SQLite ignore the whole WAL.
        size = f.seek(0, os.SEEK_END)
        frames = (size - _WAL_HEADER) // (_FRAME_HEADER + max(int(page_size), 512))
        return WalDamage(damaged_frames=max(1, frames), lost_commits=max(1, frames))
    frame_size = _FRAME_HEADER + page_size
    if valid is not None and valid.salt == (salt1, salt2) and valid.frames > 0:
        # SQLite checked these frames when it opened the WAL: resume after them.
        f.seek(_WAL_HEADER + valid.frames * frame_size)
        s0, s1 = valid.checksum
    damaged, lost_commits, ok, pending = 0, 0, True, 0
    while True:
        frame = f.read(frame_size)
        if len(frame) < frame_size:
            if frame:
                damaged += 1  # SQLite writes whole frames: a partial one is a torn write
            break
        hdr = frame[:_FRAME_HEADER]
        _pgno, commit, f_salt1, f_salt2, f0, f1 = struct.unpack(">6I", hdr)
        if (f_salt1, f_salt2) != (salt1, salt2):
            break  # an older generation's frame: already checkpointed, not ours to count
        if ok:
            s0, s1 = _wal_checksum(hdr[:8], s0, s1, big)
            s0, s1 = _wal_checksum(frame[_FRAME_HEADER:], s0, s1, big)
            ok = (s0, s1) == (f0, f1)
            pending = 0 if ok and commit else pending + ok
        elif commit:
            lost_commits += 1
        if not ok:
            damaged += 1
    return WalDamage(damaged_frames=damaged, lost_commits=lost_commits, uncommitted_frames=pending)


# ---------------------------------------------------------------------------------------------
# open + recovery


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
    _prepare(directory)
    path = directory / DB_NAME
    existed = path.exists()
    wal = directory / (DB_NAME + "-wal")
    torn: WalDamage | None = None
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        new = _check_version(conn, path)
        # SQLite has read the WAL by now: only what lies past its valid prefix needs a look.
        torn = inspect_wal(wal, valid=read_wal_prefix(directory / (DB_NAME + "-shm")))
        _count_wal_damage(wal, torn, report)
        if new:
            _init_schema(conn)
        else:
            if verify:
                _verify(conn, report, now)
            _due_implausible_retries(conn, now)
            for statement in _INCOMING:
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
        conn = _salvage(directory, report, now)
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
    return _salvage(directory, report, now)


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


_SALVAGE_SUFFIX = ".salvage"


def _prepare(directory: Path) -> None:
    """Finish or undo a salvage that a crash interrupted, so open never loops on it."""
    path, temp = directory / DB_NAME, directory / (DB_NAME + _SALVAGE_SUFFIX)
    if temp.exists() and not path.exists():
        # Crashed after moving the broken file aside: the copy is complete, finish the swap.
        os.replace(temp, path)
        fsync_dir(directory)
    elif temp.exists():
        temp.unlink()  # crashed while copying: the original is still in place, start over


def _salvage(directory: Path, report: RecoveryReport, now: float) -> sqlite3.Connection:
    """Copy every readable, intact record of the damaged database into a fresh one, move the
    damaged files aside (never deleted) and open the fresh one."""
    path, temp = directory / DB_NAME, directory / (DB_NAME + _SALVAGE_SUFFIX)
    report.salvaged = True
    fresh = sqlite3.connect(temp, isolation_level=None)
    try:
        fresh.execute(f"PRAGMA page_size={PAGE_SIZE}")
        fresh.execute("PRAGMA journal_mode=DELETE")
        fresh.execute("PRAGMA synchronous=FULL")
        _init_schema(fresh)
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
