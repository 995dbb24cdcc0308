"""How `LineageListener` is put on Spark's listener bus, and the two bridges that lead to it.

- `FilterBridge` (preferred): a small `SparkListener` subclass compiled at enable time with the
  Janino compiler Spark ships (`_listener_filter.java`) stays in the JVM for every event and
  calls Python (a py4j `BiConsumer`) only for SQL execution start/end, the end of an RDD API job
  (one outside any SQL execution), Structured Streaming query events and application end, with
  their fields flattened into one string: no task/stage/block event crosses into Python and a
  callback costs no py4j round trip besides the plan walk;
- `DirectBridge` (fallback): the Python object implements `SparkListenerInterface` itself, as
  the feasibility probe did; interface methods we do not use (and any that future Spark versions
  add) are answered by `__getattr__` with a no-op. It reports SQL executions only: RDD jobs and
  streaming queries need the filter.

Every callback catches everything: an exception escaping into Spark is logged by Spark on every
event, and a blocked callback would hold `spark.stop()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ._events import ErrorInfo
from ._janino import compiled_class
from ._listener import LineageListener

__all__ = ["DirectBridge", "FilterBridge", "ListenerRegistration", "compile_filter"]

log = logging.getLogger(__name__)

LISTENER_INTERFACE = "org.apache.spark.scheduler.SparkListenerInterface"
_SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
_SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
_FILTER_SOURCE = "_listener_filter.java"
_FILTER_CLASS = "LineageRelayListenerFilter"
_SEP = "\x1f"


class FilterBridge:
    """The Python side of the JVM-compiled `LineageRelayListenerFilter` (a py4j BiConsumer).

    The filter calls `accept(header, qe)` only for SQL execution start/end and application end,
    with every field flattened into `header` (fields separated by U+001F), so a callback costs no
    py4j round trip besides the plan walk.
    """

    class Java:
        implements = ["java.util.function.BiConsumer"]  # noqa: RUF012 - py4j reads it

    def __init__(self, core: LineageListener) -> None:
        self.core = core

    def accept(self, header: str, qe: Any) -> None:
        core = self.core
        if core.muted:
            return
        began = time.perf_counter()
        try:
            fields = header.split(_SEP)
            kind = fields[0]
            if kind == "S":
                core.on_start(int(fields[1]), int(fields[2]), int(fields[3]))
            elif kind == "E":
                # E, id, time, sql text, records, bytes, failed, [message, stack trace]
                error = ErrorInfo(fields[7], _SEP.join(fields[8:])) if fields[6] == "1" else None
                core.on_end(
                    int(fields[1]), int(fields[2]), qe, error, fields[3] or None,
                    written=(int(fields[4]), int(fields[5])),
                )  # fmt: skip
            elif kind in "QPT" and core.streams is not None:
                core.streams.on_event(kind, fields[1:])
            elif kind == "J":
                # J, job id, start, end, records, bytes, failed, [message, stack trace]
                error = ErrorInfo(fields[7], _SEP.join(fields[8:])) if fields[6] == "1" else None
                core.on_job_end(
                    int(fields[1]), int(fields[2]), int(fields[3]), qe, error,
                    records=int(fields[4]), size_bytes=int(fields[5]),
                )  # fmt: skip
            elif kind == "A":
                core.on_application_end(int(fields[1]))
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            core.record_callback_error("a Spark listener event")
        finally:
            core.callback_s += time.perf_counter() - began

    def equals(self, other: Any) -> bool:
        return other is self

    def hashCode(self) -> int:
        return id(self) & 0x7FFFFFFF

    def toString(self) -> str:
        return f"lineage-relay FilterBridge@{id(self):x}"


class DirectBridge:
    """Fallback when the filter cannot be compiled: Python implements `SparkListenerInterface`
    itself, so every listener-bus event crosses into Python and fields are read over py4j."""

    class Java:
        implements = [LISTENER_INTERFACE]  # noqa: RUF012 - py4j reads it

    def __init__(self, core: LineageListener, jvm: Any) -> None:
        self.core = core
        class_for_name = jvm.java.lang.Class.forName
        self._start_class = class_for_name(_SQL_START)
        self._end_class = class_for_name(_SQL_END)
        self._stack_traces = jvm.org.apache.commons.lang3.exception.ExceptionUtils

    def equals(self, other: Any) -> bool:
        return other is self

    def hashCode(self) -> int:
        return id(self) & 0x7FFFFFFF

    def toString(self) -> str:
        return f"lineage-relay DirectBridge@{id(self):x}"

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on"):
            return _ignore
        raise AttributeError(name)

    def onOtherEvent(self, event: Any) -> None:
        core = self.core
        if core.muted:
            return
        began = time.perf_counter()
        try:
            if self._start_class.isInstance(event):
                execution_id = int(event.executionId())
                root = event.rootExecutionId()
                root_id = int(root.get()) if root.isDefined() else execution_id
                core.on_start(execution_id, root_id, int(event.time()))
            elif self._end_class.isInstance(event):
                qe = event.qe()
                core.on_end(
                    int(event.executionId()),
                    int(event.time()),
                    qe,
                    self._error_of(event),
                    self._sql_text(qe),
                )
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            core.record_callback_error("a SQL execution event")
        finally:
            core.callback_s += time.perf_counter() - began

    def onApplicationEnd(self, event: Any) -> None:
        try:
            self.core.on_application_end(int(event.time()))
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            self.core.record_callback_error("the application end")

    @staticmethod
    def _sql_text(qe: Any) -> str | None:
        if qe is None:
            return None
        try:
            text = qe.logical().origin().sqlText()
            return str(text.get()) if text.isDefined() else None
        except Exception:  # noqa: BLE001 - the text is optional
            return None

    def _error_of(self, event: Any) -> ErrorInfo | None:
        failure = event.executionFailure()  # errorMessage() is Some("") on success in 4.x
        if not failure.isDefined():
            return None
        exc = failure.get()
        message = exc.getMessage() or exc.toString()
        try:
            stack = str(self._stack_traces.getStackTrace(exc))
        except Exception:  # noqa: BLE001 - the message alone is still worth reporting
            stack = ""
        return ErrorInfo(message=str(message), stack_trace=stack)


def _ignore(*_args: Any) -> None:
    return None


def compile_filter(gateway: Any) -> Any:
    """The `LineageRelayListenerFilter` class, compiled with Janino once per JVM (`_janino`)."""
    return compiled_class(gateway, _FILTER_SOURCE, _FILTER_CLASS)


class ListenerRegistration:
    """Puts the listener on the driver's listener bus, on its own queue, and really removes it.

    Preferred: the JVM filter (a real JVM object, so add and remove see the same reference).
    Fallback (`use_filter=False` or no Janino): the Python proxy itself, created once inside a
    JVM `Object[]` and always passed by reflection: py4j makes a new JVM proxy each time a Python
    object crosses to Java and Spark removes listeners by reference, so a plain
    `removeSparkListener(pyobj)` would silently remove nothing.

    With `queue_name`, the listener gets its own listener-bus queue and thread
    (`LiveListenerBus.addToQueue`, internal API, public in bytecode); when that is unavailable
    it falls back to Spark's shared queue.
    """

    def __init__(
        self,
        spark_context: Any,
        gateway: Any,
        core: LineageListener,
        *,
        queue_name: str | None,
        use_filter: bool = True,
    ) -> None:
        jvm = gateway.jvm
        self._spark_context = spark_context  # the JVM SparkContext
        self._gateway = gateway
        self._bus = spark_context.listenerBus()
        self.queue_name: str | None = None
        self._filter: Any = None
        self.bridge: FilterBridge | DirectBridge
        interface = jvm.java.lang.Class.forName(LISTENER_INTERFACE)
        one = gateway.new_array(jvm.java.lang.Class, 1)
        one[0] = interface
        two = gateway.new_array(jvm.java.lang.Class, 2)
        two[0] = interface
        two[1] = jvm.java.lang.Class.forName("java.lang.String")
        holder = jvm.java.util.ArrayList()
        if use_filter:
            try:
                cls = compile_filter(gateway)
                self.bridge = FilterBridge(core)
                constructor_args = jvm.java.util.ArrayList()
                constructor_args.add(self.bridge)  # the BiConsumer proxy
                constructor_args.add(spark_context)  # for RDD jobs' ActiveJob
                self._filter = cls.getConstructors()[0].newInstance(constructor_args.toArray())
                holder.add(self._filter)
            except Exception:
                log.warning(
                    "lineage-relay: could not compile the JVM listener filter; every listener "
                    "event will cross into Python (slower)",
                    exc_info=True,
                )
                self._filter = None
        if self._filter is None:
            self.bridge = DirectBridge(core, jvm)
            holder.add(self.bridge)
        self._listener_args = holder.toArray()  # the one JVM listener, reused for removal
        self._remove_method = spark_context.getClass().getMethod("removeSparkListener", one)
        if queue_name:
            holder.add(queue_name)
            try:
                self._bus.getClass().getMethod("addToQueue", two).invoke(
                    self._bus, holder.toArray()
                )
                self.queue_name = queue_name
            except Exception:
                log.warning(
                    "lineage-relay: no dedicated listener queue here; using Spark's shared one",
                    exc_info=True,
                )
        if self.queue_name is None:
            spark_context.getClass().getMethod("addSparkListener", one).invoke(
                spark_context, self._listener_args
            )
        self.active = True

    @property
    def filtered(self) -> bool:
        """Whether the JVM filter is in use (else every event crosses into Python)."""
        return self._filter is not None

    def wait_until_drained(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until our listener queue has delivered what it holds."""
        if timeout_s <= 0:
            return False
        name = self.queue_name or "shared"
        field = self._bus.getClass().getDeclaredField("queues")
        field.setAccessible(True)
        queues = field.get(self._bus)
        for index in range(queues.size()):
            queue = queues.get(index)
            if queue.name() == name:
                now_ms = self._gateway.jvm.java.lang.System.currentTimeMillis()
                return bool(queue.waitUntilEmpty(now_ms + int(timeout_s * 1000)))
        return True

    def remove(self) -> None:
        """Remove the listener from every queue (Spark stops our queue once it is empty)."""
        if not self.active:
            return
        self.active = False
        if self._filter is not None:
            self._filter.mute()  # what is still queued is dropped in the JVM, not in Python
        self._remove_method.invoke(self._spark_context, self._listener_args)

    def is_registered(self) -> bool:
        """Whether the bus still holds our listener (for tests and diagnostics)."""
        listeners = self._bus.listeners()
        if self._filter is not None:
            return bool(listeners.contains(self._filter))
        # toString is answered by the Python object behind each proxy, and names it uniquely
        mine = self.bridge.toString()
        return any(str(listeners.get(i).toString()) == mine for i in range(listeners.size()))
