"""Pipeline run status: ``PUT/GET /v1/pipelines/{fqn}/status``.

Upsert per (pipeline, timestamp in ms): a second PUT with the same timestamp replaces the first
(how a client turns ``Pending`` into ``Successful``). Every ``taskStatus[].name`` must be a task
of the pipeline (400 ``Invalid task name X``); ``executionStatus`` is one of Successful, Failed,
Pending, Skipped (there is no ``Running``).
"""

from __future__ import annotations

from typing import Any

from . import _models
from ._errors import ApiError
from ._store import Store
from ._validation import strip_nulls, validate


def put_status(store: Store, pipeline_fqn: str, body: Any) -> dict[str, Any]:
    """Validate and upsert one status; returns the pipeline with its latest status."""
    pipeline = store.get_by_fqn("pipeline", pipeline_fqn)
    validate(_models.PIPELINE_STATUS, body)
    status = strip_nulls(body)
    task_names = {task["name"] for task in pipeline.get("tasks") or []}
    for task_status in status.get("taskStatus") or []:
        if task_status["name"] not in task_names:
            raise ApiError(400, f"Invalid task name {task_status['name']}")
    series = store.statuses.setdefault(pipeline["id"], {})
    series[int(status["timestamp"])] = status
    store.set_latest_status(pipeline["id"], series[max(series)])
    return pipeline


def list_statuses(
    store: Store,
    pipeline_fqn: str,
    start_ts: str | None,
    end_ts: str | None,
    limit: str | None = None,
    status_filter: str | None = None,
) -> dict[str, Any]:
    """Statuses with ``startTs <= timestamp <= endTs``, newest first."""
    pipeline = store.get_by_fqn("pipeline", pipeline_fqn)
    start = _required_ms(start_ts, "startTs")
    end = _required_ms(end_ts, "endTs")
    wanted = {item for item in (status_filter or "").split(",") if item}
    series = store.statuses.get(pipeline["id"], {})
    data = [
        series[stamp]
        for stamp in sorted(series, reverse=True)
        if start <= stamp <= end and (not wanted or series[stamp]["executionStatus"] in wanted)
    ]
    total = len(data)
    if limit:
        data = data[: _int(limit, "limit")]
    return {"data": data, "paging": {"total": total}}


def delete_status(store: Store, pipeline_fqn: str, timestamp: str) -> dict[str, Any]:
    pipeline = store.get_by_fqn("pipeline", pipeline_fqn)
    series = store.statuses.get(pipeline["id"], {})
    if series.pop(_int(timestamp, "timestamp"), None) is None:
        raise ApiError(404, f"pipelineStatus instance for {pipeline_fqn} at {timestamp} not found")
    store.set_latest_status(pipeline["id"], series[max(series)] if series else None)
    return pipeline


def _required_ms(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        raise ApiError(400, f"[query param {name} must not be null]")
    return _int(raw, name)


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"query param {name} must be an integer, got {raw!r}") from None
