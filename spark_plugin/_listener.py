"""The listener in the Spark driver JVM that reports lineage, and its registration.

Spark calls listeners on a listener-bus thread (our own queue, `lineage`, by default, so a slow
plan walk never delays Spark's shared queue), never on a query thread. Two bridges lead to
`LineageListener`, which does the work on plain values:

- `FilterBridge` (preferred): a small `SparkListener` subclass compiled at enable time with the
  Janino compiler Spark ships (`_listener_filter.java`) stays in the JVM for every event and
  calls Python (a py4j `BiConsumer`) only for SQL execution start/end, the end of an RDD API job
  (one outside any SQL execution; only this bridge reports those) and application end, with
  their fields flattened into one string: no task/stage/block event crosses into Python and a
  callback costs no py4j round trip besides the plan walk;
- `DirectBridge` (fallback): the Python object implements `SparkListenerInterface` itself, as
  the feasibility probe did; interface methods we do not use (and any that future Spark versions
  add) are answered by `__getattr__` with a no-op.

`LineageListener`:
- remembers each SQL execution's start (time, root execution id);
- at its end, asks the plan walker for the execution's lineage; a nested execution (the inner
  writes of `saveAsTable` and CTAS, which share a `rootExecutionId`) is kept until its root ends,
  then all are merged into one run: START (with the start time) then COMPLETE, or FAIL with the
  error when `executionFailure` is set (`errorMessage` is `Some("")` on success in 4.x);
- hands pure-Python event dicts to `submit` (the sender's non-blocking `put_nowait`).

Every callback catches everything: an exception escaping into Spark is logged by Spark on every
event, and a blocked callback would hold `spark.stop()`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._events import AppContext, ErrorInfo, execution_event, merge_executions, new_run_id
from ._model import ExecutionLineage
from ._streaming import StreamingRuns

__all__ = [
    "DirectBridge",
    "FilterBridge",
    "LineageListener",
    "ListenerRegistration",
    "compile_filter",
]

log = logging.getLogger(__name__)

LISTENER_INTERFACE = "org.apache.spark.scheduler.SparkListenerInterface"
_SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
_SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
_FILTER_SOURCE = "_listener_filter.java"
_FILTER_CLASS = "LineageRelayListenerFilter"
_SEP = "\x1f"
# Executions whose START we saw but whose END never came (Spark dropped it on a full queue) are
# forgotten past this many, oldest first, so memory stays bounded.
_MAX_TRACKED = 10_000

Describe = Callable[[Any], ExecutionLineage | None]
DescribeStart = Callable[[int], ExecutionLineage | None]
# (ActiveJob, records written, bytes written) -> lineage of an RDD job
DescribeJob = Callable[[Any, int, int], ExecutionLineage | None]
JobName = Callable[[ExecutionLineage], str]
Submit = Callable[[dict[str, Any]], bool]
Rename = Callable[[ExecutionLineage], ExecutionLineage]


def _same(lineage: ExecutionLineage) -> ExecutionLineage:
    return lineage


@dataclass(slots=True)
class _Started:
    root_id: int
    start_ms: int
    # set when START was already sent at the execution's start (early_start)
    run_id: str | None = None
    job_name: str | None = None
    lineage: ExecutionLineage | None = None


@dataclass(slots=True)
class _Ended:
    execution_id: int
    lineage: ExecutionLineage | None
    error: ErrorInfo | None
    written: tuple[int, int] = (0, 0)  # records and bytes its tasks wrote


class LineageListener:
    """Turns SQL execution starts and ends into runs. Called on one listener-bus thread at a time,
    through one of the two bridges below; everything here takes plain values."""

    def __init__(
        self,
        *,
        context: AppContext,
        describe: Describe,
        job_name: JobName,
        submit: Submit,
        on_application_end: Callable[[int], None],
        describe_start: DescribeStart | None = None,
        rename: Rename | None = None,
        describe_job: DescribeJob | None = None,
        streams: StreamingRuns | None = None,
    ) -> None:
        self._context = context
        self._describe_job = describe_job
        self.streams = streams  # Structured Streaming queries (micro-batches and query events)
        # dataset name trimming (_trimming), applied to what a run reports, after nested
        # executions are merged (an inner insert names a table by its location only)
        self._rename: Rename = rename or _same
        self._describe = describe
        self._describe_start = describe_start
        self._job_name = job_name
        self._submit = submit
        self._on_application_end = on_application_end
        self._started: dict[int, _Started] = {}
        self._nested: dict[int, list[_Ended]] = {}
        self._mute_at = float("inf")
        # statistics, read by the handle and the benchmark
        self.callback_s = 0.0  # time spent inside our callbacks, plan walk included
        self.runs = 0  # root executions reported
        self.skipped = 0  # root executions with nothing to report
        self.errors = 0  # callbacks that failed (logged, swallowed)
        self.walk_failures = 0  # plan walks that raised (analysis errors included)

    def mute_after(self, deadline_monotonic: float) -> None:
        """From `deadline_monotonic` on, callbacks return at once (shutdown must not wait)."""
        self._mute_at = deadline_monotonic

    @property
    def muted(self) -> bool:
        return time.monotonic() >= self._mute_at

    def failed(self, what: str) -> None:
        self.errors += 1
        # The first failure is logged in full; later ones briefly, never into Spark.
        if self.errors == 1:
            log.warning("lineage-relay: could not handle %s; lineage skipped", what, exc_info=True)
        else:
            log.debug("lineage-relay: could not handle %s", what, exc_info=True)

    def on_start(self, execution_id: int, root_id: int, start_ms: int) -> None:
        if len(self._started) >= _MAX_TRACKED:
            self._started.pop(next(iter(self._started)))
        started = _Started(root_id, start_ms)
        self._started[execution_id] = started
        if self._describe_start is not None and root_id == execution_id:
            self._start_early(self._describe_start, execution_id, started)

    def _start_early(self, describe: DescribeStart, execution_id: int, started: _Started) -> None:
        """Send START now, from the running plan (inputs, outputs, no column lineage)."""
        try:
            lineage = describe(execution_id)
        except Exception:
            log.debug("lineage-relay: plan walk at start failed", exc_info=True)
            return
        if lineage is None or lineage.stream is not None:
            return  # END decides, from the finished plan
        lineage = self._rename(lineage)
        started.run_id = new_run_id(started.start_ms)
        started.job_name = self._job_name(lineage)
        started.lineage = lineage
        self._submit(
            execution_event(
                self._context,
                "START",
                started.start_ms,
                run_id=started.run_id,
                job_name=started.job_name,
                lineage=lineage,
            )
        )

    def on_end(
        self,
        execution_id: int,
        end_ms: int,
        qe: Any,
        error: ErrorInfo | None,
        sql: str | None = None,
        written: tuple[int, int] = (0, 0),
    ) -> None:
        started = self._started.pop(execution_id, None) or _Started(execution_id, end_ms)
        lineage = self._lineage_of(qe)
        if lineage is not None and sql and not lineage.sql:
            lineage = dataclasses.replace(lineage, sql=sql)
        ended = _Ended(execution_id, lineage, error, written)
        if started.root_id != execution_id:
            if len(self._nested) >= _MAX_TRACKED:
                self._nested.pop(next(iter(self._nested)))
            self._nested.setdefault(started.root_id, []).append(ended)
            return
        # outermost first: the root, then its nested executions in the order they began
        parts = [ended, *sorted(self._nested.pop(execution_id, []), key=lambda e: e.execution_id)]
        self._report(parts, started, end_ms)

    def on_job_end(
        self,
        job_id: int,
        start_ms: int,
        end_ms: int,
        job: Any,
        error: ErrorInfo | None,
        *,
        records: int = 0,
        size_bytes: int = 0,
    ) -> None:
        """An RDD API job (one outside any SQL execution) ended; `job` is its ActiveJob (None when
        the listener saw its start too late). Jobs that wrote nothing are not reported unless
        they failed, as the integration does (`collect`, `take`, pyspark's own small jobs)."""
        lineage = None
        if job is not None and self._describe_job is not None:
            try:
                lineage = self._describe_job(job, records, size_bytes)
            except Exception:
                self.walk_failures += 1
                log.debug("lineage-relay: RDD job %d could not be described", job_id, exc_info=True)
        if lineage is None or (not lineage.outputs and error is None):
            self.skipped += 1
            return
        self._report([_Ended(job_id, lineage, error)], _Started(job_id, start_ms), end_ms)

    def on_application_end(self, end_ms: int) -> None:
        self._on_application_end(end_ms)

    def _lineage_of(self, qe: Any) -> ExecutionLineage | None:
        if qe is None:
            return None
        try:
            return self._describe(qe)
        except Exception:
            # analysis errors re-throw from qe.analyzed(); a walker bug must not stop the run's
            # other executions from being reported
            self.walk_failures += 1
            log.debug("lineage-relay: plan walk failed", exc_info=True)
            return None

    def _report(self, parts: list[_Ended], started: _Started, end_ms: int) -> None:
        lineages = [p.lineage for p in parts if p.lineage is not None]
        if not lineages and started.lineage is not None:
            lineages = [started.lineage]  # START went out: the run must still end
        if not lineages:
            self.skipped += 1
            return
        error = next((p.error for p in parts if p.error is not None), None)
        merged = self._rename(merge_executions(lineages))
        if merged.stream is not None:
            # a streaming query's micro-batch: part of the query's run (see _streaming)
            if self.streams is not None:
                records = sum(p.written[0] for p in parts)
                size = sum(p.written[1] for p in parts)
                self.streams.on_batch(merged, records, size, end_ms)
            return
        ctx = self._context
        if started.run_id is not None and started.job_name is not None:
            run_id, job_name = started.run_id, started.job_name
        else:
            run_id, job_name = new_run_id(started.start_ms), self._job_name(merged)
            self._submit(
                execution_event(
                    ctx, "START", started.start_ms, run_id=run_id, job_name=job_name, lineage=merged
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
            core.failed("a Spark listener event")
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
            core.failed("a SQL execution event")
        finally:
            core.callback_s += time.perf_counter() - began

    def onApplicationEnd(self, event: Any) -> None:
        try:
            self.core.on_application_end(int(event.time()))
        except Exception:  # noqa: BLE001 - a callback must never raise into Spark
            self.core.failed("the application end")

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


def _filter_source() -> str:
    try:
        return resources.files("spark_plugin").joinpath(_FILTER_SOURCE).read_text("utf-8")
    except (OSError, TypeError, ValueError):
        # a source checkout used as a namespace package has no resource reader
        return Path(__file__).with_name(_FILTER_SOURCE).read_text("utf-8")


_compiled: dict[int, tuple[Any, Any]] = {}  # id(gateway) -> (gateway, JVM class)
_compile_lock = threading.Lock()


def compile_filter(gateway: Any) -> Any:
    """The `LineageRelayListenerFilter` class, compiled with Janino once per JVM."""
    with _compile_lock:
        cached = _compiled.get(id(gateway))
        if cached is not None and cached[0] is gateway:
            return cached[1]
        jvm = gateway.jvm
        compiler = jvm.org.codehaus.janino.SimpleCompiler()
        compiler.setParentClassLoader(
            jvm.org.apache.spark.util.Utils.getContextOrSparkClassLoader()
        )
        compiler.cook(_filter_source())
        cls = compiler.getClassLoader().loadClass(_FILTER_CLASS)
        _compiled[id(gateway)] = (gateway, cls)
        return cls


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
