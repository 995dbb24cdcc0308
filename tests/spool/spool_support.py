"""Helpers for the spool's tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from relay._events import EventKey
from relay._observe.metrics import Metrics
from relay._spool import Spool
from relay._spool.schema import DB_NAME

# The `open_spool` fixture: keyword arguments go to SpoolConfig (plus metrics, clock,
# before_commit).
Opener = Callable[..., Coroutine[Any, Any, Spool]]


def key(n: int = 0, run_id: str = "run-1") -> EventKey:
    return EventKey(
        kind="run",
        event_time=f"2026-11-26T10:00:{n % 60:02d}.000Z",
        producer="https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
        event_type="START" if n % 2 == 0 else "COMPLETE",
        run_id=run_id,
        job_namespace="spark-prod",
        job_name=f"etl.job_{n}",
        body_hash=f"{n:064x}",
    )


def body(n: int, size: int = 300) -> bytes:
    head = b'{"eventType":"START","run":{"runId":"%d"},"pad":"' % n
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def counter(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def crash_image(spool_dir: Path, image: Path) -> Path:
    """The files of an open spool copied into `image`, as a crash leaves them (its commits in
    the WAL); returns the copy's WAL."""
    image.mkdir()
    for name in (DB_NAME, DB_NAME + "-wal"):
        shutil.copy(spool_dir / name, image / name)
    return image / (DB_NAME + "-wal")


def flip_a_bit_in_wal(wal: Path, marker: bytes) -> None:
    """Flip one bit inside the body marked `marker` in the WAL."""
    raw = bytearray(wal.read_bytes())
    raw[raw.index(marker) + 5] ^= 0x40
    wal.write_bytes(bytes(raw))
