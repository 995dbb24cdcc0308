"""The queue of pending events: appends (with the spool.when_full policy), removal, retries,
age expiry, and the reads that are no lease (scan, waiting runs); counts kept in `totals`."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from .._events import EventKey, SpooledEvent
from .._exceptions import SpoolError, SpoolFull
from . import schema
from .sql import chunks, sql_in
from .state import SpoolThreadState, Totals

__all__ = ["PendingOps"]

log = logging.getLogger(__name__)


class PendingOps(SpoolThreadState):
    """The pending queue's operations, on the spool thread inside the batch's transaction."""

    def _append(self, conn: sqlite3.Connection, items: list[tuple[bytes, EventKey]]) -> list[int]:
        try:
            encoded = [(bytes(body), schema.encode_key(key)) for body, key in items]
        except (TypeError, ValueError) as exc:
            raise SpoolError(f"an event cannot be stored: {exc}") from exc
        size = sum(len(body) for body, _ in encoded)
        limit = self.config.max_bytes
        if self.totals.bytes + size > limit:
            if self.config.when_full == "reject" or size > limit:
                raise SpoolFull(f"spool is full ({self.totals.bytes} of {limit} bytes)")
            self._flush_rows(conn)  # the batch's earlier appends are candidates too
            self._drop_oldest(conn, self.totals.bytes + size - limit)
        now = self.clock.time()
        first = self._next_id(conn)
        ids = list(range(first, first + len(items)))
        self._rows.extend(
            (ev_id, now, len(body), schema.checksum(raw_key, body), raw_key, body)
            for ev_id, (body, raw_key) in zip(ids, encoded, strict=True)
        )
        self._unchecked_bytes += size
        self._last_id = ids[-1]
        t = self.totals
        t.events += len(items)
        t.bytes += size
        if t.oldest is None:
            t.oldest = now
        return ids

    def _next_id(self, conn: sqlite3.Connection) -> int:
        last = self._last_id
        if last is None:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            dead = conn.execute("SELECT max(id) FROM dead_letters").fetchone()[0]
            last = max(int(row[0]) if row else 0, int(dead or 0))
        return int(last) + 1

    def _drop_oldest(self, conn: sqlite3.Connection, need: int) -> None:
        """Delete the oldest pending events (unleased first) until `need` bytes are freed."""
        victims: list[int] = []
        freed = 0
        for leased_ok in (False, True):
            after = 0
            while freed < need:
                rows = conn.execute(
                    "SELECT id, size FROM events WHERE id > ? ORDER BY id LIMIT 256", (after,)
                ).fetchall()
                if not rows:
                    break
                for ev_id, size in rows:
                    after = ev_id
                    if (ev_id in self._leased) != leased_ok:
                        continue
                    victims.append(ev_id)
                    freed += size
                    if freed >= need:
                        break
            if freed >= need:
                break
        self._remove(conn, victims)
        if victims:
            self.metrics.events_dropped.labels(reason="spool_full").inc(len(victims))
            log.warning(
                "spool full (spool.when_full = drop_oldest): dropped %d oldest event(s), "
                "%d byte(s)", len(victims), freed,
            )  # fmt: skip

    def _remove(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        t = self.totals
        for chunk in chunks(ids):
            # Aggregates, not `RETURNING` rows: each row fetched is a GIL round trip.
            count, size = conn.execute(
                sql_in(
                    "SELECT count(*), coalesce(sum(size), 0) FROM events WHERE id IN ({ids})",
                    chunk,
                ),
                chunk,
            ).fetchone()
            conn.execute(sql_in("DELETE FROM events WHERE id IN ({ids})", chunk), chunk)
            conn.execute(sql_in("DELETE FROM bodies WHERE id IN ({ids})", chunk), chunk)
            t.events -= count
            t.bytes -= size
            for ev_id in chunk:
                self._leased.pop(ev_id, None)
        self._refresh_oldest(conn)

    def _scan(
        self, conn: sqlite3.Connection, after_id: int, max_events: int, max_bytes: int
    ) -> list[SpooledEvent]:
        out: list[SpooledEvent] = []
        total = 0
        for ev_id, received_at, attempts, crc, key, body in conn.execute(
            "SELECT e.id, e.received_at, e.attempts, e.crc, b.key, b.body FROM events e "
            "JOIN bodies b ON b.id = e.id WHERE e.id > ? ORDER BY e.id LIMIT ?",
            (after_id, max_events),
        ):
            if out and total + len(body) > max_bytes:
                break
            if schema.checksum(key, body) != crc:
                continue
            try:
                event_key = schema.decode_key(key)
            except (ValueError, TypeError):
                continue
            out.append(SpooledEvent(
                id=ev_id, body=body, key=event_key, received_at=received_at, attempts=attempts
            ))  # fmt: skip
            total += len(body)
        return out

    def _waiting_runs(self, conn: sqlite3.Connection) -> dict[str, float]:
        runs: dict[str, float] = {}
        for retry_at, raw in conn.execute(
            "SELECT e.retry_at, b.key FROM events e JOIN bodies b ON b.id = e.id "
            "WHERE e.retry_at > ?", (self.clock.time(),),
        ):  # fmt: skip
            try:
                run_id = schema.decode_key(raw).run_id
            except (ValueError, TypeError):
                continue  # a damaged key: lease dead-letters that event when it comes due
            if run_id is not None and retry_at > runs.get(run_id, 0.0):
                runs[run_id] = retry_at
        return runs

    def _expire(self, conn: sqlite3.Connection) -> int:
        if not self.config.max_age_s or self.totals.oldest is None:
            return 0
        cutoff = self.clock.time() - self.config.max_age_s
        if self.totals.oldest > cutoff:
            return 0
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM events WHERE received_at < ? ORDER BY id", (cutoff,)
        )]  # fmt: skip
        self._remove(conn, ids)
        if ids:
            self.metrics.events_dropped.labels(reason="expired").inc(len(ids))
            log.warning("spool: dropped %d event(s) older than spool.max_age_s = %s",
                        len(ids), self.config.max_age_s)  # fmt: skip
        return len(ids)

    def _refresh_oldest(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT received_at FROM events ORDER BY id LIMIT 1").fetchone()
        self.totals.oldest = None if row is None else float(row[0])

    def _recount(self) -> None:
        conn = self._db()
        events, size = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM events"
        ).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        self.totals = Totals(events=int(events), bytes=int(size), dead=int(dead))
        self._refresh_oldest(conn)

    def _schedule_retry(
        self, conn: sqlite3.Connection, ids: Sequence[int], when: float, error: str, step: int
    ) -> None:
        for chunk in chunks(ids):
            conn.execute(
                sql_in(
                    "UPDATE events SET retry_at = ?, attempts = attempts + ?, "
                    "last_error = ? WHERE id IN ({ids})",
                    chunk,
                ),
                (when, step, error[:2000], *chunk),
            )
            for ev_id in chunk:
                self._leased.pop(ev_id, None)

    def _release(self, ids: Sequence[int]) -> None:
        for ev_id in ids:
            self._leased.pop(ev_id, None)
