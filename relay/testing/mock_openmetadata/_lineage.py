"""Lineage edges: ``PUT /v1/lineage`` upserts, ``GET /v1/lineage/...`` walks the graph.

One edge per (from id, to id): a later PUT for the same pair replaces ``lineageDetails``
wholesale (OpenMetadata's ``INSERT ... ON DUPLICATE KEY UPDATE``). Both ends and the pipeline
reference must exist (404), and every column FQN must be a column of its entity (400).
A JSON Patch of one edge's ``lineageDetails`` (``LineageRepository.patchLineageEdge``) is how
clients merge column lineage instead of replacing it; the same checks run on the result.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from . import _models
from ._errors import ApiError
from ._jsonpatch import apply_patch
from ._store import Store, column_fqns, now_ms, reference
from ._validation import Invalid, strip_nulls, validate

MAX_DEPTH = 3


def _columns_of(entity_type: str, entity: dict[str, Any]) -> set[str] | None:
    """Column FQNs of an entity, or None for entity types without columns."""
    if entity_type == "table":
        return set(column_fqns(entity.get("columns") or []))
    if entity_type == "container":
        return set(column_fqns((entity.get("dataModel") or {}).get("columns") or []))
    return None


class LineageGraph:
    """The edges, keyed by (from id, to id)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}

    def clear(self) -> None:
        self.edges.clear()

    def add(self, body: Any, user: str) -> tuple[str, str]:
        """Validate an addLineage body and upsert its edge; returns the (from, to) ids."""
        validate(_models.ADD_LINEAGE, body)
        return self.upsert(strip_nulls(body)["edge"], user)

    def upsert(self, edge: dict[str, Any], user: str) -> tuple[str, str]:
        """Upsert an already valid ``entitiesEdge`` (404 / 400 on unknown ids / columns)."""
        from_ref, to_ref = edge["fromEntity"], edge["toEntity"]
        from_entity = self._store.get_by_id(from_ref["type"], from_ref["id"])
        to_entity = self._store.get_by_id(to_ref["type"], to_ref["id"])
        details = dict(edge.get("lineageDetails") or {})
        pipeline = details.get("pipeline")
        if pipeline is not None:
            pipeline_entity = self._store.get_by_id(pipeline["type"], pipeline["id"])
            details["pipeline"] = reference(pipeline_entity, pipeline["type"])
        self._check_columns(details, from_ref["type"], from_entity, to_ref["type"], to_entity)
        stamp = now_ms()
        details.setdefault("source", "Manual")
        details.update(createdAt=stamp, createdBy=user, updatedAt=stamp, updatedBy=user)
        stored: dict[str, Any] = {
            "fromEntity": reference(from_entity, from_ref["type"]),
            "toEntity": reference(to_entity, to_ref["type"]),
            "lineageDetails": details,
        }
        if "description" in edge:
            stored["description"] = edge["description"]
        key = (from_entity["id"], to_entity["id"])
        self.edges[key] = stored
        return key

    def details(self, from_id: str, to_id: str) -> dict[str, Any]:
        """``GET /v1/lineage/getLineageEdge/{fromId}/{toId}``: the edge's lineage details."""
        stored = self.edges.get((from_id, to_id))
        if stored is None:
            # The server's message, with its doubled space.
            raise ApiError(404, f"Lineage edge not found between {from_id} and  {to_id}")
        details: dict[str, Any] = stored["lineageDetails"]
        return details

    def patch(
        self,
        from_ref: dict[str, Any],
        to_ref: dict[str, Any],
        patch: Any,
        user: str,
        *,
        server_v2: bool,
    ) -> dict[str, Any]:
        """Apply a JSON Patch to an edge's ``lineageDetails``; returns the new details."""
        from_entity = self._store.get_by_id(from_ref["type"], from_ref["id"])
        to_entity = self._store.get_by_id(to_ref["type"], to_ref["id"])
        stored = self.edges.get((from_entity["id"], to_entity["id"]))
        if stored is None:
            raise ApiError(
                404,
                f"Lineage edge not found between {from_ref['type']} {from_entity['id']} "
                f"and {to_ref['type']} {to_entity['id']}",
            )
        patched = apply_patch(stored["lineageDetails"], patch, server_v2=server_v2)
        try:
            validate(_models.LINEAGE_DETAILS, patched)
        except Invalid as exc:
            # Turning the patched JSON back into the Java class fails outside any mapper.
            raise ApiError(500, f"Failed to convert JsonValue to LineageDetails: {exc}") from None
        details: dict[str, Any] = strip_nulls(patched)
        pipeline = details.get("pipeline")
        if pipeline is not None:
            pipeline_entity = self._store.get_by_id(pipeline["type"], pipeline["id"])
            details["pipeline"] = reference(pipeline_entity, pipeline["type"])
        details.update(updatedAt=now_ms(), updatedBy=user)
        self._check_columns(details, from_ref["type"], from_entity, to_ref["type"], to_entity)
        stored["lineageDetails"] = details
        return details

    def delete_by_source(self, entity_type: str, entity_id: str, source: str) -> int:
        """Drop the edges into an entity written by one lineage source; how many went.

        ``PipelineLineage`` also drops the edges that name the entity as their pipeline.
        """
        doomed = []
        for key, stored in self.edges.items():
            details = stored["lineageDetails"]
            if details.get("source") != source:
                continue
            into = key[1] == entity_id
            if source == "PipelineLineage":
                if into or (details.get("pipeline") or {}).get("id") == entity_id:
                    doomed.append(key)
            elif into and stored["toEntity"]["type"] == entity_type:
                doomed.append(key)
        for key in doomed:
            del self.edges[key]
        return len(doomed)

    def forget(self, entity_id: str) -> None:
        """Drop every edge touching an entity (it was hard-deleted)."""
        for key in [key for key in self.edges if entity_id in key]:
            del self.edges[key]

    def remove(self, from_id: str, to_id: str) -> bool:
        """Drop one edge; False when there was none."""
        return self.edges.pop((from_id, to_id), None) is not None

    @staticmethod
    def _check_columns(
        details: dict[str, Any],
        from_type: str,
        from_entity: dict[str, Any],
        to_type: str,
        to_entity: dict[str, Any],
    ) -> None:
        lineage = details.get("columnsLineage")
        if not lineage:
            return
        from_columns = _columns_of(from_type, from_entity)
        to_columns = _columns_of(to_type, to_entity)
        for column_lineage in lineage:
            for name in column_lineage.get("fromColumns") or []:
                if from_columns is not None and name not in from_columns:
                    raise ApiError(400, f"Invalid column name {name}")
            to_column = column_lineage.get("toColumn")
            if to_column is not None and to_columns is not None and to_column not in to_columns:
                raise ApiError(400, f"Invalid column name {to_column}")

    def view(
        self, entity_type: str, entity: dict[str, Any], upstream_depth: int, downstream_depth: int
    ) -> dict[str, Any]:
        """OpenMetadata's ``EntityLineage`` for an entity."""
        root = entity["id"]
        nodes: dict[str, dict[str, Any]] = {}
        upstream = self._walk(root, upstream_depth, upstream=True, nodes=nodes)
        downstream = self._walk(root, downstream_depth, upstream=False, nodes=nodes)
        nodes.pop(root, None)
        return {
            "entity": reference(entity, entity_type),
            "nodes": list(nodes.values()),
            "upstreamEdges": upstream,
            "downstreamEdges": downstream,
        }

    def _walk(
        self, root: str, depth: int, *, upstream: bool, nodes: dict[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        edges: list[dict[str, Any]] = []
        seen = {root}
        frontier: deque[tuple[str, int]] = deque([(root, 0)])
        while frontier:
            current, level = frontier.popleft()
            if level >= depth:
                continue
            for (from_id, to_id), stored in self.edges.items():
                if (to_id if upstream else from_id) != current:
                    continue
                edges.append(
                    {
                        "fromEntity": from_id,
                        "toEntity": to_id,
                        "lineageDetails": stored["lineageDetails"],
                    }
                )
                neighbour = from_id if upstream else to_id
                nodes[neighbour] = stored["fromEntity" if upstream else "toEntity"]
                if neighbour not in seen:
                    seen.add(neighbour)
                    frontier.append((neighbour, level + 1))
        return edges


def parse_depth(raw: str | None, name: str) -> int:
    """``upstreamDepth``/``downstreamDepth``: default 1, 0..3 (OpenMetadata's bounds)."""
    if raw is None or raw == "":
        return 1
    try:
        depth = int(raw)
    except ValueError:
        raise ApiError(400, f"query param {name} must be an integer, got {raw!r}") from None
    if depth < 0:
        raise ApiError(400, f"[query param {name} must be greater than or equal to 0]")
    if depth > MAX_DEPTH:
        raise ApiError(400, f"[query param {name} must be less than or equal to {MAX_DEPTH}]")
    return depth
