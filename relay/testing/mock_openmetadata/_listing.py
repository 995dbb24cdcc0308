"""``GET /v1/<entities>``: one page of a collection, with OpenMetadata's cursors and filters.

Entities come ordered by (name, id), as ``EntityDAO.listAfter`` reads them. A cursor is the
URL-safe base64 of ``{"name": ..., "id": ...}`` of the entity it points past; ``after`` is
set when another page follows, ``before`` when the page did not start at the beginning.
The parent filters each resource declares (``database`` and ``databaseSchema`` on tables,
``service`` on databases, pipelines and containers, ...) keep the entities under that parent's
FQN (``service`` takes the service's name); a filter another resource declares is ignored,
as Jersey ignores unknown parameters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ._errors import ApiError
from ._fqn import quote_name

MAX_LIMIT = 1_000_000
DEFAULT_LIMIT = 10
PARENT_FILTERS: dict[str, tuple[str, ...]] = {
    "table": ("database", "databaseSchema"),
    "databaseSchema": ("database",),
    "database": ("service",),
    "pipeline": ("service",),
    "container": ("service",),
}
Key = tuple[str, str]


def _key(entity: Mapping[str, Any]) -> Key:
    return str(entity["name"]), str(entity["id"])


def encode_cursor(entity: Mapping[str, Any]) -> str:
    raw = orjson.dumps({"name": entity["name"], "id": entity["id"]})
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> Key:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(decoded["name"]), str(decoded["id"])
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise ApiError(400, f"Invalid cursor {cursor}") from None


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        # A query parameter Jersey cannot convert to int does not match the resource.
        raise ApiError(404, "HTTP 404 Not Found") from None
    if limit < 0:
        raise ApiError(400, "[query param limit must be greater than or equal to 0]")
    if limit > MAX_LIMIT:
        raise ApiError(400, f"[query param limit must be less than or equal to {MAX_LIMIT}]")
    return limit


def _under(parent_fqn: str) -> Callable[[Mapping[str, Any]], bool]:
    prefix = parent_fqn + "."
    return lambda entity: str(entity["fullyQualifiedName"]).startswith(prefix)


def list_page(
    entity_type: str,
    entities: list[dict[str, Any]],
    query: Mapping[str, str],
    view: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The ``{"data": [...], "paging": {...}}`` answer for one listing request."""
    limit = _limit(query.get("limit"))
    before, after = query.get("before"), query.get("after")
    if before is not None and after is not None:
        raise ApiError(400, "Only one of before or after query parameter allowed")
    for name in PARENT_FILTERS.get(entity_type, ()):
        parent = query.get(name)
        if parent and name == "service":
            parent = quote_name(parent)  # a service is named, not qualified: quoted as a part
        if parent:
            entities = [entity for entity in entities if _under(parent)(entity)]
    entities = sorted(entities, key=_key)
    paging: dict[str, Any] = {"total": len(entities)}
    if limit == 0:
        return {"data": [], "paging": paging}
    if before is not None:
        mark = _decode_cursor(before)
        earlier = [entity for entity in entities if _key(entity) < mark]
        page = earlier[-(limit + 1) :]
        if len(page) > limit:
            page = page[1:]
            paging["before"] = encode_cursor(page[0])
        if page:
            paging["after"] = encode_cursor(page[-1])
    else:
        if after is not None:
            mark = _decode_cursor(after)
            entities = [entity for entity in entities if _key(entity) > mark]
        page = entities[: limit + 1]
        if after is not None and page:
            paging["before"] = encode_cursor(page[0])
        if len(page) > limit:
            page = page[:limit]
            paging["after"] = encode_cursor(page[-1])
    return {"data": [view(entity) for entity in page], "paging": paging}
