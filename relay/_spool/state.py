"""What the spool thread's parts share (`worker.py` runs them): counts, leases, the connection's
settings, and the operations one part calls on another, declared once for all of them."""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from .._clock import Clock
from .._config import SpoolConfig
from .._observe.metrics import Metrics

__all__ = ["SpoolStats", "SpoolThreadState", "Totals"]


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """A snapshot of the spool, kept in memory (no I/O to read it)."""

    events: int  # pending (incl. leased), not dead letters
    bytes: int  # bytes of pending event bodies
    oldest_received_at: float | None  # epoch s of the oldest pending event
    dead_letters: int
    leased: int = 0  # of `events`, currently leased to the forwarder
    commits: int = 0  # transactions committed since open
    failed: bool = False  # a write or sync failed: the spool refuses everything from now on
    synced_commits: int = 0  # of `commits`, those fsync'd on their own (every one with appends)


@dataclass(slots=True)
class Totals:
    events: int = 0
    bytes: int = 0
    dead: int = 0
    oldest: float | None = None


class SpoolThreadState(abc.ABC):
    """Attributes and cross-part operations of the spool thread (set up by `worker._Worker`)."""

    config: SpoolConfig
    clock: Clock
    metrics: Metrics
    totals: Totals
    _leased: dict[int, tuple[float, int]]  # id -> (lease expiry, size)
    # No lease in `_leased` expires before this (a lower bound): lease() walks the leases
    # for expired ones only once this time has come, not on every call.
    _next_lease_expiry: float
    _last_id: int | None
    _unchecked_bytes: int  # appended since the background checkpointer was last poked
    # Rows appends planned, not yet inserted: (id, received_at, size, crc, key, body).
    _rows: list[tuple[int, float, int, int, bytes, bytes]]

    @abc.abstractmethod
    def _db(self) -> sqlite3.Connection: ...

    @abc.abstractmethod
    def _flush_rows(self, conn: sqlite3.Connection) -> None: ...

    @abc.abstractmethod
    def _remove(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None: ...

    @abc.abstractmethod
    def _refresh_oldest(self, conn: sqlite3.Connection) -> None: ...

    @abc.abstractmethod
    def _move_to_dead_letters(
        self, conn: sqlite3.Connection, ids: Sequence[int], reason: str
    ) -> None: ...
