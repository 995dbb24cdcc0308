"""The spool's on-disk format under one name for the spool: tables, version and connection
(`format.py`), torn-WAL detection (`wal.py`), opening with recovery (`recovery.py`) and the
rebuild of a damaged file (`salvage.py`)."""

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
