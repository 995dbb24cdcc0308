"""The plugin's only global state: the enabled handles, one per SparkContext, and the exit hook.

`enable()` twice on the same SparkContext returns the same handle; a new SparkContext (after
`spark.stop()` and a new session) gets a new one. At interpreter exit, handles still open are
closed with their flush deadline, so the last events get their chance without holding exit up.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Protocol

__all__ = ["Closable", "find", "forget", "lock", "remember", "reset"]

log = logging.getLogger(__name__)


class Closable(Protocol):
    @property
    def closed(self) -> bool: ...

    def close(self, timeout_s: float | None = None) -> bool: ...


lock = threading.RLock()
_handles: dict[int, tuple[Any, Closable]] = {}  # id(SparkContext) -> (SparkContext, handle)
_exit_hook_installed = False


def find(spark_context: Any) -> Closable | None:
    """The open handle enabled on this SparkContext, if any."""
    with lock:
        entry = _handles.get(id(spark_context))
        if entry is None or entry[0] is not spark_context or entry[1].closed:
            return None
        return entry[1]


def remember(spark_context: Any, handle: Closable) -> None:
    global _exit_hook_installed
    with lock:
        _handles[id(spark_context)] = (spark_context, handle)
        if not _exit_hook_installed:
            # registered after pyspark's own exit hooks, so it runs before them (LIFO)
            atexit.register(_close_all_at_exit)
            _exit_hook_installed = True


def forget(handle: Closable) -> None:
    with lock:
        for key, (_, known) in list(_handles.items()):
            if known is handle:
                del _handles[key]


def reset() -> None:
    """Close every handle (tests, interpreter exit)."""
    with lock:
        handles = [handle for _, handle in _handles.values()]
    for handle in handles:
        try:
            handle.close()
        except Exception:
            log.debug("lineage-relay: closing a lineage handle failed", exc_info=True)
    with lock:
        _handles.clear()


def _close_all_at_exit() -> None:
    reset()
