"""An application run's status, folded from its events in any order.

One `pipelineStatus` per application run, `timestamp` = the run's start in ms, so each
update upserts in place. The state only ever moves up a lattice, which makes folding
idempotent and order-independent (events posted twice or interleaved across runs give the
same status):

- a task is `Pending` < `Successful` < `Failed`: a FAIL is never turned green by a later
  COMPLETE; its start is the earliest time seen, its end the latest end;
- the run is `Failed` once the application or any action failed (FAIL or ABORT),
  `Successful` once the application completed without a failure, else `Pending`;
- the start is the application START's `eventTime`; until that event is seen, the
  earliest time of any of the run's events stands in (`start_final` False), and the
  status moves to the real start when the START arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ._model import RunEvent

__all__ = ["RunState", "TaskState", "advance", "state_from_status", "status_body"]

_RANK = {"Pending": 0, "Successful": 1, "Failed": 2}
_FAILURES = frozenset({"FAIL", "ABORT"})


@dataclass(frozen=True, slots=True)
class TaskState:
    status: str = "Pending"
    start_ms: int | None = None
    end_ms: int | None = None

    def merged(self, other: TaskState) -> TaskState:
        return TaskState(
            status=max(self.status, other.status, key=_RANK.__getitem__),
            start_ms=_min(self.start_ms, other.start_ms),
            end_ms=_max(self.end_ms, other.end_ms),
        )


@dataclass(frozen=True, slots=True)
class RunState:
    """What is known of one application run."""

    run_id: str
    start_ms: int
    start_final: bool = False
    failed: bool = False
    completed: bool = False
    end_ms: int | None = None
    tasks: dict[str, TaskState] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.failed:
            return "Failed"
        return "Successful" if self.completed else "Pending"

    def merged(self, other: RunState) -> RunState:
        """The least state above both (also how a state read back from the server joins)."""
        if self.start_final and not other.start_final:
            start, final = self.start_ms, True
        elif other.start_final and not self.start_final:
            start, final = other.start_ms, True
        else:
            start, final = min(self.start_ms, other.start_ms), self.start_final
        tasks = dict(self.tasks)
        for name, task in other.tasks.items():
            tasks[name] = tasks[name].merged(task) if name in tasks else task
        return RunState(
            run_id=self.run_id,
            start_ms=start,
            start_final=final,
            failed=self.failed or other.failed,
            completed=self.completed or other.completed,
            end_ms=_max(self.end_ms, other.end_ms),
            tasks=tasks,
        )


def advance(state: RunState | None, event: RunEvent, task: str | None) -> RunState:
    """`state` with `event` folded in; `task` is the event's task name (None: the app's own)."""
    kind = event.event_type
    at = event.event_time_ms
    if task is None:
        seen = RunState(
            run_id=event.app.run_id,
            start_ms=at,
            start_final=kind == "START",
            failed=kind in _FAILURES,
            completed=kind == "COMPLETE",
            end_ms=at if kind in ("COMPLETE", *_FAILURES) else None,
        )
    else:
        ended = kind == "COMPLETE" or kind in _FAILURES
        status = (
            "Failed" if kind in _FAILURES else "Successful" if kind == "COMPLETE" else "Pending"
        )
        seen = RunState(
            run_id=event.app.run_id,
            start_ms=at,
            failed=kind in _FAILURES,
            tasks={task: TaskState(status, None if ended else at, at if ended else None)},
        )
        if ended:
            # An end without its START (e.g. START lost): the end is the earliest time known.
            seen.tasks[task] = replace(seen.tasks[task], start_ms=at)
    return seen if state is None else state.merged(seen)


def status_body(state: RunState, *, execution_id: bool = False) -> dict[str, Any]:
    """The `pipelineStatus` PUT body: run status and one `taskStatus` per action.

    `execution_id` (servers from 1.13, which refuse unknown fields before): the application
    run id goes along, so the status can be found again without the relay's memory.
    """
    body: dict[str, Any] = {
        "timestamp": state.start_ms,
        "executionStatus": state.status,
        "taskStatus": [_task_body(name, task) for name, task in sorted(state.tasks.items())],
    }
    if execution_id:
        body["executionId"] = state.run_id
    return body


def _task_body(name: str, task: TaskState) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "executionStatus": task.status}
    if task.start_ms is not None:
        out["startTime"] = task.start_ms
    if task.end_ms is not None:
        out["endTime"] = task.end_ms
    return out


def state_from_status(run_id: str, doc: Any, *, start_final: bool = True) -> RunState | None:
    """A run state from a `pipelineStatus` the server holds (after a restart, a lost cache).

    A `Successful` run read back is completed; a `Failed` one failed; its tasks keep their
    statuses and times, so a restart never turns a Failed run green.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("timestamp"), int):
        return None
    status = doc.get("executionStatus")
    tasks: dict[str, TaskState] = {}
    for item in doc.get("taskStatus") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        task_status = item.get("executionStatus")
        tasks[item["name"]] = TaskState(
            status=task_status if task_status in _RANK else "Pending",
            start_ms=item.get("startTime") if isinstance(item.get("startTime"), int) else None,
            end_ms=item.get("endTime") if isinstance(item.get("endTime"), int) else None,
        )
    return RunState(
        run_id=run_id,
        start_ms=doc["timestamp"],
        start_final=start_final,
        failed=status == "Failed",
        completed=status == "Successful",
        tasks=tasks,
    )


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
