"""Sink `rest`: OpenLineage events translated into OpenMetadata REST calls.

Per batch, event by event (`relay._translate` decides, this module calls):

1. the event's application run (its own, or the `parent` of an action) is folded into the
   run's state (`advance`); the application's pipeline is made to exist with the action as
   a task (`Pipelines.ensure`, cached);
2. a COMPLETE event (or RUNNING of an action not yet ended) writes one edge per (input,
   output) whose entities resolve (`Resolver`), column lineage merged (`EdgeWriter`); an
   edge with an unresolved end is parked in the state store and tried again later;
3. after the batch, each run whose state changed gets one status upsert (at most one call
   per run per batch), and the states are saved, so a restart keeps a FAIL.

An event is delivered once its calls are done, parked edges included: a parked edge never
holds back its run and is no failure for the breaker. A transport error or a retriable
status stops the batch: what is done stays done (everything is an idempotent upsert), the
rest is retried by the forwarder. A permanent refusal (400 ...) dead-letters that event.

Parked edges are retried in the background (`_parked.py`) with exponential backoff between
`retry_delay_ms` and `retry_max_delay_ms`; after `unresolved_retention_s` their event is
dead-lettered with reason `unresolved`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..._clock import Clock, SystemClock
from ..._config import OpenMetadataConfig
from ..._events import SpooledEvent
from ..._exceptions import AuthError, PermanentSinkError, RetriableSinkError, SinkError
from ..._observe.audit import AuditSubject
from ..._observe.metrics import Metrics
from ..._translate import (
    Dataset,
    EntityView,
    PipelineSpec,
    RunEvent,
    RunState,
    advance,
    column_pairs,
    edge_pairs,
    lineage_details,
    parse_run_event,
    pipeline_spec,
    source_of,
    task_name,
)
from ..base import DELIVERED, EventResult
from ..client import OpenMetadataClient
from ._api import Api
from ._lineage import EdgeWriter
from ._parked import DeadLetter, ParkedEdges
from ._pipelines import PipelineInfo, Pipelines
from ._resolver import Resolution, Resolver
from ._state import ParkedEdge, StateStore

__all__ = ["DeadLetter", "RestSink"]

log = logging.getLogger(__name__)


_RUN_CACHE = 10_000


@dataclass(slots=True)
class _Run:
    state: RunState
    written: RunState | None
    pipeline: PipelineSpec
    dirty: bool = False
    events: list[int] = field(default_factory=list)  # indices in the current batch
    # the current batch's edge writes: done again if the pipeline turns out to be gone
    edge_work: list[tuple[RunEvent, SpooledEvent, list[tuple[int, int]]]] = field(
        default_factory=list
    )


class RestSink:
    """Delivers events through OpenMetadata's REST API (see the module docstring)."""

    def __init__(
        self,
        client: OpenMetadataClient,
        config: OpenMetadataConfig,
        *,
        state_path: Path,
        metrics: Metrics,
        clock: Clock | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock if clock is not None else SystemClock()
        self._metrics = metrics
        self.api = Api(client, clock=self._clock, retry_after_max_s=config.retry_after_max_s)
        self._resolver = Resolver(self.api, config.mapping, auto_create=config.auto_create)
        self._pipelines = Pipelines(self.api)
        self._edges = EdgeWriter(self.api)
        self._store = StateStore(state_path)
        self._runs: dict[str, _Run] = {}
        self._lock = asyncio.Lock()  # one batch or parked edge at a time: shared run states
        self._started = False
        self._closed = False
        self._parked = ParkedEdges(
            self._store, config=config, metrics=metrics, clock=self._clock, lock=self._lock,
            attempt=self._retry_edge, dead_letter=dead_letter, on_unreachable=self._lost,
        )  # fmt: skip
        self.server_version: str = ""
        self._execution_ids = False  # the server takes pipelineStatus.executionId (>= 1.13)
        self._probe_due = True

    @property
    def name(self) -> str:
        return "rest"

    @property
    def client(self) -> OpenMetadataClient:
        return self._client

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the state store, probe the server's version, retry parked edges from now on."""
        if self._started:
            return
        self._started = True
        await self._store.open()
        await self._parked.refresh_gauge()
        with contextlib.suppress(SinkError, AuthError):
            await self._probe_version()
        self._parked.start()

    @property
    def unresolved(self) -> dict[str, int]:
        """Parked edges and the distinct datasets they wait for (for /health)."""
        return {"parked_edges": self._parked.edges, "datasets": self._parked.datasets}

    def _lost(self) -> None:
        """OpenMetadata did not answer: probe its version again on the next batch."""
        self._probe_due = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._parked.aclose()
        try:
            await self._store.aclose()
        finally:
            await self._client.aclose()

    async def _probe_version(self) -> None:
        """`GET /v1/system/version` (no auth needed): logged and shown in /health."""
        answer = await self.api.call("GET", "/v1/system/version", endpoint="/v1/system/version")
        doc = answer.json() if answer.status == 200 else None
        version = doc.get("version") if isinstance(doc, dict) else None
        self._probe_due = False
        if isinstance(version, str) and version != self.server_version:
            self.server_version = version
            self._execution_ids = _version_at_least(version, (1, 13))
            log.info("OpenMetadata version %s at %s", version, self._client.api_base)

    # -- send ---------------------------------------------------------------------------

    async def send(self, events: Sequence[SpooledEvent]) -> Sequence[EventResult]:
        if not events:
            return []
        await self.start()
        async with self._lock:
            if self._probe_due:  # the first call after a lost connection: a reconnect
                with contextlib.suppress(SinkError, AuthError):
                    await self._probe_version()
            try:
                return await self._send(events)
            except RetriableSinkError:
                self._probe_due = True
                raise

    async def _send(self, events: Sequence[SpooledEvent]) -> list[EventResult]:
        results: list[EventResult | None] = [None] * len(events)
        touched: dict[str, _Run] = {}
        try:
            stopped = await self._apply_all(events, results, touched)
            if stopped is None:
                stopped = await self._flush_statuses(touched, results)
            for run in touched.values():
                if run.dirty:  # not written: the events that made it so are sent again
                    for index in run.events:
                        if results[index] is DELIVERED:
                            results[index] = None
        finally:
            for run in touched.values():
                run.events.clear()
                run.edge_work.clear()
        await self._store.save_runs(
            [(run.state, run.written) for run in touched.values()], self._clock.time()
        )
        if stopped is not None and not any(r is DELIVERED for r in results):
            raise stopped
        reason = str(stopped) if stopped is not None else "not sent"
        return [r if r is not None else EventResult.retriable(reason) for r in results]

    async def _apply_all(
        self,
        events: Sequence[SpooledEvent],
        results: list[EventResult | None],
        touched: dict[str, _Run],
    ) -> RetriableSinkError | AuthError | None:
        """Apply each event in order; the error that stopped the batch, if one did."""
        for index, spooled in enumerate(events):
            try:
                event = parse_run_event(spooled.body)
            except ValueError as exc:
                results[index] = EventResult.permanent(f"not a usable OpenLineage event: {exc}")
                continue
            if event is None:  # dataset and job events carry nothing the REST API takes
                results[index] = DELIVERED
                continue
            try:
                run = await self._apply(event, spooled)
            except PermanentSinkError as exc:
                results[index] = EventResult.permanent(exc.reason)
                continue
            except (RetriableSinkError, AuthError) as exc:
                return exc
            run.events.append(index)
            touched[run.state.run_id] = run
            results[index] = DELIVERED
        return None

    async def _flush_statuses(
        self, touched: dict[str, _Run], results: list[EventResult | None]
    ) -> RetriableSinkError | AuthError | None:
        """One status upsert per run that changed, side by side (each is independent)."""
        stopped: RetriableSinkError | AuthError | None = None
        outcomes = await asyncio.gather(
            *(self._flush_status(run) for run in touched.values()), return_exceptions=True
        )
        for run, outcome in zip(touched.values(), outcomes, strict=True):
            if isinstance(outcome, PermanentSinkError):
                for index in run.events:
                    results[index] = EventResult.permanent(outcome.reason)
            elif isinstance(outcome, RetriableSinkError | AuthError):
                stopped = stopped or outcome
            elif isinstance(outcome, BaseException):
                raise outcome
        return stopped

    async def _apply(self, event: RunEvent, spooled: SpooledEvent) -> _Run:
        run = await self._run_of(event)
        task = None if event.is_application else task_name(event.job_name, event.app.name)
        before = run.state.tasks.get(task) if task is not None else None
        ended = (
            (run.state.completed or run.state.failed)
            if task is None
            else before is not None and before.end_ms is not None
        )
        state = advance(run.state, event, task)
        if state != run.state:
            run.state, run.dirty = state, state != run.written
        await self._ensure_pipeline(run)
        pairs = edge_pairs(event, ended)
        if pairs:
            await self._write_edges(event, spooled, pairs, run)
            run.edge_work.append((event, spooled, pairs))
        return run

    async def _run_of(self, event: RunEvent) -> _Run:
        run_id = event.app.run_id
        run = self._runs.get(run_id)
        if run is not None:
            return run
        loaded = await self._store.load_run(run_id)
        spec = pipeline_spec(event, self._config.pipeline_service_name)
        if loaded is not None:
            run = _Run(state=loaded[0], written=loaded[1], pipeline=spec)
            run.dirty = run.state != run.written
        else:
            found = None
            if self._execution_ids and not (event.is_application and event.event_type == "START"):
                # Met mid-run without memory of it (the state file was lost): the server's
                # status of this run, if it has one, keeps a FAIL and the real start.
                found = await self._pipelines.find_status(spec.fqn, run_id, event.event_time_ms)
            if found is not None:
                run = _Run(state=found, written=found, pipeline=spec)
            else:
                seed = RunState(run_id=run_id, start_ms=event.event_time_ms)
                run = _Run(state=seed, written=None, pipeline=spec)
        if len(self._runs) >= _RUN_CACHE:
            self._runs.pop(next(iter(self._runs)))
        self._runs[run_id] = run
        return run

    async def _ensure_pipeline(self, run: _Run) -> PipelineInfo:
        return await self._pipelines.ensure(run.pipeline, run.state.tasks)

    async def _flush_status(self, run: _Run) -> None:
        if not run.dirty:
            return
        fqn = run.pipeline.fqn
        gone = self._pipelines.cached(fqn)
        ids = self._execution_ids
        if not await self._pipelines.put_status(fqn, run.state, execution_id=ids):
            # Deleted behind the relay's back: made again (a new id), and the edges this
            # batch wrote (or found unchanged) with the old id are written again.
            await self._ensure_pipeline(run)
            if not await self._pipelines.put_status(fqn, run.state, execution_id=ids):
                raise RetriableSinkError(f"pipeline {fqn} disappeared while writing its status")
            if gone is not None:
                self._edges.forget_pipeline(gone.id)
            for event, spooled, pairs in run.edge_work:
                await self._write_edges(event, spooled, pairs, run)
        written = run.written
        if written is not None and written.start_ms != run.state.start_ms:
            # The status was first written at a stand-in start; the real one is known now.
            await self._pipelines.delete_status(fqn, written.start_ms)
        run.written, run.dirty = run.state, False

    # -- edges --------------------------------------------------------------------------

    async def _write_edges(
        self,
        event: RunEvent,
        spooled: SpooledEvent,
        pairs: Sequence[tuple[int, int]],
        run: _Run,
    ) -> None:
        resolved: dict[tuple[str, int], Resolution] = {}

        async def resolve(side: str, index: int, dataset: Dataset) -> Resolution:
            key = (side, index)
            if key not in resolved:
                resolved[key] = await self._resolver.resolve(dataset)
            return resolved[key]

        parked: list[tuple[int, int, tuple[str, ...], str]] = []
        for i, o in pairs:
            for attempt in range(2):
                source = await resolve("in", i, event.inputs[i])
                output = await resolve("out", o, event.outputs[o])
                missing = tuple(r.lookup.display for r in (source, output) if r.entity is None)
                if missing:
                    key = f"{event.run_id}|{source.lookup.display}|{output.lookup.display}"
                    parked.append((i, o, missing, key))
                    break
                assert source.entity is not None and output.entity is not None  # noqa: S101
                pipeline = await self._ensure_pipeline(run)
                if await self._write_edge(event, i, o, source.entity, output.entity, pipeline):
                    break
                # An end or the pipeline vanished (404): look them up again, once.
                resolved.pop(("in", i), None)
                resolved.pop(("out", o), None)
                if attempt:
                    raise RetriableSinkError(
                        f"an entity of the edge {source.lookup.display} -> "
                        f"{output.lookup.display} vanished twice while writing it"
                    )
        if parked:
            await self._parked.park(spooled, parked, resolved)

    async def _write_edge(
        self,
        event: RunEvent,
        i: int,
        o: int,
        source: EntityView,
        output: EntityView,
        pipeline: PipelineInfo,
    ) -> bool:
        """Write one edge; False when an end or the pipeline vanished (caches dropped)."""
        details, dropped = lineage_details(
            source, output, column_pairs(event.inputs[i], event.outputs[o]),
            pipeline_id=pipeline.id, source=source_of(event.producer), sql=event.sql,
        )  # fmt: skip
        if dropped:
            self._metrics.column_lineage_dropped.inc(dropped)
        audit = AuditSubject("put_lineage", (source.fqn, output.fqn), (event.run_id,), 1)
        if await self._edges.write(source, output, details, audit=audit) != "gone":
            return True
        # An end or the pipeline was deleted since it was cached: look them up again.
        for entity_id in (source.id, output.id):
            self._resolver.forget(entity_id)
            self._edges.forget(entity_id)
        self._pipelines.forget(pipeline.fqn)
        return False

    async def retry_parked(self) -> int:
        """One round over the parked edges that are due; returns how many were written."""
        return await self._parked.retry()

    async def _retry_edge(self, edge: ParkedEdge) -> bool | tuple[str, ...]:
        """One try of a parked edge (see `Attempt`)."""
        try:
            event = parse_run_event(edge.event.body)
        except ValueError:
            return False
        if (
            event is None
            or edge.input_index >= len(event.inputs)
            or edge.output_index >= len(event.outputs)
        ):
            return False
        source = await self._resolver.resolve(event.inputs[edge.input_index])
        output = await self._resolver.resolve(event.outputs[edge.output_index])
        if source.entity is not None and output.entity is not None:
            pipeline = await self._ensure_pipeline(await self._run_of(event))
            if await self._write_edge(
                event, edge.input_index, edge.output_index, source.entity, output.entity,
                pipeline,
            ):  # fmt: skip
                return True
        return tuple(r.lookup.display for r in (source, output) if r.entity is None)


def _version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts: list[int] = []
    for piece in version.split("-")[0].split(".")[: len(wanted)]:
        if not piece.isdigit():
            return False
        parts.append(int(piece))
    return tuple(parts) >= wanted
