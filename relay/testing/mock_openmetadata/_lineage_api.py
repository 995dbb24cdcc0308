"""The ``/api/v1/lineage`` routes (``LineageResource``), in Jersey's matching order.

A path with more literal characters wins in Jersey, so ``DELETE {entity}/{id}/type/{source}``
is tried before the four-parameter edge route it would otherwise fall into. The by-name
variants of PUT, PATCH, GET-edge and delete-by-source came with 2.0 (issue 28864); on a 1.13
mock their paths answer as 1.13 did (404, or 405 where another method owns the path).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import _models
from ._errors import ApiError, json_response
from ._http import json_body, known_type, patch_body, state_of, user, uuid_param
from ._lineage import parse_depth
from ._validation import strip_nulls, validate

_UPDATED = {"X-OpenMetadata-Change": "entityUpdated"}
_BY_NAME = "/api/v1/lineage/{from_type}/name/{from_fqn:[^/]+}/{to_type}/name/{to_fqn:[^/]+}"


def _since_v2(request: web.Request, status_before: int) -> None:
    if not state_of(request).server_v2:
        message = "HTTP 405 Method Not Allowed" if status_before == 405 else "HTTP 404 Not Found"
        raise ApiError(status_before, message)


def _ref(request: web.Request, end: str) -> dict[str, Any]:
    entity_type = known_type(request.match_info[f"{end}_type"])
    return {"type": entity_type, "id": uuid_param(request, f"{end}_id")}


def _ref_by_name(request: web.Request, end: str) -> dict[str, Any]:
    entity_type = known_type(request.match_info[f"{end}_type"])
    entity = state_of(request).store.get_by_fqn(entity_type, request.match_info[f"{end}_fqn"])
    return {"type": entity_type, "id": entity["id"]}


async def _put(request: web.Request) -> web.Response:
    state_of(request).lineage.add(await json_body(request), user(request))
    return web.Response(status=200)


async def _put_by_name(request: web.Request) -> web.Response:
    """The edge's ``lineageDetails`` (or nothing) as the body; both ends from the path."""
    _since_v2(request, 405)
    from_ref, to_ref = _ref_by_name(request, "from"), _ref_by_name(request, "to")
    raw = await request.read()
    details: Any = {}
    if raw.strip():
        details = await json_body(request)
        validate(_models.LINEAGE_DETAILS, details)
    edge = {"fromEntity": from_ref, "toEntity": to_ref, "lineageDetails": strip_nulls(details)}
    state_of(request).lineage.upsert(edge, user(request))
    return web.Response(status=200)


async def _get_edge(request: web.Request) -> web.Response:
    from_id, to_id = uuid_param(request, "from_id"), uuid_param(request, "to_id")
    return json_response({"edge": state_of(request).lineage.details(from_id, to_id)})


async def _get_edge_by_name(request: web.Request) -> web.Response:
    _since_v2(request, 404)
    from_ref, to_ref = _ref_by_name(request, "from"), _ref_by_name(request, "to")
    details = state_of(request).lineage.details(from_ref["id"], to_ref["id"])
    return json_response({"edge": details})


async def _patch(request: web.Request) -> web.Response:
    from_ref, to_ref = _ref(request, "from"), _ref(request, "to")
    return await _patch_edge(request, from_ref, to_ref)


async def _patch_by_name(request: web.Request) -> web.Response:
    _since_v2(request, 405)
    return await _patch_edge(request, _ref_by_name(request, "from"), _ref_by_name(request, "to"))


async def _patch_edge(
    request: web.Request, from_ref: dict[str, Any], to_ref: dict[str, Any]
) -> web.Response:
    state = state_of(request)
    patch = await patch_body(request)
    details = state.lineage.patch(from_ref, to_ref, patch, user(request), server_v2=state.server_v2)
    return json_response(details, 200, _UPDATED)


def _not_deleted() -> ApiError:
    return ApiError(404, "Lineage edge not found")


async def _delete(request: web.Request) -> web.Response:
    state = state_of(request)
    from_ref, to_ref = _ref(request, "from"), _ref(request, "to")
    state.store.get_by_id(from_ref["type"], from_ref["id"])
    state.store.get_by_id(to_ref["type"], to_ref["id"])
    if not state.lineage.remove(from_ref["id"], to_ref["id"]):
        raise _not_deleted()
    return web.Response(status=200)


async def _delete_by_name(request: web.Request) -> web.Response:
    from_ref, to_ref = _ref_by_name(request, "from"), _ref_by_name(request, "to")
    if not state_of(request).lineage.remove(from_ref["id"], to_ref["id"]):
        raise _not_deleted()
    return web.Response(status=200)


async def _delete_by_source(request: web.Request) -> web.Response:
    """Always 200: the server checks neither the entity nor the source name."""
    entity_id = uuid_param(request, "id")
    state_of(request).lineage.delete_by_source(
        request.match_info["type"], entity_id, request.match_info["source"]
    )
    return web.Response(status=200)


async def _delete_by_source_and_name(request: web.Request) -> web.Response:
    _since_v2(request, 404)
    entity_type = known_type(request.match_info["type"])
    entity = state_of(request).store.get_by_fqn(entity_type, request.match_info["fqn"])
    state_of(request).lineage.delete_by_source(
        entity_type, entity["id"], request.match_info["source"]
    )
    return web.Response(status=200)


def _graph(request: web.Request, entity_type: str, entity: dict[str, Any]) -> web.Response:
    up = parse_depth(request.query.get("upstreamDepth"), "upstreamDepth")
    down = parse_depth(request.query.get("downstreamDepth"), "downstreamDepth")
    return json_response(state_of(request).lineage.view(entity_type, entity, up, down))


async def _graph_by_name(request: web.Request) -> web.Response:
    entity_type = known_type(request.match_info["type"])
    entity = state_of(request).store.get_by_fqn(entity_type, request.match_info["fqn"])
    return _graph(request, entity_type, entity)


async def _graph_by_id(request: web.Request) -> web.Response:
    entity_type = known_type(request.match_info["type"])
    entity = state_of(request).store.get_by_id(entity_type, request.match_info["id"])
    return _graph(request, entity_type, entity)


def lineage_routes() -> list[web.RouteDef]:
    """Most specific first: aiohttp takes the first route that matches."""
    base = "/api/v1/lineage"
    edge = base + "/{from_type}/{from_id}/{to_type}/{to_id}"
    return [
        web.put(base, _put),
        web.get(base + "/getLineageEdge/{from_id}/{to_id}", _get_edge),
        web.get(base + "/getLineageEdge" + _BY_NAME[len(base) :], _get_edge_by_name),
        web.delete(
            base + "/source/name/{type}/{fqn:[^/]+}/type/{source}", _delete_by_source_and_name
        ),
        web.put(_BY_NAME, _put_by_name),
        web.patch(_BY_NAME, _patch_by_name),
        web.delete(_BY_NAME, _delete_by_name),
        web.delete(base + "/{type}/{id}/type/{source}", _delete_by_source),
        web.patch(edge, _patch),
        web.delete(edge, _delete),
        web.get(base + "/{type}/name/{fqn:.+}", _graph_by_name),
        web.get(base + "/{type}/{id}", _graph_by_id),
    ]
