"""Lineage edges: which (input, output) pairs an event writes, and their `lineageDetails`.

An edge goes from each input to each output of a COMPLETE event, and of a RUNNING event of
an action not yet ended (streaming queries never complete). Column lineage comes from the
output's `columnLineage` facet, mapped to `<entity FQN>.<column>`; a pair naming a column
the entity lacks is left out (and counted by the caller), never failing the edge.

OpenMetadata's `PUT /v1/lineage` replaces an edge's details wholesale, so the details
written are the union of what the edge already holds and what this event adds
(`merge_details`): two jobs writing the same table pair keep both their columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._model import Dataset, RunEvent
from ._names import quote_name

__all__ = [
    "EntityView",
    "column_pairs",
    "edge_body",
    "edge_pairs",
    "lineage_details",
    "merge_details",
    "same_details",
    "source_of",
]

# Fields of lineageDetails this relay writes; the rest (createdAt, ...) the server owns.
_WRITTEN = ("pipeline", "source", "sqlQuery", "columnsLineage")


@dataclass(frozen=True, slots=True)
class EntityView:
    """What translation needs to know of a resolved entity."""

    id: str
    type: str  # "table" | "container"
    fqn: str
    columns: frozenset[str]  # column FQNs (nested children included)

    def column(self, name: str) -> str:
        return f"{self.fqn}.{quote_name(name)}"

    @property
    def reference(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type}


def edge_pairs(event: RunEvent, action_ended: bool) -> list[tuple[int, int]]:
    """(input index, output index) of every edge the event writes (self-loops left out)."""
    if event.event_type != "COMPLETE" and not (event.event_type == "RUNNING" and not action_ended):
        return []
    return [
        (i, o)
        for o, output in enumerate(event.outputs)
        for i, source in enumerate(event.inputs)
        if (source.namespace, source.name) != (output.namespace, output.name)
    ]


def column_pairs(source: Dataset, output: Dataset) -> list[tuple[tuple[str, ...], str]]:
    """(input columns, output column) from the output's `columnLineage`, for one input."""
    pairs: list[tuple[tuple[str, ...], str]] = []
    for column, fields in output.column_lineage:
        names = tuple(
            dict.fromkeys(f.field for f in fields if source.is_named(f.namespace, f.name))
        )
        if names:
            pairs.append((names, column))
    return pairs


def source_of(producer: str) -> str:
    """`SparkLineage` for the Spark integration (and this project's plugin), else `OpenLineage`."""
    lowered = producer.lower()
    return "SparkLineage" if "spark" in lowered else "OpenLineage"


def lineage_details(
    source_entity: EntityView,
    output_entity: EntityView,
    pairs: Iterable[tuple[tuple[str, ...], str]],
    *,
    pipeline_id: str,
    source: str,
    sql: str,
) -> tuple[dict[str, Any], int]:
    """`lineageDetails` for one edge, and how many column pairs were left out."""
    columns: list[dict[str, Any]] = []
    dropped = 0
    for from_names, to_name in pairs:
        to_column = output_entity.column(to_name)
        known = [source_entity.column(n) for n in from_names]
        from_columns = [c for c in known if c in source_entity.columns]
        dropped += len(known) - len(from_columns)
        if to_column not in output_entity.columns:
            dropped += len(from_columns)
            continue
        if from_columns:
            columns.append({"fromColumns": from_columns, "toColumn": to_column})
    details: dict[str, Any] = {
        "pipeline": {"id": pipeline_id, "type": "pipeline"},
        "source": source,
        "columnsLineage": columns,
    }
    if sql:
        details["sqlQuery"] = sql
    return details, dropped


def merge_details(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """`new`, with the column lineage of `existing` kept (union per output column)."""
    merged = {key: new[key] for key in _WRITTEN if key in new}
    by_target: dict[str, list[str]] = {}
    for item in [*_columns(existing), *_columns(new)]:
        sources = by_target.setdefault(item["toColumn"], [])
        sources.extend(c for c in item["fromColumns"] if c not in sources)
    merged["columnsLineage"] = [
        {"fromColumns": sorted(sources), "toColumn": target}
        for target, sources in sorted(by_target.items())
    ]
    return merged


def same_details(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    """Whether writing `b` over `a` would change nothing this relay writes."""
    if a is None:
        return False
    pipeline_a = (a.get("pipeline") or {}).get("id")
    pipeline_b = (b.get("pipeline") or {}).get("id")
    return (
        pipeline_a == pipeline_b
        and a.get("source") == b.get("source")
        and (a.get("sqlQuery") or "") == (b.get("sqlQuery") or "")
        and _column_set(a) == _column_set(b)
    )


def edge_body(
    source_entity: EntityView, output_entity: EntityView, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The `PUT /v1/lineage` body."""
    return {
        "edge": {
            "fromEntity": source_entity.reference,
            "toEntity": output_entity.reference,
            "lineageDetails": dict(details),
        }
    }


def _columns(details: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not details:
        return []
    items = details.get("columnsLineage") or []
    return [
        {"fromColumns": [c for c in item.get("fromColumns") or [] if isinstance(c, str)],
         "toColumn": item["toColumn"]}
        for item in items
        if isinstance(item, dict) and isinstance(item.get("toColumn"), str)
    ]  # fmt: skip


def _column_set(details: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset(
        (source, item["toColumn"]) for item in _columns(details) for source in item["fromColumns"]
    )
