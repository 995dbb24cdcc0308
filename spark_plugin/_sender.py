"""Sender: a bounded in-process queue drained by one daemon thread that POSTs events to the relay.

The Spark listener thread only calls `submit`, which never blocks: `put_nowait`, and when the queue
is full the event is dropped and counted. The thread serialises each event (compact JSON, gzip when
configured), POSTs it with `http.client` on a kept-alive connection with a short timeout, and
retries a failed POST a few times while the receiver has recently been healthy; once a POST has
failed for good, later events get a single attempt until one succeeds again, so a dead or hanging
receiver cannot build an ever-growing backlog of slow retries.

Counters (monotonic, read without locking):
- `emitted`: events the receiver accepted (2xx);
- `failed`: POST attempts that did not succeed (errors, timeouts, non-2xx), retries included;
- `dropped`: events that will never be delivered: queue full, given up after retries or refused
  with a 4xx, or still queued when `close` ran out of time. `dropped_by_reason` splits them.

So `submitted == emitted + dropped + pending` at any time, and after `close()` plus the in-flight
POST's timeout, `pending == 0`.
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
    ) -> None:
        self._config = config
        self._sleep = sleep
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
        self.failed = 0
        self.dropped_by_reason: dict[str, int] = {
            "queue_full": 0,
            "undeliverable": 0,
            "shutdown": 0,
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
        """Events submitted and not yet emitted or dropped (queued or in flight)."""
        return self.submitted - self.emitted - self.dropped

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
        return True

    def close(self, timeout_s: float) -> bool:
        """Flush for at most `timeout_s`, then stop: what is still queued is dropped and counted.

        Never waits longer than `timeout_s`; a POST still in flight ends on its own timeout
        (daemon thread) and is counted then. Idempotent. True when nothing was left behind.
        """
        if self._closed:
            return self.pending == 0
        flushed = self.flush(timeout_s)
        self._closed = True
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            if item is not _STOP:
                left += 1
        self._drop("shutdown", left)
        if left:
            log.warning(
                "lineage-relay: dropped %d unsent lineage event(s) at shutdown after %.1f s "
                "(is the relay at %s running?)",
                left,
                timeout_s,
                self._config.post_url,
            )
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        return flushed and left == 0

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

    def _deliver(self, event: Mapping[str, Any]) -> None:
        body = _dumps(event)
        if self._config.compression == "gzip":
            body = gzip.compress(body, compresslevel=3)
        attempts = 1 + (self._config.retries if self._healthy else 0)
        for attempt in range(attempts):
            if self._closed and attempt:
                break  # shutting down: no more retries
            try:
                self._post(body)
            except _Refused as exc:
                self.failed += 1
                self._drop("undeliverable")
                log.warning("lineage-relay: the receiver refused a lineage event: %s", exc)
                return
            except _Undeliverable as exc:
                self.failed += 1
                log.debug("lineage-relay: POST attempt %d failed: %s", attempt + 1, exc)
                if attempt + 1 < attempts and not self._closed:
                    self._sleep(_RETRY_BACKOFF_S * (2**attempt))
                continue
            self.emitted += 1
            self._healthy = True
            return
        if self._healthy:
            log.warning(
                "lineage-relay: cannot deliver lineage events to %s; dropping them (counted) "
                "until it answers again",
                self._config.post_url,
            )
        self._healthy = False
        self._drop("undeliverable")

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
