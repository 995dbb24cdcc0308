"""Pipeline service, pipelines with their tasks, and run statuses.

Each pipeline service (`serviceType: Spark`) is created once; each application gets one
pipeline (`relay._translate.pipeline_spec`: a stable, valid name, so a new run never creates a
new pipeline) whose tasks are the application's actions, added when first seen. Existence
is cached (bounded); a 404 on a status write drops the cache entry and the pipeline is made
again.

OpenMetadata's create-or-update `PUT /v1/pipelines` sets the task list it is given, so the
list sent is always the union of the tasks the pipeline has and the new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..._observe.audit import AuditSubject
from ..._translate import PipelineSpec, RunState, state_from_status, status_body, url_fqn
from ._api import Api
from ._cache import Lru

__all__ = ["PipelineInfo", "Pipelines"]

log = logging.getLogger(__name__)

_CACHE_ENTRIES = 10_000
_FIND_WINDOW_MS = 24 * 3600 * 1000
_FIND_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    id: str
    fqn: str
    tasks: frozenset[str]


class Pipelines:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._services_ready: set[str] = set()
        self._cache: Lru[str, PipelineInfo] = Lru(_CACHE_ENTRIES)

    async def ensure(self, spec: PipelineSpec, tasks: Iterable[str]) -> PipelineInfo:
        """The pipeline, created or given its missing tasks when needed."""
        fqn = spec.fqn
        wanted = frozenset(tasks)
        info = self._cache.get(fqn)
        if info is None:
            doc = await self._api.get(
                f"/v1/pipelines/name/{url_fqn(fqn)}?fields=tasks", endpoint="/v1/pipelines/name"
            )
            if isinstance(doc, dict) and "id" in doc:
                info = _info(doc, fqn)
                self._cache.put(fqn, info)
        if info is not None and wanted <= info.tasks:
            return info
        await self._ensure_service(spec.service)
        existing: list[dict[str, Any]] = []
        if info is not None:
            existing = [{"name": task} for task in sorted(info.tasks)]
        known = {task["name"] for task in existing}
        body: dict[str, Any] = {
            "name": spec.name,
            "service": spec.service,
            "displayName": spec.display_name,
            "description": spec.description,
            "tasks": existing + [{"name": t} for t in sorted(wanted - known)],
        }
        if spec.source_url:
            body["sourceUrl"] = spec.source_url
        doc = await self._api.put(
            "/v1/pipelines", body, endpoint="/v1/pipelines",
            audit=AuditSubject("put_pipeline", (fqn,)),
        )  # fmt: skip
        info = _info(doc, fqn)
        self._cache.put(fqn, info)
        return info

    def cached(self, fqn: str) -> PipelineInfo | None:
        return self._cache.get(fqn)

    def forget(self, fqn: str) -> None:
        self._cache.pop(fqn)

    async def _ensure_service(self, service: str) -> None:
        if service in self._services_ready:
            return
        body = {
            "name": service,
            "serviceType": "Spark",
            "connection": {"config": {"type": "Spark"}},
        }
        await self._api.put(
            "/v1/services/pipelineServices", body, endpoint="/v1/services/pipelineServices",
            audit=AuditSubject("put_pipeline_service", (service,)),
        )  # fmt: skip
        self._services_ready.add(service)

    async def put_status(self, fqn: str, state: RunState, *, execution_id: bool = False) -> bool:
        """Upsert the run's status; False when the pipeline is gone (404)."""
        answer = await self._api.call(
            "PUT", f"/v1/pipelines/{url_fqn(fqn)}/status",
            status_body(state, execution_id=execution_id),
            endpoint="/v1/pipelines/status",
            audit=AuditSubject("put_pipeline_status", (fqn,), (state.run_id,)),
        )  # fmt: skip
        if answer.status == 404:
            self.forget(fqn)
            return False
        self._api.check(answer)
        return True

    async def delete_status(self, fqn: str, timestamp_ms: int) -> None:
        """Remove a status written at a stand-in start (the real start is now known)."""
        answer = await self._api.call(
            "DELETE", f"/v1/pipelines/{url_fqn(fqn)}/status/{timestamp_ms}",
            endpoint="/v1/pipelines/status", audit=AuditSubject("delete_pipeline_status", (fqn,)),
        )  # fmt: skip
        if answer.status != 404:
            self._api.check(answer)

    async def find_status(self, fqn: str, run_id: str, seen_ms: int) -> RunState | None:
        """The status whose `executionId` is `run_id`, among those started in the day before
        `seen_ms` (a run the relay has no memory of: its state was lost), or None."""
        query = urlencode(
            {"startTs": seen_ms - _FIND_WINDOW_MS, "endTs": seen_ms, "limit": _FIND_LIMIT}
        )
        doc = await self._api.get(
            f"/v1/pipelines/{url_fqn(fqn)}/status?{query}", endpoint="/v1/pipelines/status"
        )
        data = doc.get("data") if isinstance(doc, dict) else None
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and item.get("executionId") == run_id:
                return state_from_status(run_id, item)
        return None


def _info(doc: Any, fqn: str) -> PipelineInfo:
    if not isinstance(doc, dict) or "id" not in doc:
        raise ValueError("OpenMetadata answered a pipeline without an id")
    tasks = frozenset(
        str(task["name"]) for task in doc.get("tasks") or [] if isinstance(task, dict)
    )
    return PipelineInfo(id=str(doc["id"]), fqn=fqn, tasks=tasks)
