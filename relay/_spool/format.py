"""The spool's on-disk format: one SQLite database in WAL mode, its tables and version.

Layout (format 1), in `<spool.dir>/spool.db`:

    events(id, received_at, retry_at, attempts, size, crc, last_error)   narrow: scanned by lease
    bodies(id, key, body)                                                 the raw bytes, read by id
    dead_letters(id, received_at, attempts, size, crc, key, body, reason, dead_at)
    incoming                                  a view whose INSTEAD OF trigger fills both tables

Pages are 8 KiB. `crc` is the CRC-32 of `key` then `body`, so a flipped bit in what the
forwarder would send is caught. The format version lives in the SQLite header (`PRAGMA
user_version`) beside our `application_id`, so it is readable without touching a table. Leases
are not stored: at open every pending event is available again.

Everything here is synchronous and runs on the spool's own thread. The WAL parser is in
`wal.py`, opening with recovery in `recovery.py`, the rebuild of a damaged file in `salvage.py`;
`schema.py` names them all for the spool.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from pathlib import Path

import orjson

from .._events import EventKey
from .._exceptions import SpoolError

__all__ = [
    "APPLICATION_ID",
    "DB_NAME",
    "FORMAT_VERSION",
    "INCOMING",
    "LOCK_NAME",
    "PAGE_SIZE",
    "WAL_AUTOCHECKPOINT_PAGES",
    "check_version",
    "checksum",
    "connect",
    "decode_key",
    "encode_key",
    "file_bytes",
    "fsync_dir",
    "init_schema",
]

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
INCOMING = (
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


def check_version(conn: sqlite3.Connection, path: Path) -> bool:
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


def init_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    for statement in INCOMING:
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


def file_bytes(directory: Path) -> int:
    """Bytes of the database and its WAL in `directory` (0 when there is none yet)."""
    total = 0
    for name in (DB_NAME, DB_NAME + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += (directory / name).stat().st_size
    return total
