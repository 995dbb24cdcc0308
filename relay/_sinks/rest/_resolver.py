"""Datasets -> OpenMetadata entities: the lookups `relay._translate.lookup_for` plans, run.

A table named by a full FQN is read with `GET /v1/tables/name/{fqn}`; a container is
searched by `fullPath` and a table by the end of its FQN, and the hits are compared exactly
(the search only narrows; a hit that merely resembles the name is never taken). More than
one exact match is `ambiguous`: logged and counted by the caller, never guessed.

Found entities are cached (bounded); a cached entity the server no longer knows (a 404 on
an edge) is dropped with `forget`. Misses are not cached: a parked edge asks again.
With `auto_create`, a missing table (with its database and schema) or container is
created under the rule's service instead of being reported missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from ..._config import MappingRule
from ..._observe.audit import AuditSubject
from ..._translate import (
    Dataset,
    EntityView,
    Lookup,
    container_request,
    lookup_for,
    quote_name,
    split_fqn,
    table_requests,
    url_fqn,
)
from ._api import Api
from ._cache import Lru

__all__ = ["Resolution", "Resolver"]

log = logging.getLogger(__name__)

_LUCENE_SPECIAL = re.compile(r'([+\-=&|><!(){}\[\]^"~*?:\\/\s])')
_SEARCH_SIZE = 25
_CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Resolution:
    outcome: Literal["found", "missing", "ambiguous"]
    lookup: Lookup
    entity: EntityView | None = None
    matches: int = 0


class Resolver:
    """Finds (or, with `auto_create`, creates) the entity of each dataset."""

    def __init__(self, api: Api, rules: Sequence[MappingRule], *, auto_create: bool) -> None:
        self._api = api
        self._rules = tuple(rules)
        self._auto_create = auto_create
        self._cache: Lru[tuple[Any, ...], EntityView] = Lru(_CACHE_ENTRIES)
        self._warned: Lru[tuple[Any, ...], bool] = Lru(_CACHE_ENTRIES)

    def lookup(self, dataset: Dataset) -> Lookup:
        return lookup_for(dataset, self._rules)

    def forget(self, entity_id: str) -> None:
        """Drop every cached entity with this id (the server answered 404 for it)."""
        self._cache.remove_if(lambda view: view.id == entity_id)

    async def resolve(self, dataset: Dataset) -> Resolution:
        lookup = self.lookup(dataset)
        cached = self._cache.get(lookup.key)
        if cached is not None:
            return Resolution("found", lookup, cached, 1)
        resolution = await self._find(lookup)
        if resolution.outcome == "missing" and self._auto_create:
            created = await self._create(lookup, dataset)
            if created is not None:
                resolution = Resolution("found", lookup, created, 1)
        if resolution.entity is not None:
            self._cache.put(lookup.key, resolution.entity)
        return resolution

    async def _find(self, lookup: Lookup) -> Resolution:
        if lookup.fqn:
            doc = await self._api.get(
                f"/v1/tables/name/{url_fqn(lookup.fqn)}?fields=columns",
                endpoint="/v1/tables/name",
            )
            if not isinstance(doc, dict) or "id" not in doc:
                return Resolution("missing", lookup)
            return Resolution("found", lookup, _view("table", doc), 1)
        if lookup.full_path:
            hits = await self._search(
                "container_search_index", f'fullPath:"{_quoted(lookup.full_path)}"'
            )
            exact = [
                h for h in hits
                if _same_path(h.get("fullPath"), lookup.full_path)
                and (not lookup.service or _service_name(h) == lookup.service)
            ]  # fmt: skip
            return self._one(lookup, "container", exact)
        suffix = ".".join(quote_name(part) for part in lookup.name_parts)
        pattern = f"fullyQualifiedName:*.{_escaped(suffix)}"
        hits = await self._search("table_search_index", pattern)
        size = len(lookup.name_parts)
        exact = []
        for hit in hits:
            parts = split_fqn(str(hit.get("fullyQualifiedName", "")))
            if len(parts) != 4 or tuple(parts[-size:]) != lookup.name_parts:
                continue
            if lookup.service and parts[0] != lookup.service:
                continue
            exact.append(hit)
        return self._one(lookup, "table", exact)

    def _one(self, lookup: Lookup, kind: str, exact: list[dict[str, Any]]) -> Resolution:
        unique = {str(hit.get("id")): hit for hit in exact if hit.get("id")}
        if not unique:
            return Resolution("missing", lookup)
        if len(unique) > 1:
            fqns = sorted(str(hit.get("fullyQualifiedName")) for hit in unique.values())
            if self._warned.get(lookup.key) is None:  # once per dataset, not every retry
                self._warned.put(lookup.key, True)
                log.warning(
                    "dataset %s matches %d %ss (%s): ambiguous, no lineage written for it; add an "
                    "[[openmetadata.mapping]] rule for namespace %r naming the service",
                    lookup.display, len(unique), kind, ", ".join(fqns), lookup.namespace,
                )  # fmt: skip
            return Resolution("ambiguous", lookup, None, len(unique))
        (hit,) = unique.values()
        return Resolution("found", lookup, _view(kind, hit), 1)

    async def _search(self, index: str, query: str) -> list[dict[str, Any]]:
        # OpenMetadata 2.0 returns soft-deleted entities unless `deleted=false` is given (1.13
        # left them out by default); a deleted table must never be bound, so ask and check both.
        params = urlencode(
            {"q": query, "index": index, "from": 0, "size": _SEARCH_SIZE, "deleted": "false"}
        )
        doc = await self._api.get(f"/v1/search/query?{params}", endpoint="/v1/search/query")
        hits = (doc or {}).get("hits", {}).get("hits", []) if isinstance(doc, dict) else []
        return [
            h["_source"]
            for h in hits
            if isinstance(h, dict)
            and isinstance(h.get("_source"), dict)
            and not h["_source"].get("deleted")
        ]

    async def _create(self, lookup: Lookup, dataset: Dataset) -> EntityView | None:
        if lookup.kind == "table":
            requests = table_requests(lookup, dataset)
            if not requests:
                return None
            doc: Any = None
            for collection, body in requests:
                doc = await self._api.put(
                    f"/v1/{collection}", body, endpoint=f"/v1/{collection}",
                    audit=AuditSubject(f"create_{collection}", (lookup.fqn,)),
                )  # fmt: skip
            log.info("created table %s (auto_create)", lookup.fqn)
            return _view("table", doc) if isinstance(doc, dict) and "id" in doc else None
        request = container_request(lookup, dataset)
        if request is None:
            return None
        created = await self._api.put(
            "/v1/containers", request, endpoint="/v1/containers",
            audit=AuditSubject("create_containers", (lookup.full_path,)),
        )  # fmt: skip
        log.info("created container %s (auto_create)", lookup.full_path)
        return (
            _view("container", created) if isinstance(created, dict) and "id" in created else None
        )


def _view(kind: str, doc: dict[str, Any]) -> EntityView:
    fqn = str(doc.get("fullyQualifiedName", ""))
    if kind == "container":
        columns = (doc.get("dataModel") or {}).get("columns") or []
    else:
        columns = doc.get("columns") or []
    return EntityView(
        id=str(doc["id"]), type=kind, fqn=fqn, columns=frozenset(_columns(fqn, columns))
    )


def _columns(parent: str, columns: Any) -> list[str]:
    out: list[str] = []
    for column in columns if isinstance(columns, list) else []:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            continue
        fqn = column.get("fullyQualifiedName")
        fqn = fqn if isinstance(fqn, str) and fqn else f"{parent}.{quote_name(column['name'])}"
        out.append(fqn)
        out.extend(_columns(fqn, column.get("children")))
    return out


def _service_name(hit: dict[str, Any]) -> str:
    service = hit.get("service")
    if isinstance(service, dict):
        return str(service.get("name") or service.get("fullyQualifiedName") or "")
    return str(service or "")


def _same_path(found: Any, wanted: str) -> bool:
    return isinstance(found, str) and found.rstrip("/") == wanted.rstrip("/")


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _escaped(value: str) -> str:
    return _LUCENE_SPECIAL.sub(r"\\\1", value)
