"""A small file re-read when it changes: the ingest token file and the OpenMetadata token file.

A change is a new identity or new content metadata. `os.stat` follows symlinks, so the atomic
`..data` swap of a Kubernetes secret volume shows up as a new device/inode; an in-place rewrite
as a new size, mtime or ctime (ctime too: a same-size rewrite that restores the mtime still
moves the ctime).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["WatchedFile"]

_Signature = tuple[int, int, int, int, int]


class WatchedFile:
    """`changed()` is one `stat`, cheap enough for a hot path; `read_bytes()` reads and
    remembers what it read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: _Signature | None = None
        self._read = False

    def _signature(self) -> _Signature | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def changed(self) -> bool:
        """True before the first read, and whenever the file differs from the one last read
        (including when it can no longer be found)."""
        return not self._read or self._signature() != self._seen

    def read_bytes(self) -> bytes:
        """The file's content; `OSError` as `Path.read_bytes` raises it."""
        # Stat before reading: a swap in between costs one extra read, never a missed change.
        self._seen = self._signature()
        data = self.path.read_bytes()
        self._read = True
        return data
