"""Search endpoints answering with Elasticsearch-shaped bodies, as OpenMetadata relays them.

``/v1/search/query`` runs the query string ``q`` (and ``query_filter``, Elasticsearch query
DSL) over one index's documents and sorts the hits by ``sort_field`` / ``sort_order``
(default ``_score`` descending); every hit carries its ``sort`` values, which a client
passes back as ``search_after`` to read the next page. 2.0 breaks ties between equal scores
by ``name.keyword`` and takes ``search_after`` once per sort value; 1.13 kept index order and
took one comma-joined value. 2.0 filters on ``deleted`` only when the parameter is given
(1.13: live entities unless ``deleted=true``). ``/v1/search/fieldQuery`` is one wildcard on
one field (live entities unless ``deleted=true``), with quotes as literal characters (how
clients find FQNs holding quoted, dotted names). Every hit scores 1.0: the mock does not rank.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ._errors import ApiError
from ._search_query import (
    Matcher,
    field_values,
    keyword,
    parse_dsl,
    parse_query,
    wildcard_field,
)
from ._store import Store, column_fqns

INDEXES = {
    "table_search_index": ("table",),
    "container_search_index": ("container",),
    "pipeline_search_index": ("pipeline",),
    "database_search_index": ("database",),
    "database_schema_search_index": ("databaseSchema",),
    "dataAsset": ("table", "container", "pipeline"),
    "all": ("table", "container", "pipeline", "database", "databaseSchema"),
}
_SCORE = 1.0
# Where Elasticsearch puts a hit without the sort field (an "integer" unmapped type).
_MISSING_LAST = {"asc": 9223372036854775807, "desc": -9223372036854775808}


def document(entity_type: str, entity: dict[str, Any]) -> dict[str, Any]:
    """The search document of an entity: the entity plus the derived search fields."""
    doc = dict(entity)
    doc["entityType"] = entity_type
    doc["fqnParts"] = entity["fullyQualifiedName"].split(".")
    if entity_type == "table":
        columns = entity.get("columns") or []
        doc["columnNames"] = [
            _leaf(fqn, entity["fullyQualifiedName"]) for fqn in column_fqns(columns)
        ]
    elif entity_type == "container":
        columns = (entity.get("dataModel") or {}).get("columns") or []
        doc["columnNames"] = [
            _leaf(fqn, entity["fullyQualifiedName"]) for fqn in column_fqns(columns)
        ]
    return doc


def _leaf(column_fqn: str, table_fqn: str) -> str:
    return column_fqn[len(table_fqn) + 1 :]


class Search:
    """Runs queries over the store's entities."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _documents(self, index: str, deleted: bool | None) -> Iterable[dict[str, Any]]:
        """The index's documents; ``deleted`` keeps only deleted (True) or live (False) ones."""
        kinds = INDEXES.get(index)
        if kinds is None:
            raise ApiError(400, f"Failed to find index {index}; known: {sorted(INDEXES)}")
        for kind in kinds:
            for entity in self._store.entities(kind, include_deleted=deleted is not False):
                if deleted is None or entity["deleted"] == deleted:
                    yield document(kind, entity)

    def query(
        self,
        index: str,
        query: str,
        start: int,
        size: int,
        deleted: bool | None = False,
        *,
        sort_field: str = "_score",
        sort_order: str = "desc",
        search_after: list[str] | None = None,
        query_filter: str | None = None,
        server_v2: bool = True,
    ) -> dict[str, Any]:
        if sort_order not in _MISSING_LAST:
            raise ApiError(400, f"No sort order for [{sort_order}]")
        match = parse_query(query)
        extra = _filter(query_filter)
        hits = [
            doc
            for doc in self._documents(index, deleted)
            if match(doc) and (extra is None or extra(doc))
        ]
        by_score = sort_field == "_score"
        keyed = [(_sort_values(doc, sort_field, sort_order, server_v2), doc) for doc in hits]
        if not by_score:
            keyed = _by_field(keyed, sort_order)
        elif server_v2:
            keyed.sort(key=lambda pair: pair[0][1])  # equal scores: by name.keyword
        if search_after:
            keyed = _after(keyed, search_after, sort_order, by_score)
            start = 0
        page = keyed[start : start + size]
        return _response(index, [doc for _, doc in page], len(hits), by_score, page)

    def field_query(
        self, index: str, field: str, value: str, deleted: bool = False
    ) -> dict[str, Any]:
        match = wildcard_field(field, value)
        hits = [doc for doc in self._documents(index, deleted) if match(doc)]
        # No size is passed on: Elasticsearch's default of 10 hits applies.
        return _response(index, hits[:10], len(hits), True, None)


def _filter(query_filter: str | None) -> Matcher | None:
    """The ``query_filter`` predicate, or None when there is none."""
    if query_filter is None or query_filter.strip() in ("", "{}"):
        return None
    try:
        parsed = orjson.loads(query_filter)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Failed to parse query_filter: {exc}") from None
    if not isinstance(parsed, dict) or "query" not in parsed:
        raise ApiError(400, 'Failed to parse query_filter: expected {"query": {...}}')
    return parse_dsl(parsed["query"])


def _by_field(
    keyed: list[tuple[list[Any], dict[str, Any]]], sort_order: str
) -> list[tuple[list[Any], dict[str, Any]]]:
    """Sorted on one field; hits without it last; ties keep index order (a stable sort, as
    Elasticsearch without a tiebreaker)."""
    missing = _MISSING_LAST[sort_order]
    present = [pair for pair in keyed if pair[0][0] != missing]
    present.sort(
        key=lambda pair: (isinstance(pair[0][0], str), pair[0][0]), reverse=sort_order == "desc"
    )
    return present + [pair for pair in keyed if pair[0][0] == missing]


def _sort_values(
    doc: dict[str, Any], sort_field: str, sort_order: str, server_v2: bool
) -> list[Any]:
    if sort_field == "_score":
        return [_SCORE, keyword(doc.get("name", ""))] if server_v2 else [_SCORE]
    values = field_values(doc, sort_field)
    if not values:
        return [_MISSING_LAST[sort_order]]
    value = values[0] if sort_order == "asc" else values[-1]
    return [
        value if isinstance(value, int | float) and not isinstance(value, bool) else keyword(value)
    ]


def _after(
    keyed: list[tuple[list[Any], dict[str, Any]]],
    search_after: list[str],
    sort_order: str,
    by_score: bool,
) -> list[tuple[list[Any], dict[str, Any]]]:
    """The hits after the given sort values, in the order they were sorted."""
    width = len(keyed[0][0]) if keyed else len(search_after)
    if len(search_after) != width:
        raise ApiError(
            400,
            f"search_after has {len(search_after)} value(s) but sort has {width}.",
        )
    for position, (values, _) in enumerate(keyed):
        if _beyond(values, search_after, sort_order, by_score):
            return keyed[position:]
    return []


def _beyond(values: list[Any], marks: list[str], sort_order: str, by_score: bool) -> bool:
    """Whether a hit's sort values come strictly after the marks."""
    for index, (value, mark) in enumerate(zip(values, marks, strict=True)):
        descending = sort_order == "desc" and (index == 0)
        if by_score and index == 1:
            descending = False  # the name tiebreaker ascends
        typed: Any = mark
        if isinstance(value, int | float):
            try:
                typed = float(mark)
            except ValueError:
                typed = mark
        else:
            typed = mark.lower()
        if value == typed:
            continue
        try:
            return bool(value < typed) if descending else bool(value > typed)
        except TypeError:
            return False
    return False


def _response(
    index: str,
    hits: list[dict[str, Any]],
    total: int,
    scored: bool,
    page: list[tuple[list[Any], dict[str, Any]]] | None,
) -> dict[str, Any]:
    rendered = []
    for position, doc in enumerate(hits):
        hit: dict[str, Any] = {
            "_index": index,
            "_id": doc["id"],
            "_score": _SCORE if scored else None,
            "_source": doc,
        }
        if page is not None:
            hit["sort"] = page[position][0]
        rendered.append(hit)
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": total, "relation": "eq"},
            "max_score": _SCORE if hits and scored else None,
            "hits": rendered,
        },
    }
