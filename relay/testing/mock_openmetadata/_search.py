"""Search endpoints answering with Elasticsearch-shaped bodies, as OpenMetadata relays them.

``/v1/search/query?q=`` understands the Lucene query-string forms real clients send:
``*``, ``field:value`` with ``*``/``?`` wildcards and backslash escapes, ``field:"exact"``,
bare terms (matched against name and FQN), joined with ``AND``/``OR``. ``/v1/search/fieldQuery``
is one wildcard on one field. Keyword matching is case-insensitive, like OpenMetadata's
lower-case normalised keyword fields. Hits come in creation order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

from ._errors import ApiError
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

Matcher = Callable[[dict[str, Any]], bool]


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


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _wildcard(pattern: str) -> Callable[[Any], bool]:
    # Lucene escapes become literal characters; fnmatch needs [] around them.
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(
                f"[{pattern[index + 1]}]" if pattern[index + 1] in "*?[]" else pattern[index + 1]
            )
            index += 2
            continue
        parts.append("[[]" if char == "[" else char)
        index += 1
    compiled = re.compile(fnmatch.translate("".join(parts).lower()))

    def match(value: Any) -> bool:
        if isinstance(value, list):
            return any(match(item) for item in value)
        return value is not None and compiled.match(str(value).lower()) is not None

    return match


def _field_matcher(field: str, value: str) -> Matcher:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        exact = _unescape(value[1:-1]).lower()

        def equal(doc: dict[str, Any]) -> bool:
            found = doc.get(field)
            items = found if isinstance(found, list) else [found]
            return any(item is not None and str(item).lower() == exact for item in items)

        return equal
    match = _wildcard(value)
    return lambda doc: match(doc.get(field))


def _term_matcher(term: str) -> Matcher:
    if term in ("*", ""):
        return lambda doc: True
    colon = _unescaped_colon(term)
    if colon is not None:
        return _field_matcher(term[:colon], term[colon + 1 :])
    pattern = term if any(char in term for char in "*?") else f"*{term}*"
    match = _wildcard(pattern)
    return lambda doc: match(doc.get("name")) or match(doc.get("fullyQualifiedName"))


def _unescaped_colon(term: str) -> int | None:
    index = 0
    while index < len(term):
        if term[index] == "\\":
            index += 2
            continue
        if term[index] == ":":
            return index
        if term[index] == '"':
            return None
        index += 1
    return None


def parse_query(query: str) -> Matcher:
    """A Lucene query string (the subset clients use) as a predicate on documents."""
    query = query.strip()
    alternatives = [part for part in re.split(r"\s+OR\s+", query) if part.strip()] or ["*"]
    groups = [
        [_term_matcher(term.strip()) for term in re.split(r"\s+AND\s+", alternative)]
        for alternative in alternatives
    ]
    return lambda doc: any(all(match(doc) for match in group) for group in groups)


class Search:
    """Runs queries over the store's entities."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _documents(self, index: str, include_deleted: bool) -> Iterable[dict[str, Any]]:
        kinds = INDEXES.get(index)
        if kinds is None:
            raise ApiError(400, f"Failed to find index {index}; known: {sorted(INDEXES)}")
        for kind in kinds:
            for entity in self._store.entities(kind, include_deleted=include_deleted):
                yield document(kind, entity)

    def query(
        self, index: str, query: str, start: int, size: int, include_deleted: bool = False
    ) -> dict[str, Any]:
        match = parse_query(query)
        hits = [doc for doc in self._documents(index, include_deleted) if match(doc)]
        return _response(index, hits, start, size)

    def field_query(self, index: str, field: str, value: str) -> dict[str, Any]:
        match = _field_matcher(field, value)
        hits = [doc for doc in self._documents(index, False) if match(doc)]
        return _response(index, hits, 0, 10)


def _response(index: str, hits: list[dict[str, Any]], start: int, size: int) -> dict[str, Any]:
    page = hits[start : start + size]
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": 1.0 if page else None,
            "hits": [
                {"_index": index, "_id": doc["id"], "_score": 1.0, "_source": doc} for doc in page
            ],
        },
    }
