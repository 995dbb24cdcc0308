"""The control API on its own port (not part of OpenMetadata's API).

A separate port, so that a "down" fault can really close the API port while tests keep
steering the mock. No authentication: it binds loopback like everything else in tests.

    GET    /mock/health                  {"api": "up" | "down", "url": ...}
    GET    /mock/faults                  the active fault rules
    PUT    /mock/faults                  one rule or a list (replaces the active set)
    DELETE /mock/faults                  clear them
    GET    /mock/requests                what the API port received (?path=<glob>&method=)
    DELETE /mock/requests                forget them
    GET    /mock/openlineage-events      events received on the native endpoints, in order
    DELETE /mock/openlineage-events      forget them
    GET|PUT|DELETE /mock/openlineage/failures   event failure rules (see _openlineage.py)
    GET|PUT /mock/openlineage/settings  OpenLineage settings (OpenMetadata's camelCase JSON)
    PUT    /mock/tokens                  {"tokens": [...]} or {"tokens": null} (any token)
    GET|PUT /mock/version                {"version": "2.0.7"}: the OpenMetadata version answered as
    GET    /mock/state                   counts of entities, edges, statuses, requests, events
    GET    /mock/lineage                 every lineage edge, with entity references
    POST   /mock/reset                   back to the seeded catalog, logs and faults cleared
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ._errors import error_response, json_response
from ._faults import FaultRule, parse_rules
from ._ol_settings import OpenLineageSettings, check_settings_version, parse_failures
from ._state import MockState

FaultSetter = Callable[[list[FaultRule]], Awaitable[None]]
ApiStatus = Callable[[], dict[str, Any]]
STATE_KEY = web.AppKey("mock_state", MockState)
SET_FAULTS_KEY: web.AppKey[FaultSetter] = web.AppKey("mock_set_faults")
API_STATUS_KEY: web.AppKey[ApiStatus] = web.AppKey("mock_api_status")


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=orjson.dumps({"code": 400, "message": f"body is not JSON: {exc}"}).decode(),
            content_type="application/json",
        ) from None


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ValueError, TypeError) as exc:
        return error_response(400, str(exc))


async def _health(request: web.Request) -> web.Response:
    return json_response(request.app[API_STATUS_KEY]())


async def _get_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_response([rule.to_json() for rule in state.faults.rules])


async def _put_faults(request: web.Request) -> web.Response:
    rules = parse_rules(await _body(request))
    await request.app[SET_FAULTS_KEY](rules)
    return json_response([rule.to_json() for rule in rules])


async def _delete_faults(request: web.Request) -> web.Response:
    await request.app[SET_FAULTS_KEY]([])
    return json_response([])


async def _get_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    path, method = request.query.get("path"), request.query.get("method")
    return json_response(
        [
            item.to_json()
            for item in state.requests
            if (path is None or fnmatch.fnmatchcase(item.path, path))
            and (method is None or item.method == method.upper())
        ]
    )


async def _delete_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].requests.clear()
    return json_response([])


async def _get_events(request: web.Request) -> web.Response:
    return json_response(list(request.app[STATE_KEY].events))


async def _delete_events(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.events.clear()
    state.events_received = 0
    return json_response([])


async def _take_events(request: web.Request) -> web.Response:
    """The recorded events, removed in the same step: a long run collects every event by
    taking them as they come, which the bounded record alone cannot hold."""
    state = request.app[STATE_KEY]
    events = list(state.events)
    state.events.clear()
    return json_response(events)


async def _get_failures(request: web.Request) -> web.Response:
    failures = request.app[STATE_KEY].openlineage.failures
    return json_response([item.to_json() for item in failures])


async def _put_failures(request: web.Request) -> web.Response:
    failures = parse_failures(await _body(request))
    request.app[STATE_KEY].openlineage.set_failures(failures)
    return json_response([item.to_json() for item in failures])


async def _delete_failures(request: web.Request) -> web.Response:
    request.app[STATE_KEY].openlineage.set_failures([])
    return json_response([])


async def _get_settings(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].openlineage.settings.to_json())


async def _put_settings(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ValueError("OpenLineage settings must be a JSON object")
    check_settings_version(body, request.app[STATE_KEY].server_v2)
    settings = OpenLineageSettings.from_json(body)
    request.app[STATE_KEY].openlineage.settings = settings
    return json_response(settings.to_json())


async def _put_tokens(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict) or "tokens" not in body:
        raise ValueError('tokens must be given as {"tokens": ["..."]} or {"tokens": null}')
    tokens = body["tokens"]
    if tokens is not None and (
        not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)
    ):
        raise ValueError("tokens must be a list of strings or null")
    request.app[STATE_KEY].tokens.set_tokens(tokens)
    return json_response({"tokens": None if tokens is None else len(tokens)})


async def _get_version(request: web.Request) -> web.Response:
    return json_response({"version": request.app[STATE_KEY].version})


async def _put_version(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("version"), str):
        raise ValueError('the version must be given as {"version": "MAJOR.MINOR.PATCH"}')
    request.app[STATE_KEY].set_version(body["version"])
    return json_response({"version": request.app[STATE_KEY].version})


async def _state(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].summary())


async def _lineage(request: web.Request) -> web.Response:
    return json_response(list(request.app[STATE_KEY].lineage.edges.values()))


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    await request.app[SET_FAULTS_KEY]([])
    return json_response(request.app[STATE_KEY].summary())


def build_control_app(
    state: MockState, set_faults: FaultSetter, api_status: Callable[[], dict[str, Any]]
) -> web.Application:
    """The aiohttp application of the control port."""
    app = web.Application(middlewares=[_errors])
    app[STATE_KEY] = state
    app[SET_FAULTS_KEY] = set_faults
    app[API_STATUS_KEY] = api_status
    app.add_routes(
        [
            web.get("/mock/health", _health),
            web.get("/mock/faults", _get_faults),
            web.put("/mock/faults", _put_faults),
            web.delete("/mock/faults", _delete_faults),
            web.get("/mock/requests", _get_requests),
            web.delete("/mock/requests", _delete_requests),
            web.get("/mock/openlineage-events", _get_events),
            web.delete("/mock/openlineage-events", _delete_events),
            web.post("/mock/openlineage-events/take", _take_events),
            web.get("/mock/openlineage/failures", _get_failures),
            web.put("/mock/openlineage/failures", _put_failures),
            web.delete("/mock/openlineage/failures", _delete_failures),
            web.get("/mock/openlineage/settings", _get_settings),
            web.put("/mock/openlineage/settings", _put_settings),
            web.put("/mock/tokens", _put_tokens),
            web.get("/mock/version", _get_version),
            web.put("/mock/version", _put_version),
            web.get("/mock/state", _state),
            web.get("/mock/lineage", _lineage),
            web.post("/mock/reset", _reset),
        ]
    )
    return app
