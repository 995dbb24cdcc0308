"""The OpenMetadata API the mock serves under ``/api``, with faults, auth and the request log.

Every request passes one middleware: record it, apply the fault rule that matches (or the
global latency / error rate), check the bearer token (all of ``/api/v1`` except
``/api/v1/system/version``), run the handler, and turn ``ApiError`` / ``Invalid`` into
OpenMetadata's ``{"code", "message"}`` bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from aiohttp import web

from . import _models_v2, _status
from ._errors import ApiError, error_response, json_response
from ._faults import FaultRule
from ._http import (
    STATE_KEY,
    decode,
    include_deleted,
    int_param,
    json_body,
    patch_body,
    user,
    uuid_param,
)
from ._lineage_api import lineage_routes
from ._listing import list_page
from ._models_openlineage import OPENLINEAGE_BATCH, OPENLINEAGE_RUN_EVENT
from ._openlineage import batch_response, single_response
from ._state import MockState, RecordedRequest
from ._store import KINDS
from ._validation import Invalid, validate

_OPEN_PATHS = frozenset({"/api/v1/system/version"})
_GC_PAUSE_BYTES = 64 * 1024  # bodies below this parse in microseconds: not worth the toggle
# What ``error_rate`` injects: a retriable server error.
_RANDOM_ERROR = FaultRule(mode="error", status=503)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Dropped(Exception):
    """The connection was dropped on purpose (reset, hang, down): nothing to send."""


def _drop_connection(transport: asyncio.BaseTransport | None) -> None:
    """Close the client's TCP connection with a RST (SO_LINGER 0), sending no response."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Already closed by the peer: dropping it is all we wanted.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


async def _pause(state: MockState, seconds: float) -> None:
    """Sleep, but wake when the mock closes so shutting down never waits for a fault."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.closing.wait(), timeout=seconds)


async def _hang(state: MockState, request: web.Request) -> None:
    """Answer nothing until the client gives up or the mock closes."""
    transport = request.transport
    while transport is not None and not transport.is_closing() and request.transport is not None:
        try:
            await asyncio.wait_for(state.closing.wait(), timeout=0.05)
        except TimeoutError:
            continue
        return


# Leaf entities only: deleting a parent would need OpenMetadata's recursive semantics.
_DELETABLE = frozenset({"table", "container", "pipeline"})


@web.middleware
async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    started_s = time.time()
    started = time.perf_counter()
    try:
        body = await request.read()
    except ConnectionResetError:
        # The client (or a `down`/`reset` fault) closed the connection mid-body: nobody is
        # left to answer, and it is not the mock's error to report.
        return web.Response(status=499)
    rule = state.faults.pick(request.method, request.path)
    if rule is None and state.faults.roll(state.error_rate):
        rule = _RANDOM_ERROR
    status = 0
    error: str | None = None
    try:
        response = await _respond(state, request, handler, rule)
        status = response.status
        if status >= 400 and isinstance(response, web.Response):
            error = _error_message(response.body)
        return response
    except _Dropped:
        # The transport is closed: aiohttp finds nothing to write this response to.
        return web.Response(status=499)
    finally:
        state.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query_string,
                status=status,
                time_s=started_s,
                duration_ms=(time.perf_counter() - started) * 1000.0,
                body=body,
                fault=rule.mode if rule is not None else None,
                error=error,
            )
        )


def _error_message(body: Any) -> str | None:
    if not isinstance(body, bytes):
        return None
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = decoded.get("message") if isinstance(decoded, dict) else None
    return message if isinstance(message, str) else None


async def _respond(
    state: MockState, request: web.Request, handler: Handler, rule: FaultRule | None
) -> web.StreamResponse:
    if state.faults.down:
        # A keep-alive connection opened before the port went down: drop it too.
        _drop_connection(request.transport)
        raise _Dropped
    if state.latency_ms:
        await _pause(state, state.latency_ms / 1000.0)
    if rule is not None:
        if rule.mode in ("slow", "error"):
            await _pause(state, state.faults.delay_s(rule))
        if rule.mode == "error":
            return error_response(
                rule.status, f"mock fault: injected HTTP {rule.status}", rule.retry_after_s
            )
        if rule.mode == "hang":
            # Keep hold of the transport: aiohttp forgets it when the client leaves, and a
            # socket nobody closes would leak.
            transport = request.transport
            await _hang(state, request)
            _drop_connection(transport)
            raise _Dropped
        if rule.mode == "reset":
            _drop_connection(request.transport)
            raise _Dropped
    try:
        if request.path not in _OPEN_PATHS:
            state.tokens.check(request.headers.get("Authorization"))
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.retry_after_s)
    except Invalid as exc:
        return error_response(400, str(exc))


@contextlib.contextmanager
def _gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic GC for one synchronous stretch of work on a large body.

    A batch of 500 Spark events decodes into ~500k containers. With the GC on, the
    collections their allocation triggers walk every one of them (and again in each older
    generation, and the whole heap when they are promoted), which cost more than decoding
    and checking them (measured: the native batch endpoint ~2x slower). The decoded tree is
    acyclic and dies by reference counting at the end of the stretch, so with the GC paused
    it is never walked at all. Nothing awaits inside, so no other request runs meanwhile;
    objects that outlive the stretch (the event log) are collected as usual later.
    """
    if size < _GC_PAUSE_BYTES or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- system -----------------------------------------------------------------------------------


async def _version(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_response(
        {"version": state.version, "revision": "mock", "timestamp": 1_767_225_600_000}
    )


# -- entities ---------------------------------------------------------------------------------


def _entity_routes(entity_type: str) -> list[web.RouteDef]:
    collection = f"/api/v1/{KINDS[entity_type].collection}"

    async def put(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        entity, change = state.store.put(entity_type, await json_body(request), user(request))
        status = 201 if change == "entityCreated" else 200
        return json_response(entity, status, {"X-OpenMetadata-Change": change})

    async def post(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        entity = state.store.create(entity_type, await json_body(request), user(request))
        return json_response(entity, 201, {"X-OpenMetadata-Change": "entityCreated"})

    async def by_name(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        entity = state.store.get_by_fqn(
            entity_type, request.match_info["fqn"], include_deleted=include_deleted(request)
        )
        return json_response(state.store.view(entity_type, entity, request.query.get("fields")))

    async def by_id(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        entity = state.store.get_by_id(
            entity_type, request.match_info["id"], include_deleted=include_deleted(request)
        )
        return json_response(state.store.view(entity_type, entity, request.query.get("fields")))

    async def delete(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        if entity_type not in _DELETABLE:
            raise ApiError(
                400, f"the mock deletes only {sorted(_DELETABLE)}; {entity_type} is not one"
            )
        hard = request.query.get("hardDelete", "false").lower() == "true"
        entity, change = state.store.delete(
            entity_type, request.match_info["id"], hard=hard, user=user(request)
        )
        if hard:
            state.lineage.forget(entity["id"])
        return json_response(entity, 200, {"X-OpenMetadata-Change": change})

    async def listing(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        fields = request.query.get("fields")
        include = request.query.get("include", "non-deleted")
        entities = state.store.entities(entity_type, include_deleted=include != "non-deleted")
        if include == "deleted":
            entities = [entity for entity in entities if entity["deleted"]]
        page = list_page(
            entity_type, entities, request.query, lambda e: state.store.view(entity_type, e, fields)
        )
        return json_response(page)

    async def patch(request: web.Request, entity: dict[str, Any]) -> web.Response:
        state = request.app[STATE_KEY]
        patched, change = state.store.patch(
            entity_type, entity, await patch_body(request), user(request)
        )
        return json_response(patched, 200, {"X-OpenMetadata-Change": change})

    async def patch_by_id(request: web.Request) -> web.Response:
        entity_id = uuid_param(request, "id")
        return await patch(request, request.app[STATE_KEY].store.get_by_id(entity_type, entity_id))

    async def patch_by_name(request: web.Request) -> web.Response:
        fqn = request.match_info["fqn"]
        return await patch(request, request.app[STATE_KEY].store.get_by_fqn(entity_type, fqn))

    return [
        web.put(collection, put),
        web.post(collection, post),
        web.get(collection, listing),
        web.get(collection + "/name/{fqn:.+}", by_name),
        web.patch(collection + "/name/{fqn:.+}", patch_by_name),
        web.get(collection + "/{id}", by_id),
        web.patch(collection + "/{id}", patch_by_id),
        web.delete(collection + "/{id}", delete),
    ]


# -- pipeline status --------------------------------------------------------------------------


async def _put_status(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    pipeline = _status.put_status(state.store, request.match_info["fqn"], await json_body(request))
    view = state.store.view("pipeline", pipeline, "tasks,pipelineStatus")
    return json_response(view, 200, {"X-OpenMetadata-Change": "entityUpdated"})


async def _put_status_bulk(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    pipeline = _status.put_statuses(
        state.store, request.match_info["fqn"], await json_body(request)
    )
    view = state.store.view("pipeline", pipeline, "tasks,pipelineStatus")
    return json_response(view, 200, {"X-OpenMetadata-Change": "entityUpdated"})


async def _list_status(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    query = request.query
    return json_response(
        _status.list_statuses(
            state.store,
            request.match_info["fqn"],
            query.get("startTs"),
            query.get("endTs"),
            query.get("limit"),
            query.get("status"),
        )
    )


async def _delete_status(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    pipeline = _status.delete_status(
        state.store, request.match_info["fqn"], request.match_info["timestamp"]
    )
    return json_response(state.store.view("pipeline", pipeline, "tasks,pipelineStatus"))


# -- search -----------------------------------------------------------------------------------


async def _search_query(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    query = request.query
    if state.server_v2:
        search_after = query.getall("search_after", [])
    else:
        joined = query.get("search_after")
        search_after = joined.split(",") if joined else []
    result = state.search.query(
        query.get("index", "table_search_index"),
        query.get("q") or "*",
        int_param(request, "from", 0),
        int_param(request, "size", 10),
        _deleted_param(query.get("deleted"), state.server_v2),
        sort_field=query.get("sort_field") or "_score",
        sort_order=query.get("sort_order") or "desc",
        search_after=search_after,
        query_filter=query.get("query_filter"),
        server_v2=state.server_v2,
    )
    return json_response(result)


def _deleted_param(raw: str | None, server_v2: bool) -> bool | None:
    """2.0's deprecated ``deleted`` filters only when given; 1.13's defaulted to false."""
    if raw is None:
        return None if server_v2 else False
    return raw.lower() == "true"


async def _search_field(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    query = request.query
    field, value = query.get("fieldName"), query.get("fieldValue")
    if not field or value is None:
        raise ApiError(400, "[query param fieldName must not be null, fieldValue must not be null]")
    deleted = query.get("deleted", "false").lower() == "true"
    return json_response(
        state.search.field_query(query.get("index", "table_search_index"), field, value, deleted)
    )


# -- native OpenLineage -----------------------------------------------------------------------


def _openlineage_available(state: MockState) -> None:
    if not state.openlineage_endpoints:
        raise ApiError(404, "HTTP 404 Not Found")


def _disabled() -> web.Response:
    body = {"status": "failure", "message": "OpenLineage API is disabled", "lineageEdgesCreated": 0}
    return json_response(body, 503)


async def _openlineage(request: web.Request, *, batch: bool) -> web.Response:
    """One event (`/lineage`) or `{"events": [...]}` (`/lineage/batch`): checked against the
    server version's model, recorded, then processed one event at a time."""
    state = request.app[STATE_KEY]
    _openlineage_available(state)
    if batch:
        model = _models_v2.OPENLINEAGE_BATCH if state.server_v2 else OPENLINEAGE_BATCH
    else:
        model = _models_v2.OPENLINEAGE_RUN_EVENT if state.server_v2 else OPENLINEAGE_RUN_EVENT
    raw = await request.read()
    with _gc_paused(len(raw)):
        body = decode(raw)
        validate(model, body)
        if not state.openlineage.settings.enabled:
            return _disabled()
        events = body["events"] if batch else [body]
        state.events.extend(events)
        state.events_received += len(events)
        results = [state.openlineage.process(e) for e in events]
        status, answer = batch_response(results) if batch else single_response(results[0])
        response = json_response(answer, status)
        del body, events  # freed here, while the GC is paused: never walked by it
        return response


async def _openlineage_single(request: web.Request) -> web.Response:
    return await _openlineage(request, batch=False)


async def _openlineage_batch(request: web.Request) -> web.Response:
    return await _openlineage(request, batch=True)


async def _not_found(request: web.Request) -> web.Response:
    """Unknown path: 404; known path with another method: 405 (Jersey's answers)."""
    for resource in request.app.router.resources():
        if resource.canonical == "/{tail}":
            continue
        match, allowed = await resource.resolve(request)
        if match is None and allowed:
            raise ApiError(405, "HTTP 405 Method Not Allowed")
    raise ApiError(404, "HTTP 404 Not Found")


def build_api_app(state: MockState) -> web.Application:
    """The aiohttp application of the API port."""
    app = web.Application(middlewares=[_serve], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    routes = [
        web.get("/api/v1/system/version", _version),
        *lineage_routes(),
        web.put("/api/v1/pipelines/{fqn:.+}/status/bulk", _put_status_bulk),
        web.put("/api/v1/pipelines/{fqn:.+}/status", _put_status),
        web.get("/api/v1/pipelines/{fqn:.+}/status", _list_status),
        web.delete("/api/v1/pipelines/{fqn:.+}/status/{timestamp:[0-9]+}", _delete_status),
        web.get("/api/v1/search/query", _search_query),
        web.get("/api/v1/search/fieldQuery", _search_field),
        web.post("/api/v1/openlineage/lineage", _openlineage_single),
        web.post("/api/v1/openlineage/lineage/batch", _openlineage_batch),
    ]
    for entity_type in KINDS:
        routes.extend(_entity_routes(entity_type))
    routes.append(web.route("*", "/{tail:.*}", _not_found))
    app.add_routes(routes)
    return app
