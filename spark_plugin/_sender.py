"""Sender: a bounded in-process queue drained by one daemon thread that POSTs events to the relay.

The Spark listener thread only calls `submit`, which never blocks: `put_nowait`, and when the queue
is full the event is dropped and counted. The thread serialises each event (compact JSON, gzip when
configured), POSTs it with `http.client` on a kept-alive connection with a short timeout, and
retries a failed POST a few times while the receiver has recently been healthy; once a POST has
failed for good, later events get a single attempt until one succeeds again, so a dead or hanging
receiver cannot build an ever-growing backlog of slow retries.

With a `Spill` (the default), an event the receiver could not take (connection refused, timeout,
408/429/5xx) is held back instead of dropped, and handed back to the queue as soon as a POST
succeeds again; whatever is still held, queued or in flight when `close` reaches its deadline is
written to the spill file (see `_spill`), within the same deadline: `close` keeps a small part of
its time for that write. Held events beyond `queue_size` are spilled at once, by the sender thread.

Counters (monotonic, read without locking):
- `emitted`: events the receiver accepted (2xx);
- `failed_posts`: POST attempts that did not succeed (errors, timeouts, non-2xx), retries included;
- `spilled`: events written to the spill file (a relay delivers them later);
- `dropped`: events that will never be delivered: queue full, given up after retries or refused
  with a 4xx, still queued when `close` ran out of time without a spill, or pushed out of the
  spill directory by its bound. `dropped_by_reason` splits them.

So `submitted == emitted + spilled + dropped + pending` at any time, and after `close()`
`pending == 0` (an event in flight at the deadline is spilled; should its POST succeed after
all, the relay's duplicate detection keeps it from reaching OpenMetadata twice).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ._config import PluginConfig
from ._spill import Spill

try:
    import orjson

    def _dumps(event: Mapping[str, Any]) -> bytes:
        return orjson.dumps(event)

except ImportError:  # pragma: no cover - orjson is a dependency; stay usable without it
    import json

    def _dumps(event: Mapping[str, Any]) -> bytes:
        return json.dumps(event, separators=(",", ":")).encode()


__all__ = ["Sender"]

log = logging.getLogger(__name__)

_USER_AGENT = "lineage-relay-spark-plugin/0.1.0"
_RETRY_BACKOFF_S = 0.1
# Of close()'s deadline, what is kept for writing the spill file (a local, bounded write).
_SPILL_RESERVE_RATIO = 0.1
_SPILL_RESERVE_MAX_S = 0.25
_STOP = object()  # sentinel: the thread exits when it takes this


class _Undeliverable(Exception):
    """A POST failed in a way another attempt may fix (connection, timeout, 429/5xx)."""


class _Refused(Exception):
    """The receiver refused the event for good (a 4xx other than 408/429)."""


class Sender:
    """Bounded queue plus one daemon thread; see the module docstring."""

    def __init__(
        self,
        config: PluginConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "lineage-relay-sender",
        spill: Spill | None = None,
    ) -> None:
        self._config = config
        self._sleep = sleep
        self._spill = spill
        self._held: list[bytes] = []  # undeliverable for now, kept for a retry or the spill
        self._current: bytes | None = None  # the body being POSTed
        self._current_taken = False  # close() spilled the body in flight: its outcome is moot
        self._held_closed = False  # close() took the held events: later ones spill at once
        target = urlsplit(config.post_url)
        self._https = target.scheme == "https"
        self._host = target.hostname or "127.0.0.1"
        self._port = target.port or (443 if self._https else 80)
        self._path = target.path + (f"?{target.query}" if target.query else "")
        self._headers = self._build_headers(config)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=config.queue_size)
        self._connection: http.client.HTTPConnection | None = None
        self._healthy = True
        self._closed = False
        self._idle = threading.Condition()
        self._count_lock = threading.Lock()  # submit runs on the listener and the caller's thread
        self.submitted = 0
        self.emitted = 0
        self.failed_posts = 0
        self.spilled = 0
        self.dropped_by_reason: dict[str, int] = {
            "queue_full": 0,
            "undeliverable": 0,
            "shutdown": 0,
            "spill_full": 0,
        }
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @staticmethod
    def _build_headers(config: PluginConfig) -> dict[str, str]:
        headers = dict(config.headers)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "application/json"
        headers.setdefault("User-Agent", _USER_AGENT)
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key.reveal()}"
        if config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        return headers

    # -- counters -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    @property
    def pending(self) -> int:
        """Events submitted and not yet emitted, spilled or dropped (queued, held or in flight)."""
        return self.submitted - self.emitted - self.spilled - self.dropped

    # -- the listener side ----------------------------------------------------------------

    def submit(self, event: Mapping[str, Any]) -> bool:
        """Queue one event without ever blocking; False (and counted) when it is dropped."""
        with self._count_lock:
            self.submitted += 1
        if self._closed:
            self._drop("shutdown")
            return False
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._drop("queue_full")
            return False
        return True

    def _drop(self, reason: str, count: int = 1) -> None:
        with self._count_lock:
            self.dropped_by_reason[reason] += count

    def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until every queued event is delivered or dropped."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._idle:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._idle.wait(min(remaining, 0.05))
        with self._count_lock:
            return not self._held

    def close(self, timeout_s: float) -> bool:
        """Flush for at most `timeout_s`, then stop: what is still queued is dropped and counted.

        Never waits longer than `timeout_s`; a POST still in flight ends on its own timeout
        (daemon thread) and is counted then. Idempotent. True when nothing was left behind.
        """
        if self._closed:
            return self.pending == 0
        reserve = 0.0
        if self._spill is not None:
            reserve = min(_SPILL_RESERVE_MAX_S, _SPILL_RESERVE_RATIO * max(0.0, timeout_s))
        flushed = self.flush(timeout_s - reserve)
        self._closed = True
        with self._count_lock:
            self._held_closed = True  # from now on nothing goes back to the queue
        left: list[object] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            if item is not _STOP:
                left.append(item)
        with self._count_lock:
            held, self._held = self._held, []
            if self._current is not None and self._spill is not None:
                held.append(self._current)
                self._current_taken = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        if self._spill is None:
            self._drop("shutdown", len(left))
            if left:
                log.warning(
                    "lineage-relay: dropped %d unsent lineage event(s) at shutdown after %.1f s "
                    "(is the relay at %s running?)",
                    len(left),
                    timeout_s,
                    self._config.post_url,
                )
            return flushed and not left
        unsent = held + [_body(item) for item in left]
        written = self._write_spill(unsent)
        if written:
            log.warning(
                "lineage-relay: %d lineage event(s) not delivered to %s by shutdown; spilled to "
                "%s (a relay with [ingest] spill_dir = %s delivers them)",
                written,
                self._config.post_url,
                self._spill.path,
                self._spill.directory,
            )
        return flushed and not unsent

    def _write_spill(self, bodies: list[bytes]) -> int:
        """Spill `bodies` (taken off the queue or held), counting the outcome; events written."""
        assert self._spill is not None  # noqa: S101 -- only called with a spill
        outcome = self._spill.write(bodies)
        with self._count_lock:
            self.spilled += outcome.written - outcome.evicted_own
            self.dropped_by_reason["spill_full"] += outcome.dropped + outcome.evicted_own
        return outcome.written

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end (after `close`); True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    self._disconnect()
                    return
                self._deliver(item)  # type: ignore[arg-type]
            except BaseException:  # never let the thread die on a bad event
                log.exception("lineage-relay: unexpected error while sending a lineage event")
                self._drop("undeliverable")
            finally:
                with self._idle:
                    self._queue.task_done()
                    self._idle.notify_all()

    def _deliver(self, item: Mapping[str, Any] | bytes) -> None:
        event = _body(item)
        with self._count_lock:
            self._current, self._current_taken = event, False
        try:
            delivered = self._post_with_retries(event)
        finally:
            with self._count_lock:
                taken, self._current = self._current_taken, None
        if taken:
            return  # close() spilled it: counted there, whatever became of the POST
        if delivered is None:
            return  # refused for good: counted as dropped
        if delivered:
            self.emitted += 1
            self._requeue_held()
        elif self._spill is None:
            self._drop("undeliverable")
        else:
            self._hold(event)

    def _hold(self, event: bytes) -> None:
        with self._count_lock:
            self._held.append(event)
            overflow = self._held
            if self._held_closed or len(overflow) > self._config.queue_size:
                self._held = []
            else:
                overflow = []
        if overflow:  # bounded memory: the oldest held events go to disk now
            self._write_spill(overflow)

    def _requeue_held(self) -> None:
        """The receiver answers again: what was held goes back to the queue (room allowing)."""
        with self._count_lock:
            if self._held_closed:
                return
            while self._held:
                try:
                    self._queue.put_nowait(self._held[0])
                except queue.Full:
                    return
                del self._held[0]

    def _post_with_retries(self, event: bytes) -> bool | None:
        """True: delivered; False: undeliverable for now; None: refused for good (dropped)."""
        body = event
        if self._config.compression == "gzip":
            body = gzip.compress(body, compresslevel=3)
        attempts = 1 + (self._config.retries if self._healthy else 0)
        for attempt in range(attempts):
            if self._closed and attempt:
                break  # shutting down: no more retries
            try:
                self._post(body)
            except _Refused as exc:
                self.failed_posts += 1
                self._drop("undeliverable")
                log.warning("lineage-relay: the receiver refused a lineage event: %s", exc)
                return None
            except _Undeliverable as exc:
                self.failed_posts += 1
                log.debug("lineage-relay: POST attempt %d failed: %s", attempt + 1, exc)
                if attempt + 1 < attempts and not self._closed:
                    self._sleep(_RETRY_BACKOFF_S * (2**attempt))
                continue
            self._healthy = True
            return True
        if self._healthy:
            log.warning(
                "lineage-relay: cannot deliver lineage events to %s; %s until it answers again",
                self._config.post_url,
                "keeping them for the spill file"
                if self._spill is not None
                else "dropping them (counted)",
            )
        self._healthy = False
        return False

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            timeout = self._config.timeout_s
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=timeout
                )
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _post(self, body: bytes) -> None:
        connection = self._connect()
        try:
            connection.request("POST", self._path, body=body, headers=self._headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            raise _Undeliverable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status
        if response.will_close:
            self._disconnect()
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise _Undeliverable(f"HTTP {status} {response.reason}")
        raise _Refused(f"HTTP {status} {response.reason} from {self._config.post_url}")


def _body(item: object) -> bytes:
    """An event as the compact JSON bytes that are POSTed (and spilled)."""
    if isinstance(item, bytes):
        return item
    return _dumps(item)  # type: ignore[arg-type]
