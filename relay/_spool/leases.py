"""Leases: which pending events are handed to the forwarder now, held in memory only (a
restart voids them), found in id order between the runs of ids already leased."""

from __future__ import annotations

import logging
import math
import sqlite3
from typing import Any, Final

import orjson

from .._events import SpooledEvent
from . import schema
from .sql import NO_KEY, chunks, sql_in
from .state import SpoolThreadState

__all__ = ["LeaseOps"]

log = logging.getLogger(__name__)

# One page of lease candidates as ONE row (a JSON array): every row a cursor steps through costs
# a GIL round trip with the busy event loop, more than the row itself.
_LEASE_PAGE_SQL: Final = (
    "SELECT json_group_array(json_array(id, CAST(received_at * 1000000 AS INTEGER), attempts, "
    "size, crc)) FROM (SELECT id, received_at, attempts, size, crc FROM events "
    "WHERE id > ? AND id < ? AND retry_at <= ? ORDER BY id LIMIT ?)"
)
_NO_ID_ABOVE: Final = 2**63 - 1  # SQLite's largest rowid: "no upper bound" for the page scan


class LeaseOps(SpoolThreadState):
    """Leasing, on the spool thread inside the batch's transaction."""

    def _lease(
        self, conn: sqlite3.Connection, max_events: int, max_bytes: int, lease_s: float
    ) -> list[SpooledEvent]:
        now = self.clock.time()
        if now >= self._next_lease_expiry:
            self._expire_leases(now)
        chosen: list[list[Any]] = []
        total, page = 0, max_events + 16
        # Candidates are read in id order from the gaps between the runs of leased ids: the
        # leased rows (a forwarder holds pool x batch of them, at the head of the queue) are
        # never read, packed and skipped again on every lease.
        runs = self._leased_runs()
        after, run, full = 0, 0, False
        while not full:
            while run < len(runs) and runs[run][0] <= after + 1:
                after = max(after, runs[run][1])
                run += 1
            below = runs[run][0] if run < len(runs) else _NO_ID_ABOVE
            (packed,) = conn.execute(_LEASE_PAGE_SQL, (after, below, now, page)).fetchone()
            rows = sorted(orjson.loads(packed))
            for row in rows:
                row[1] /= 1e6  # received_at, carried as integer microseconds (exact in JSON)
                after = row[0]
                if after in self._leased:
                    continue
                if chosen and total + row[3] > max_bytes:
                    full = True
                    break
                chosen.append(row)
                total += row[3]
                if len(chosen) >= max_events:
                    full = True
                    break
            if len(rows) < page:  # this gap is exhausted: on past the next run, if any
                if run >= len(runs):
                    break
                after = runs[run][1]
                run += 1
        if not chosen:
            return []
        bodies: dict[int, tuple[bytes, bytes]] = {}
        for chunk in chunks([row[0] for row in chosen]):
            for ev_id, key, body in conn.execute(
                sql_in("SELECT id, key, body FROM bodies WHERE id IN ({ids})", chunk),
                chunk,
            ):
                bodies[ev_id] = (key, body)
        out: list[SpooledEvent] = []
        expiry = now + lease_s
        self._next_lease_expiry = min(self._next_lease_expiry, expiry)
        for ev_id, received_at, attempts, size, crc in chosen:
            stored = bodies.get(ev_id)
            reason = ""
            key = NO_KEY
            if stored is None:
                reason, stored = "corrupt: body missing", (b"", b"")
            elif schema.checksum(*stored) != crc:
                reason = "corrupt: checksum mismatch"
            else:
                try:
                    key = schema.decode_key(stored[0])
                except (ValueError, TypeError):
                    reason = "corrupt: unreadable key"
            if reason:
                # Damaged since open (bit rot): never hand it out; keep it for inspection.
                self._move_to_dead_letters(conn, [ev_id], reason)
                self.metrics.spool_corrupt_records.inc()
                log.error("spool: event %d is damaged on disk (%s); moved to dead letters",
                          ev_id, reason)  # fmt: skip
                continue
            self._leased[ev_id] = (expiry, size)
            out.append(SpooledEvent(
                id=ev_id, body=stored[1], key=key, received_at=received_at, attempts=attempts
            ))  # fmt: skip
        return out

    def _expire_leases(self, now: float) -> None:
        """Forget the leases that ran out (their events are handed out again)."""
        soonest = math.inf
        for ev_id, (expiry, _) in list(self._leased.items()):
            if expiry <= now:
                del self._leased[ev_id]
            elif expiry < soonest:
                soonest = expiry
        self._next_lease_expiry = soonest

    def _leased_runs(self) -> list[tuple[int, int]]:
        """The leased ids as sorted, disjoint runs of consecutive integers (first, last).

        Every row whose id lies inside a run is leased, so a scan may jump over the run. One
        lease's ids ascend and `_leased` keeps insertion order: a forwarder's batches come out
        as a few long runs, found in one pass.
        """
        runs: list[tuple[int, int]] = []
        first = last = -2
        for ev_id in self._leased:
            if ev_id == last + 1:
                last = ev_id
                continue
            if last >= 0:
                runs.append((first, last))
            first = last = ev_id
        if last >= 0:
            runs.append((first, last))
        runs.sort()
        merged: list[tuple[int, int]] = []
        for first, last in runs:
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged
