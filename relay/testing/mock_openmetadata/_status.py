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


def _checked(pipeline: dict[str, Any], body: Any) -> dict[str, Any]:
    """A validated status (nulls dropped) whose task names are the pipeline's."""
    validate(_models.PIPELINE_STATUS, body)
    status: dict[str, Any] = strip_nulls(body)
    task_names = {task["name"] for task in pipeline.get("tasks") or []}
    for task_status in status.get("taskStatus") or []:
        if task_status["name"] not in task_names:
            raise ApiError(400, f"Invalid task name {task_status['name']}")
    return status


def _store_status(store: Store, pipeline: dict[str, Any], status: dict[str, Any]) -> None:
    series = store.statuses.setdefault(pipeline["id"], {})
    series[int(status["timestamp"])] = status
    store.set_latest_status(pipeline["id"], series[max(series)])


def put_status(store: Store, pipeline_fqn: str, body: Any) -> dict[str, Any]:
    """Validate and upsert one status; returns the pipeline with its latest status."""
    pipeline = store.get_by_fqn("pipeline", pipeline_fqn)
    _store_status(store, pipeline, _checked(pipeline, body))
    return pipeline


MAX_BULK = 1000


def put_statuses(store: Store, pipeline_fqn: str, body: Any) -> dict[str, Any]:
    """``PUT .../status/bulk``: a JSON array of statuses, all checked before any is stored."""
    pipeline = store.get_by_fqn("pipeline", pipeline_fqn)
    if not isinstance(body, list):
        raise ApiError(
            400, "Cannot deserialize value of type `java.util.ArrayList` from Object value"
        )
    if not 1 <= len(body) <= MAX_BULK:
        raise ApiError(400, f"[size must be between 1 and {MAX_BULK}]")
    checked = []
    for index, item in enumerate(body):
        try:
            checked.append(_checked(pipeline, item))
        except ValueError as exc:
            raise ApiError(400, f"[{index}]: {exc}") from None
    for status in checked:
        _store_status(store, pipeline, status)
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
