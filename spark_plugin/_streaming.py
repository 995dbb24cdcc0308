"""Structured Streaming queries as OpenLineage runs: one job per query, one run per query run.

Two sources meet here, both on the listener thread and in bus order:

- the micro-batch SQL executions (`IncrementalExecution`), digested like any other execution:
  their source relation names the source directory (the `basePath` a file stream source gives
  each batch), a Kafka source its topics, the write its sink (a file sink's directory, a table,
  a topic); the writes of a `foreachBatch` function are nested executions of the batch, merged
  into it, so they are the outputs. `LineageListener` hands each batch's merged lineage here
  instead of reporting it as a run of its own, with what its tasks wrote;
- the query events of `StreamingQueryListener` (started, progress, terminated), which the JVM
  filter forwards: they say when the query started, that a batch is done (with its row count)
  and how the query ended.

Events: START (the query's start time) once the first batch tells what the query reads and
writes, RUNNING after each batch that ran (its datasets, `outputStatistics` with the batch's rows
and bytes), COMPLETE when the query stops, FAIL with the error when it fails. The job is named
after the query name when it has one, else after the sink and its output; processingType
STREAMING; the parent is the application run.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ._events import AppContext, ErrorInfo, execution_event, merge_executions, new_run_id
from ._model import DatasetRef, ExecutionLineage
from ._naming import job_name, path_dataset, snake

__all__ = ["StreamingRuns"]

log = logging.getLogger(__name__)

Submit = Callable[[dict[str, Any]], bool]
Rename = Callable[[ExecutionLineage], ExecutionLineage]

_MAX_RUNS = 1000
_FILE_SOURCE = re.compile(r"^FileStreamSource\[(.+)\]$")
_FILE_SINK = re.compile(r"^FileSink\[(.+)\]$")


@dataclass(slots=True)
class _Run:
    query_id: str
    name: str
    start_ms: int
    run_id: str = ""  # the OpenLineage run id
    job_name: str = ""
    started: bool = False
    batch: ExecutionLineage | None = None  # the batch that ran since the last progress
    written: list[int] = field(default_factory=lambda: [0, 0])  # its records, bytes
    seen: ExecutionLineage | None = None  # every dataset of the run so far


def _epoch_ms(timestamp: str, default: int) -> int:
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return default


def _without_statistics(lineage: ExecutionLineage) -> ExecutionLineage:
    outputs = tuple(
        dataclasses.replace(o, row_count=None, size_bytes=None, file_count=None)
        for o in lineage.outputs
    )
    return dataclasses.replace(lineage, outputs=outputs)


def _from_descriptions(progress: dict[str, Any]) -> ExecutionLineage | None:
    """What a progress event's descriptions name (`FileStreamSource[path]`, `FileSink[path]`),
    for a batch whose execution was not seen."""
    inputs = []
    for source in progress.get("sources") or ():
        match = _FILE_SOURCE.match(str(source.get("description") or ""))
        if match:
            namespace, name = path_dataset(match.group(1))
            inputs.append(DatasetRef(namespace=namespace, name=name))
    match = _FILE_SINK.match(str((progress.get("sink") or {}).get("description") or ""))
    outputs: tuple[DatasetRef, ...] = ()
    if match:
        namespace, name = path_dataset(match.group(1))
        outputs = (DatasetRef(namespace=namespace, name=name),)
    if not inputs and not outputs:
        return None
    return ExecutionLineage(
        node_name="file_stream_sink" if outputs else "streaming_query",
        inputs=tuple(inputs),
        outputs=outputs,
        processing="STREAMING",
    )


class StreamingRuns:
    """The runs of the streaming queries of one application (see the module docstring)."""

    def __init__(self, *, context: AppContext, submit: Submit, rename: Rename) -> None:
        self._context = context
        self._submit = submit
        self._rename = rename
        self._runs: dict[str, _Run] = {}  # by the query run's id

    def on_event(self, kind: str, fields: Sequence[str]) -> None:
        """A query event from the JVM filter: Q started, P progress, T terminated."""
        if kind == "Q":
            query_id, run, name, timestamp = fields[:4]
            now = _epoch_ms(timestamp, 0)
            self._run(run, query_id, name, now)
        elif kind == "P":
            self._progress(orjson.loads(fields[0]))
        elif kind == "T":
            query_id, run, failed = fields[:3]
            error = ErrorInfo(fields[3]) if failed == "1" and len(fields) > 3 else None
            self._terminated(run, error)

    def on_batch(
        self, lineage: ExecutionLineage, records: int, size_bytes: int, end_ms: int
    ) -> None:
        """A micro-batch execution (with its nested ones) ended."""
        stream = lineage.stream
        if stream is None:
            return
        run = self._run(stream.run_id, stream.query_id, "", end_ms)
        run.batch = lineage if run.batch is None else merge_executions([run.batch, lineage])
        run.written[0] += records
        run.written[1] += size_bytes

    # -- internals ---------------------------------------------------------------------------

    def _run(self, run_id: str, query_id: str, name: str, start_ms: int) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            if len(self._runs) >= _MAX_RUNS:
                self._runs.pop(next(iter(self._runs)))
            run = self._runs[run_id] = _Run(query_id=query_id, name=name, start_ms=start_ms)
        elif name and not run.name:
            run.name = name
        return run

    def _progress(self, progress: dict[str, Any]) -> None:
        timestamp = str(progress.get("timestamp") or "")
        event_ms = _epoch_ms(timestamp, self._context_now())
        run = self._run(
            str(progress.get("runId") or ""),
            str(progress.get("id") or ""),
            str(progress.get("name") or ""),
            event_ms,
        )
        lineage = run.batch
        if lineage is None:
            if not progress.get("numInputRows"):
                return  # an idle trigger: no batch ran
            described = _from_descriptions(progress)
            lineage = self._rename(described) if described is not None else None
        if lineage is None:
            return
        sink_rows = (progress.get("sink") or {}).get("numOutputRows")
        rows = sink_rows if isinstance(sink_rows, int) and sink_rows >= 0 else run.written[0]
        lineage = self._with_statistics(lineage, rows, run.written[1])
        run.batch, run.written = None, [0, 0]
        self._start(run, lineage)
        self._emit(run, "RUNNING", event_ms, lineage)
        clean = _without_statistics(lineage)
        run.seen = clean if run.seen is None else merge_executions([run.seen, clean])

    @staticmethod
    def _with_statistics(lineage: ExecutionLineage, rows: int, size_bytes: int) -> ExecutionLineage:
        """The batch's rows and bytes on its output, when it has one that carries none yet."""
        if len(lineage.outputs) != 1 or lineage.outputs[0].row_count is not None:
            return lineage
        if not rows and not size_bytes:
            return lineage
        output = dataclasses.replace(
            lineage.outputs[0], row_count=rows, size_bytes=size_bytes or None
        )
        return dataclasses.replace(lineage, outputs=(output,))

    def _terminated(self, run_id: str, error: ErrorInfo | None) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        lineage = run.seen
        if run.batch is not None:  # a last batch without its progress (the query failed)
            batch = _without_statistics(run.batch)
            lineage = batch if lineage is None else merge_executions([lineage, batch])
        if lineage is None:
            if not run.name and error is None:
                return  # no batch ran and nothing names the query: nothing to report
            lineage = ExecutionLineage(node_name="streaming_query", processing="STREAMING")
        self._start(run, lineage)
        end_ms = self._context_now()
        self._emit(run, "FAIL" if error is not None else "COMPLETE", end_ms, lineage, error)

    def _start(self, run: _Run, lineage: ExecutionLineage) -> None:
        if run.started:
            return
        run.started = True
        run.run_id = new_run_id(run.start_ms or None)
        app = self._context.app_name
        if run.name:
            run.job_name = f"{snake(app) or 'spark'}.{snake(run.name)}"
        else:
            run.job_name = job_name(app, lineage)
        self._emit(run, "START", run.start_ms or self._context_now(), lineage)

    def _emit(
        self,
        run: _Run,
        event_type: Any,
        epoch_ms: float,
        lineage: ExecutionLineage,
        error: ErrorInfo | None = None,
    ) -> None:
        lineage = dataclasses.replace(lineage, sql=None, processing="STREAMING", stream=None)
        self._submit(
            execution_event(
                self._context,
                event_type,
                epoch_ms,
                run_id=run.run_id,
                job_name=run.job_name,
                lineage=lineage,
                error=error,
            )
        )

    @staticmethod
    def _context_now() -> int:
        return int(datetime.now().timestamp() * 1000)
