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

from .format import (
    APPLICATION_ID,
    DB_NAME,
    FORMAT_VERSION,
    LOCK_NAME,
    PAGE_SIZE,
    WAL_AUTOCHECKPOINT_PAGES,
    checksum,
    connect,
    decode_key,
    encode_key,
    fsync_dir,
)
from .recovery import (
    RecoveryReport,
    damaged_events,
    events_with_bodies,
    is_corruption,
    open_database,
    orphan_bodies,
    quarantine,
    quarantine_orphan,
    salvage,
    structure_problems,
)
from .wal import WalDamage, WalPrefix, inspect_wal, read_wal_prefix

__all__ = [
    "APPLICATION_ID",
    "DB_NAME",
    "FORMAT_VERSION",
    "LOCK_NAME",
    "PAGE_SIZE",
    "WAL_AUTOCHECKPOINT_PAGES",
    "RecoveryReport",
    "WalDamage",
    "WalPrefix",
    "checksum",
    "connect",
    "damaged_events",
    "decode_key",
    "encode_key",
    "events_with_bodies",
    "fsync_dir",
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
