"""What every API handler shares: the state key, body decoding, the caller, path checks."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from ._auth import jwt_claims
from ._errors import ApiError
from ._state import MockState
from ._store import DEFAULT_USER, KINDS

STATE_KEY = web.AppKey("mock_state", MockState)
JSON_PATCH = "application/json-patch+json"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def state_of(request: web.Request) -> MockState:
    return request.app[STATE_KEY]


async def json_body(request: web.Request) -> Any:
    return decode(await request.read())


def decode(raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "Request body must not be null")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Unable to process JSON: {exc}") from None


async def patch_body(request: web.Request) -> Any:
    """A JSON Patch body; Jersey answers 415 to any other media type on a PATCH route."""
    if request.content_type != JSON_PATCH:
        raise ApiError(415, "HTTP 415 Unsupported Media Type")
    return await json_body(request)


def user(request: web.Request) -> str:
    """The caller: the token's ``sub`` claim, else the ingestion bot."""
    header = request.headers.get("Authorization", "")
    claims = jwt_claims(header[len("Bearer ") :]) if header.startswith("Bearer ") else None
    subject = claims.get("sub") if claims else None
    return subject if isinstance(subject, str) and subject else DEFAULT_USER


def include_deleted(request: web.Request) -> bool:
    return request.query.get("include", "non-deleted") in ("deleted", "all")


def known_type(entity_type: str) -> str:
    if entity_type not in KINDS:
        raise ApiError(400, f"Invalid entity type {entity_type}")
    return entity_type


def uuid_param(request: web.Request, name: str) -> str:
    """A path parameter Jersey converts to ``UUID``: anything else does not match (404)."""
    value = request.match_info[name]
    if _UUID.fullmatch(value) is None:
        raise ApiError(404, "HTTP 404 Not Found")
    return value.lower()


def int_param(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise ApiError(400, f"query param {name} must be an integer") from None
