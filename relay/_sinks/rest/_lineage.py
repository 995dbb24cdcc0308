"""Lineage edge writes with column lineage merged, never overwritten, and never repeated.

OpenMetadata keeps one edge per (from, to) and `PUT /v1/lineage` replaces its details, so
the details written are the union of what the edge holds (read once with
`GET /v1/lineage/getLineageEdge/{fromId}/{toId}`, then remembered) and what the event adds.
An edge whose merged details equal what it already holds is not sent again. The memory of
written edges is bounded; an edge it forgot is read again before the next write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..._observe.audit import AuditSubject
from ..._translate import EntityView, edge_body, merge_details, same_details
from ._api import Api
from ._cache import Lru

__all__ = ["EdgeWriter"]

_CACHE_ENTRIES = 50_000

WriteResult = Literal["written", "unchanged", "gone"]


class EdgeWriter:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._known: Lru[tuple[str, str], dict[str, Any]] = Lru(_CACHE_ENTRIES)

    async def write(
        self,
        source: EntityView,
        output: EntityView,
        details: Mapping[str, Any],
        *,
        audit: AuditSubject | None = None,
    ) -> WriteResult:
        """Merge `details` into the edge; "gone" when the server does not know an end (404)."""
        key = (source.id, output.id)
        existing = self._known.get(key)
        if existing is None:
            existing = await self._read(source.id, output.id)
        merged = merge_details(existing, details)
        if same_details(existing, merged):
            self._known.put(key, merged)
            return "unchanged"
        answer = await self._api.call(
            "PUT", "/v1/lineage", edge_body(source, output, merged), endpoint="/v1/lineage",
            audit=audit or AuditSubject("put_lineage", (source.fqn, output.fqn)),
        )  # fmt: skip
        if answer.status == 404:
            self._known.pop(key)
            return "gone"
        self._api.check(answer)
        self._known.put(key, merged)
        return "written"

    def forget(self, entity_id: str) -> None:
        self._known.remove_keys_if(lambda key: entity_id in key)

    def forget_pipeline(self, pipeline_id: str) -> None:
        """Forget the edges written with a pipeline that no longer exists."""
        self._known.remove_if(
            lambda details: (details.get("pipeline") or {}).get("id") == pipeline_id
        )

    async def _read(self, from_id: str, to_id: str) -> dict[str, Any] | None:
        doc = await self._api.get(
            f"/v1/lineage/getLineageEdge/{from_id}/{to_id}",
            endpoint="/v1/lineage/getLineageEdge",
        )
        return _details(doc)


def _details(doc: Any) -> dict[str, Any] | None:
    """The edge's `lineageDetails`, from `{"edge": details}` (2.x) or a nested edge."""
    if not isinstance(doc, dict):
        return None
    edge = doc.get("edge", doc)
    if not isinstance(edge, dict):
        return None
    nested = edge.get("lineageDetails")
    if isinstance(nested, dict):
        return nested
    if "fromEntity" in edge and "toEntity" in edge:
        return {}
    return edge
