"""Dead letters: events refused for good (or found damaged) moved out of the queue with their
reason, listed, and replayed under their own ids."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from .._events import SpooledEvent
from . import schema
from .sql import NO_KEY, chunks, sql_in
from .state import SpoolThreadState

__all__ = ["DeadLetterOps"]

log = logging.getLogger(__name__)


class DeadLetterOps(SpoolThreadState):
    """The dead-letter table's operations, on the spool thread inside the batch's transaction."""

    def _move_to_dead_letters(
        self, conn: sqlite3.Connection, ids: Sequence[int], reason: str
    ) -> None:
        now = self.clock.time()
        for chunk in chunks(ids):
            moved = conn.execute(
                sql_in(
                    "INSERT OR REPLACE INTO dead_letters SELECT e.id, e.received_at, e.attempts, "
                    "e.size, e.crc, coalesce(b.key, x''), coalesce(b.body, x''), ?, ? "
                    "FROM events e LEFT JOIN bodies b ON b.id = e.id WHERE e.id IN ({ids})",
                    chunk,
                ),
                (reason[:2000], now, *chunk),
            ).rowcount
            self.totals.dead += max(moved, 0)
        self._remove(conn, ids)

    def _bury(self, conn: sqlite3.Connection, event: SpooledEvent, reason: str) -> None:
        raw_key = schema.encode_key(event.key)
        known = conn.execute("SELECT 1 FROM dead_letters WHERE id = ?", (event.id,)).fetchone()
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.id, event.received_at, event.attempts, len(event.body),
             schema.checksum(raw_key, event.body), raw_key, event.body, reason[:2000],
             self.clock.time()),
        )  # fmt: skip
        if known is None:
            self.totals.dead += 1

    def _list_dead(self, conn: sqlite3.Connection, limit: int) -> list[tuple[SpooledEvent, str]]:
        out: list[tuple[SpooledEvent, str]] = []
        for ev_id, received_at, attempts, key, body, reason in conn.execute(
            "SELECT id, received_at, attempts, key, body, reason FROM dead_letters "
            "ORDER BY id LIMIT ?", (limit,),
        ):  # fmt: skip
            try:
                event_key = schema.decode_key(key)
            except (ValueError, TypeError):
                event_key = NO_KEY
            event = SpooledEvent(
                id=ev_id, body=body, key=event_key, received_at=received_at, attempts=attempts
            )
            out.append((event, reason))
        return out

    def _replay(self, conn: sqlite3.Connection, ids: list[int] | None) -> int:
        if ids is None:
            ids = [row[0] for row in conn.execute("SELECT id FROM dead_letters ORDER BY id")]
        moved = 0
        for chunk in chunks(ids):
            rows = conn.execute(
                sql_in(
                    "SELECT id, received_at, size, crc, key, body FROM dead_letters "
                    "WHERE id IN ({ids})",
                    chunk,
                ),
                chunk,
            ).fetchall()
            for ev_id, received_at, size, crc, key, body in rows:
                if schema.checksum(key, body) != crc or len(body) != size:
                    continue  # a damaged body stays where it is: never handed out
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO events (id, received_at, size, crc) VALUES (?, ?, ?, ?)",
                    (ev_id, received_at, size, crc),
                ).rowcount
                if inserted != 1:
                    continue  # already queued (a copy): leave the dead letter as it is
                conn.execute(
                    "INSERT OR REPLACE INTO bodies (id, key, body) VALUES (?, ?, ?)",
                    (ev_id, key, body),
                )
                conn.execute("DELETE FROM dead_letters WHERE id = ?", (ev_id,))
                t = self.totals
                t.events += 1
                t.bytes += size
                t.dead -= 1
                moved += 1
        self._refresh_oldest(conn)
        return moved

    def _quarantine(self, conn: sqlite3.Connection, found: list[tuple[int, str]]) -> None:
        """Dead-letter what the integrity scan found damaged; counted once per record moved
        (one a lease already moved is gone; a leased one was checked when it was leased)."""
        before = self.totals.dead
        for ev_id, reason in found:
            if ev_id not in self._leased:
                self._move_to_dead_letters(conn, [ev_id], reason)
        moved = self.totals.dead - before
        if moved:
            self.metrics.spool_corrupt_records.inc(moved)
            log.error("spool: %d event(s) damaged on disk moved to dead letters", moved)

    def _quarantine_orphans(self, conn: sqlite3.Connection, body_ids: list[int]) -> None:
        now = self.clock.time()
        moved = sum(schema.quarantine_orphan(conn, body_id, now) for body_id in body_ids)
        if moved:
            self.totals.dead += moved
            self.metrics.spool_corrupt_records.inc(moved)
            log.error("spool: %d body(ies) without their event moved to dead letters", moved)
