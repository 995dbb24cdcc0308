"""The audit log: one JSON line per write to OpenMetadata, rotated by size, no secrets.

Off unless `[audit] path` is set. Every write leaves `relay/_sinks/client.py`, which calls
`AuditLog.record` once per HTTP call with what the sink said the call is about (an
`AuditSubject`) and what came back:

    {"time": "2026-01-01T10:00:00.123+00:00", "operation": "openlineage_batch",
     "method": "POST", "url": "https://om.example.com/api/v1/openlineage/lineage/batch",
     "entities": ["file:/data/in", "file:/data/out", "job:default/etl.write"],
     "run_ids": ["0190..."], "events": 2, "outcome": "written", "status": 200,
     "duration_ms": 12.3}

`outcome` is `written` (2xx), `partial` (some events refused, as the server said),
`refused` (another answer; `error` holds the server's message) or `failed` (no answer:
timeout, connection error; `error` says which). No header and no event body is ever
written, and every string passes the log redaction (registered secrets, `Bearer ...`).

Lines are rendered on the event loop and written by one thread (a file write must not
hold the loop); the hand-off is a bounded queue, and a line that finds it full is counted
in `lineage_relay_audit_lines_dropped_total` and logged once rather than slowing delivery.
The stdlib's `RotatingFileHandler` rotates the file to `path.1`, `path.2`, ...
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from .._clock import Clock, SystemClock
from .._config import AuditConfig
from .._exceptions import ConfigError
from .logging import redact
from .metrics import Metrics

__all__ = ["AuditLog", "AuditSubject", "Outcome"]

log = logging.getLogger(__name__)

Outcome = Literal["written", "partial", "refused", "failed"]

_QUEUE_LINES = 10_000
_MAX_ERROR_CHARS = 300
_STOP = object()


@dataclass(frozen=True, slots=True)
class AuditSubject:
    """What one write is about, as the sink that makes it knows it."""

    operation: str  # e.g. "openlineage_batch", "put_lineage", "put_pipeline_status"
    entities: tuple[str, ...] = ()  # FQNs, or dataset/job names the server resolves
    run_ids: tuple[str, ...] = ()
    events: int = 0


class AuditLog:
    """Appends audit lines to `config.path` from a background thread; `aclose()` flushes."""

    def __init__(
        self, config: AuditConfig, *, metrics: Metrics | None = None, clock: Clock | None = None
    ) -> None:
        if not config.enabled:
            raise ValueError("AuditLog needs [audit] path")
        self._metrics = metrics
        self._clock = clock if clock is not None else SystemClock()
        path = Path(config.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=config.max_bytes, backupCount=config.backup_count,
                encoding="utf-8",
            )  # fmt: skip
        except OSError as exc:
            raise ConfigError(
                f"audit.path = {config.path!r} cannot be opened for appending "
                f"({exc.strerror}): point it at a writable file or leave it empty"
            ) from exc
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_LINES)
        self._warned_full = False
        self._closed = False
        self._thread = threading.Thread(
            target=self._write_lines, name="lineage-relay-audit", daemon=True
        )
        self._thread.start()

    def record(
        self,
        subject: AuditSubject | None,
        *,
        method: str,
        url: str,
        outcome: Outcome,
        status: int | None,
        duration_s: float,
        error: str = "",
    ) -> None:
        """Queue one line; never blocks and never raises (a full queue drops and counts)."""
        if self._closed:
            return
        subject = subject if subject is not None else AuditSubject(operation="unknown")
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(self._clock.time(), UTC).isoformat(
                timespec="milliseconds"
            ),
            "operation": subject.operation,
            "method": method,
            "url": url,
            "entities": list(subject.entities),
            "run_ids": list(subject.run_ids),
            "events": subject.events,
            "outcome": outcome,
            "status": status,
            "duration_ms": round(duration_s * 1000, 3),
        }
        if error:
            document["error"] = error[:_MAX_ERROR_CHARS]
        line = orjson.dumps(redact(document)).decode()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            if self._metrics is not None:
                self._metrics.audit_lines_dropped.inc()
            if not self._warned_full:
                self._warned_full = True
                log.warning(
                    "the audit log cannot keep up (the disk of audit.path is slow): lines are "
                    "dropped and counted in lineage_relay_audit_lines_dropped_total"
                )

    def _write_lines(self) -> None:
        while (line := self._queue.get()) is not _STOP:
            self._handler.emit(logging.makeLogRecord({"msg": line}))

    async def aclose(self) -> None:
        """Write what is queued, then close the file; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._queue.put(_STOP)  # blocks only while the writer empties a full queue
        self._thread.join()
        self._handler.close()
