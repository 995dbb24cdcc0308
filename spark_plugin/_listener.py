"""The listener that reports lineage, on plain values (its bridges to Spark: `_registration`).

Spark calls listeners on a listener-bus thread (our own queue, `lineage`, by default, so a slow
plan walk never delays Spark's shared queue), never on a query thread.

`LineageListener`:
- remembers each SQL execution's start (time, root execution id);
- at its end, asks the plan walker for the execution's lineage; a nested execution (the inner
  writes of `saveAsTable` and CTAS, which share a `rootExecutionId`) is kept until its root ends,
  then all are merged into one run: START (with the start time) then COMPLETE, or FAIL with the
  error when `executionFailure` is set (`errorMessage` is `Some("")` on success in 4.x);
- reports an RDD API job (one outside any SQL execution) from its ActiveJob at its end, and
  hands a streaming query's micro-batches and query events to `StreamingRuns`;
- hands pure-Python event dicts to `submit` (the sender's non-blocking `put_nowait`).

Every callback catches everything: an exception escaping into Spark is logged by Spark on every
event, and a blocked callback would hold `spark.stop()`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._events import AppContext, ErrorInfo, execution_event, merge_executions, new_run_id
from ._model import ExecutionLineage
from ._streaming import StreamingRuns

__all__ = ["LineageListener"]

log = logging.getLogger(__name__)

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

    def record_callback_error(self, what: str) -> None:
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
