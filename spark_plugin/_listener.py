"""The py4j listener proxy living in the Spark driver JVM, and its registration.

`LineageListener` is a Python object that implements Spark's `SparkListenerInterface` through py4j
callbacks. Spark calls it on a listener-bus thread (our own queue, `lineage`, by default, so a
slow plan walk never delays Spark's shared queue), never on a query thread. It:

- remembers each SQL execution's start (time, root execution id) at `SQLExecutionStart`;
- at `SQLExecutionEnd`, asks the plan walker for the execution's lineage; a nested execution
  (the inner writes of `saveAsTable` and CTAS, which share a `rootExecutionId`) is kept until its
  root ends, then all are merged into one run: START (with the start time) then COMPLETE, or FAIL
  with the error when `executionFailure` is set (`errorMessage` is `Some("")` on success in 4.x);
- hands pure-Python event dicts to `submit` (the sender's non-blocking `put_nowait`).

Every callback catches everything: an exception escaping into Spark is logged by Spark on every
event, and a blocked callback would hold `spark.stop()`. Interface methods we do not use (and any
that future Spark versions add) are answered by `__getattr__` with a no-op.

Registration goes through Java reflection with the proxy held in one JVM `Object[]`: py4j makes a
new JVM proxy each time a Python object crosses to Java and Spark removes listeners by reference,
so `removeSparkListener(pyobj)` would silently remove nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._events import AppContext, ErrorInfo, execution_event, merge_executions, new_run_id
from ._model import ExecutionLineage

__all__ = ["LineageListener", "ListenerRegistration"]

log = logging.getLogger(__name__)

LISTENER_INTERFACE = "org.apache.spark.scheduler.SparkListenerInterface"
_SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
_SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
# Executions whose START we saw but whose END never came (Spark dropped it on a full queue) are
# forgotten past this many, oldest first, so memory stays bounded.
_MAX_TRACKED = 10_000

Describe = Callable[[Any], ExecutionLineage | None]
JobName = Callable[[ExecutionLineage], str]
Submit = Callable[[dict[str, Any]], bool]


@dataclass(slots=True)
class _Started:
    root_id: int
    start_ms: int


@dataclass(slots=True)
class _Ended:
    execution_id: int
    lineage: ExecutionLineage | None
    error: ErrorInfo | None


class LineageListener:
    """The Python side of the JVM listener proxy. Runs on one listener-bus thread at a time."""

    class Java:
        implements = [LISTENER_INTERFACE]  # noqa: RUF012 - py4j reads this class attribute

    def __init__(
        self,
        *,
        jvm: Any,
        context: AppContext,
        describe: Describe,
        job_name: JobName,
        submit: Submit,
        on_application_end: Callable[[int], None],
    ) -> None:
        class_for_name = jvm.java.lang.Class.forName
        self._start_class = class_for_name(_SQL_START)
        self._end_class = class_for_name(_SQL_END)
        self._stack_traces = jvm.org.apache.commons.lang3.exception.ExceptionUtils
        self._context = context
        self._describe = describe
        self._job_name = job_name
        self._submit = submit
        self._on_application_end = on_application_end
        self._started: dict[int, _Started] = {}
        self._nested: dict[int, list[_Ended]] = {}
        self._mute_at = float("inf")
        # statistics, read by the handle and the benchmark
        self.callback_s = 0.0  # time spent inside our SQL/application callbacks, walker included
        self.runs = 0  # root executions reported
        self.skipped = 0  # root executions with nothing to report
        self.errors = 0  # callbacks that failed (logged, swallowed)

    # -- lifecycle, called from the handle's thread ----------------------------------------

    def mute_after(self, deadline_monotonic: float) -> None:
        """From `deadline_monotonic` on, callbacks return at once (shutdown must not wait)."""
        self._mute_at = deadline_monotonic

    # -- py4j plumbing ----------------------------------------------------------------------

    def equals(self, other: Any) -> bool:
        return other is self

    def hashCode(self) -> int:
        return id(self) & 0x7FFFFFFF

    def toString(self) -> str:
        return f"lineage-relay LineageListener@{id(self):x}"

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on"):
            return _ignore
        raise AttributeError(name)

    # -- callbacks ----------------------------------------------------------------------------

    def onOtherEvent(self, event: Any) -> None:
        if time.monotonic() >= self._mute_at:
            return
        began = time.perf_counter()
        try:
            if self._start_class.isInstance(event):
                self._on_start(event)
            elif self._end_class.isInstance(event):
                self._on_end(event)
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            self._failed("a SQL execution event")
        finally:
            self.callback_s += time.perf_counter() - began

    def onApplicationEnd(self, event: Any) -> None:
        try:
            self._on_application_end(int(event.time()))
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            self._failed("the application end")

    # -- the work -----------------------------------------------------------------------------

    def _failed(self, what: str) -> None:
        self.errors += 1
        # The first failure is logged in full; later ones briefly, never into Spark.
        if self.errors == 1:
            log.warning("lineage-relay: could not handle %s; lineage skipped", what, exc_info=True)
        else:
            log.debug("lineage-relay: could not handle %s", what, exc_info=True)

    def _on_start(self, event: Any) -> None:
        execution_id = int(event.executionId())
        root = event.rootExecutionId()
        root_id = int(root.get()) if root.isDefined() else execution_id
        if len(self._started) >= _MAX_TRACKED:
            self._started.pop(next(iter(self._started)))
        self._started[execution_id] = _Started(root_id, int(event.time()))

    def _on_end(self, event: Any) -> None:
        execution_id = int(event.executionId())
        end_ms = int(event.time())
        started = self._started.pop(execution_id, None) or _Started(execution_id, end_ms)
        error = self._error_of(event)
        lineage = self._lineage_of(event)
        ended = _Ended(execution_id, lineage, error)
        if started.root_id != execution_id:
            if len(self._nested) >= _MAX_TRACKED:
                self._nested.pop(next(iter(self._nested)))
            self._nested.setdefault(started.root_id, []).append(ended)
            return
        # outermost first: the root, then its nested executions in the order they began
        parts = [ended, *sorted(self._nested.pop(execution_id, []), key=lambda e: e.execution_id)]
        self._report(parts, started.start_ms, end_ms)

    def _lineage_of(self, event: Any) -> ExecutionLineage | None:
        try:
            return self._describe(event.qe())
        except Exception:
            # analysis errors re-throw from qe.analyzed(); a walker bug must not stop the run's
            # other executions from being reported
            log.debug("lineage-relay: plan walk failed", exc_info=True)
            return None

    def _error_of(self, event: Any) -> ErrorInfo | None:
        failure = event.executionFailure()
        if not failure.isDefined():
            return None
        exc = failure.get()
        message = exc.getMessage() or exc.toString()
        try:
            stack = str(self._stack_traces.getStackTrace(exc))
        except Exception:  # noqa: BLE001 - the message alone is still worth reporting
            stack = ""
        return ErrorInfo(message=str(message), stack_trace=stack)

    def _report(self, parts: list[_Ended], start_ms: int, end_ms: int) -> None:
        lineages = [p.lineage for p in parts if p.lineage is not None]
        if not lineages:
            self.skipped += 1
            return
        error = next((p.error for p in parts if p.error is not None), None)
        merged = merge_executions(lineages)
        job_name = self._job_name(merged)
        run_id = new_run_id(start_ms)
        ctx = self._context
        self._submit(
            execution_event(
                ctx, "START", start_ms, run_id=run_id, job_name=job_name, lineage=merged
            )
        )
        self._submit(
            execution_event(
                ctx,
                "FAIL" if error is not None else "COMPLETE",
                end_ms,
                run_id=run_id,
                job_name=job_name,
                lineage=merged,
                error=error,
            )
        )
        self.runs += 1


def _ignore(*_args: Any) -> None:
    return None


class ListenerRegistration:
    """Adds the proxy to the driver's listener bus and really removes it again.

    The proxy is created once, inside a JVM `Object[]`, and always passed by reflection, so add
    and remove see the same JVM object. With `queue_name`, the listener gets its own listener-bus
    queue and thread (`LiveListenerBus.addToQueue`, internal API, public in bytecode); when that
    is unavailable it falls back to Spark's shared queue.
    """

    def __init__(self, spark_context: Any, gateway: Any, listener: Any, queue_name: str | None):
        jvm = gateway.jvm
        self._spark_context = spark_context  # the JVM SparkContext
        self._listener = listener
        self._gateway = gateway
        interface = jvm.java.lang.Class.forName(LISTENER_INTERFACE)
        one = gateway.new_array(jvm.java.lang.Class, 1)
        one[0] = interface
        self._remove_method = spark_context.getClass().getMethod("removeSparkListener", one)
        holder = jvm.java.util.ArrayList()
        holder.add(listener)
        self._listener_args = holder.toArray()  # the single JVM proxy, reused for removal
        self.queue_name: str | None = None
        bus = spark_context.listenerBus()
        if queue_name:
            two = gateway.new_array(jvm.java.lang.Class, 2)
            two[0] = interface
            two[1] = jvm.java.lang.Class.forName("java.lang.String")
            holder.add(queue_name)
            try:
                bus.getClass().getMethod("addToQueue", two).invoke(bus, holder.toArray())
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
        self._bus = bus
        self.active = True

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
        """Remove the proxy from every queue (Spark stops our queue once it is empty)."""
        if not self.active:
            return
        self.active = False
        self._remove_method.invoke(self._spark_context, self._listener_args)

    def is_registered(self) -> bool:
        """Whether the bus still holds our proxy (for tests and diagnostics)."""
        # toString is answered by the Python object behind each proxy, and names it uniquely
        mine = self._listener.toString()
        listeners = self._bus.listeners()
        return any(str(listeners.get(i).toString()) == mine for i in range(listeners.size()))
