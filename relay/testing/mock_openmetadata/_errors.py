"""OpenMetadata's error bodies: ``{"code": N, "message": "..."}``."""

from __future__ import annotations

import math
from typing import Any

import orjson
from aiohttp import web


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into OpenMetadata's JSON error body."""

    def __init__(self, status: int, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def not_found(entity_type: str, key: str) -> ApiError:
    """OpenMetadata's ``EntityNotFoundException`` message."""
    return ApiError(404, f"{entity_type} instance for {key} not found")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, retry_after_s: float | None = None) -> web.Response:
    headers = None
    if retry_after_s is not None:
        # HTTP wants whole seconds; round up so a client never retries early.
        headers = {"Retry-After": str(math.ceil(retry_after_s))}
    return json_response({"code": status, "message": message}, status, headers)
