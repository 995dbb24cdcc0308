"""Spill: events the relay could not take by the end of the flush, kept on local disk.

One NDJSON file per application (`<name>.ndjson`, one compact JSON event per line) in the
spill directory; a relay with `[ingest] spill_dir` pointing there ingests the files and
deletes each once its events are in the spool. A write replaces the file atomically: the
old lines plus the new ones go to a hidden temporary file, which is fsync'd and renamed
over the final name, so a crash leaves either the previous file or the new one, never half
of one (the relay ignores the hidden temporaries; the next write replaces a leftover).

The directory is bounded by `max_bytes`: beyond it the oldest spill files (other
applications' first) are deleted and their events counted as dropped. Nothing here raises:
a spill that cannot be written is reported as dropped events, and Spark never notices.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_SPILL_DIR", "Spill", "SpillOutcome", "spill_name"]

log = logging.getLogger(__name__)

DEFAULT_SPILL_DIR = os.path.join(tempfile.gettempdir(), "lineage-relay-spill")
SUFFIX = ".ndjson"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def spill_name(application_id: str, app_run_id: str) -> str:
    """The file stem for one application: its Spark id and lineage run id, filename-safe."""
    stem = _UNSAFE.sub("_", f"{application_id}-{app_run_id}").strip("._")
    return stem or "spark"


@dataclass(frozen=True, slots=True)
class SpillOutcome:
    written: int  # of this write's events, those now in the file
    dropped: int  # of this write's events, those lost (over the bound, or the write failed)
    evicted_own: int = 0  # events of this file's earlier writes pushed out by the bound
    evicted_other: int = 0  # events of other (older) spill files deleted for the bound


class Spill:
    """Writes one application's spill file; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str], name: str, *, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{name}{SUFFIX}"
        self.max_bytes = max_bytes
        # close() and the sender thread (an event failing just after close took the rest) may
        # both write: one read-modify-write at a time, or one would undo the other's lines
        self._lock = threading.Lock()

    def write(self, lines: Sequence[bytes]) -> SpillOutcome:
        """Add `lines` (compact JSON events, no newline inside) to the file; never raises."""
        if not lines:
            return SpillOutcome(0, 0)
        try:
            with self._lock:
                return self._write(lines)
        except OSError as exc:
            log.warning(
                "lineage-relay: could not spill %d lineage event(s) to %s: %s",
                len(lines),
                self.path,
                exc,
            )
            return SpillOutcome(written=0, dropped=len(lines))

    def _write(self, lines: Sequence[bytes]) -> SpillOutcome:
        # 0700: whatever lands here is ingested by the relay as if posted to it
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # The relay may have taken the file since the last write (then we start anew).
            existing = [line for line in self.path.read_bytes().split(b"\n") if line]
        except FileNotFoundError:
            existing = []
        kept = [*existing, *lines]
        overflow = 0
        size = sum(len(line) + 1 for line in kept)
        while kept and size > self.max_bytes:  # this application alone is over the bound
            size -= len(kept.pop(0)) + 1
            overflow += 1
        _replace(self.path, b"".join(line + b"\n" for line in kept))
        evicted_own = min(overflow, len(existing))
        outcome = SpillOutcome(
            written=len(lines) - (overflow - evicted_own),
            dropped=overflow - evicted_own,
            evicted_own=evicted_own,
            evicted_other=self._enforce_bound(),
        )
        lost = outcome.dropped + outcome.evicted_own + outcome.evicted_other
        if lost:
            log.warning(
                "lineage-relay: the spill directory %s is over its bound (%d bytes): "
                "dropped %d lineage event(s), the oldest first",
                self.directory,
                self.max_bytes,
                lost,
            )
        return outcome

    def _enforce_bound(self) -> int:
        """Delete the oldest other spill files until the directory fits; events dropped."""
        files: list[tuple[float, int, Path]] = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # the relay took it meanwhile
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        dropped = 0
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path == self.path:
                continue
            try:
                events = path.read_bytes().count(b"\n")
                path.unlink()
            except FileNotFoundError:
                events = 0  # ingested by the relay meanwhile: nothing lost
            total -= size
            dropped += events
        return dropped


def _replace(path: Path, data: bytes) -> None:
    """Write `data` under `path` atomically and durably (temp file, fsync, rename, dir fsync)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
