"""Spill files: events a Spark plugin could not post, taken into the spool from a directory.

The plugin (`spark_plugin._spill`) writes one NDJSON file per application into its spill
directory, atomically (a hidden temporary renamed to `<name>.ndjson`). With
`[ingest] spill_dir` set to that directory, the relay takes the files up at start and every
`ingest.spill_interval_s`:

1. claim: rename `<name>.ndjson` to `<name>.ndjson.ingesting` (a plugin writing again meanwhile
   creates a new file instead of having its events deleted with this one; a claimed file left
   by a crash is taken up first next time);
2. check each line's envelope as HTTP ingest does; append the good events to the spool (fsync'd,
   in batches), skipping those the ledger says were queued before (`_spool/ledger.py`), and
   record them in the ledger;
3. write the bad lines (not JSON, cut short, no envelope) to `quarantine/<name>.<time>.bad`
   beside the files, with a log line naming each;
4. delete the claimed file, only now that its events are in the spool.

A full spool leaves the claimed file for the next round (the ledger keeps what went in already
from going in twice). Nothing here stops the relay except a failed spool (as with HTTP ingest).
A directory every local user can write to is refused (anyone could inject lineage through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from .._events import EventKey
from .._exceptions import SpoolFailure, SpoolFull
from .._observe.metrics import Metrics
from .._spool.ledger import Ledger
from .lines import BadLine, content_key, parse_ndjson
from .routes import Appender

__all__ = ["MAX_FILE_BYTES", "SpillReader"]

log = logging.getLogger(__name__)

SUFFIX: Final = ".ndjson"
CLAIMED: Final = ".ingesting"
QUARANTINE: Final = "quarantine"
_BATCH_EVENTS: Final = 500
MAX_FILE_BYTES: Final = 256 * 1024 * 1024  # larger is no spill file: quarantined unread


class SpillReader:
    """Takes spill files from `directory` into the spool; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        spool: Appender,
        ledger: Ledger,
        metrics: Metrics,
        max_file_bytes: int,
        batch_bytes: int,
        on_spool_failure: Callable[[SpoolFailure], None] = lambda exc: None,
    ) -> None:
        self.directory = directory
        self._spool = spool
        self._ledger = ledger
        self._metrics = metrics
        self._max_file_bytes = max_file_bytes
        self._batch_bytes = batch_bytes
        self._on_spool_failure = on_spool_failure
        self._stop = asyncio.Event()
        self._warned_permissions = False

    def stop(self) -> None:
        """Finish the file in hand (its events and ledger entries stay consistent), then stop."""
        self._stop.set()

    async def run(self, interval_s: float) -> None:
        """Scan now, then every `interval_s`, until `stop()`; never raises but for a failed
        spool (reported through `on_spool_failure`)."""
        while not self._stop.is_set():
            try:
                await self.scan()
            except SpoolFailure as exc:
                self._on_spool_failure(exc)
                return
            except Exception:  # a bug must not end the periodic scan
                log.exception("spill: scanning %s failed", self.directory)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval_s)

    async def scan(self) -> int:
        """Take up every spill file there is now; return how many events were queued."""
        files = await asyncio.to_thread(self._list)
        queued = 0
        for path in files:
            if self._stop.is_set():
                break
            try:
                queued += await self._take(path)
            except SpoolFull as exc:
                log.warning("spill: the spool is full; %s waits for the next round: %s", path, exc)
                break
        return queued

    # -- one file -------------------------------------------------------------------------------

    def _list(self) -> list[Path]:
        """Claimed leftovers first (a crash mid-file), then the files oldest first."""
        try:
            mode = self.directory.stat().st_mode
        except FileNotFoundError:
            return []
        if mode & stat.S_IWOTH:
            if not self._warned_permissions:
                self._warned_permissions = True
                log.error(
                    "spill: ingest.spill_dir %s can be written by every local user, who could "
                    "inject lineage events through it; nothing is taken from it until it is not "
                    "(chmod o-w, or let the Spark plugin create it: it makes it 0700)",
                    self.directory,
                )
            return []
        claimed = sorted(self.directory.glob(f"*{SUFFIX}{CLAIMED}"))
        fresh: list[tuple[float, Path]] = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                fresh.append((path.stat().st_mtime, path))
        return claimed + [path for _, path in sorted(fresh)]

    async def _take(self, path: Path) -> int:
        if path.name.endswith(SUFFIX):
            claimed = path.with_name(path.name + CLAIMED)
            try:
                await asyncio.to_thread(os.rename, path, claimed)
            except FileNotFoundError:
                return 0
        else:
            claimed = path
        name = claimed.name.removesuffix(CLAIMED)
        try:
            data = await asyncio.to_thread(self._read, claimed)
        except OSError as exc:
            log.warning("spill: cannot read %s, left for the next round: %s", claimed, exc)
            return 0
        if data is None:
            await asyncio.to_thread(self._quarantine_whole, claimed, name)
            return 0
        parsed = parse_ndjson(data)
        keys = [content_key(key) for _, key in parsed.items]
        fresh = await asyncio.to_thread(self._ledger.unseen, keys)
        items = [item for item, new in zip(parsed.items, fresh, strict=True) if new]
        for batch in _batches(items, self._batch_bytes):
            try:
                await self._spool.append(batch)
            except SpoolFailure as exc:
                log.critical("spill: the spool failed while taking %s: %s", claimed, exc)
                raise
            await asyncio.to_thread(self._ledger.add, [content_key(key) for _, key in batch])
            self._metrics.events_received.labels(endpoint="spill").inc(len(batch))
        if parsed.bad:
            await asyncio.to_thread(self._quarantine_lines, name, parsed.bad)
        await asyncio.to_thread(claimed.unlink)
        log.info(
            "spill: took up %s: %d event(s) queued, %d already queued before, %d bad line(s)",
            name, len(items), len(parsed.items) - len(items), len(parsed.bad),
        )  # fmt: skip
        return len(items)

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes; None when it is too large to be a spill file (quarantined whole)."""
        with open(path, "rb") as f:
            data = f.read(self._max_file_bytes + 1)
        return None if len(data) > self._max_file_bytes else data

    def _quarantine_dir(self) -> Path:
        where = self.directory / QUARANTINE
        where.mkdir(mode=0o700, exist_ok=True)
        return where

    def _quarantine_lines(self, name: str, bad: Sequence[BadLine]) -> None:
        target = self._quarantine_dir() / f"{name}.{_stamp()}.bad"
        with open(target, "wb") as f:
            for line in bad:
                f.write(line.raw + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._metrics.events_rejected.labels(reason="spill_bad_line").inc(len(bad))
        for line in bad[:10]:
            log.error("spill: %s: %s", name, line.reason)
        log.error(
            "spill: %d bad line(s) of %s (cut short or damaged) moved to %s; its other events "
            "were queued", len(bad), name, target,
        )  # fmt: skip

    def _quarantine_whole(self, path: Path, name: str) -> None:
        target = self._quarantine_dir() / f"{name}.{_stamp()}.bad"
        os.rename(path, target)
        self._metrics.events_rejected.labels(reason="spill_bad_line").inc()
        log.error(
            "spill: %s is larger than a spill file can be (%d bytes); moved to %s untouched",
            name, self._max_file_bytes, target,
        )  # fmt: skip


def _batches(
    items: list[tuple[bytes, EventKey]], max_bytes: int
) -> list[list[tuple[bytes, EventKey]]]:
    out: list[list[tuple[bytes, EventKey]]] = []
    size = 0
    for item in items:
        if not out or len(out[-1]) >= _BATCH_EVENTS or (size + len(item[0]) > max_bytes):
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[0])
    return out


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"
