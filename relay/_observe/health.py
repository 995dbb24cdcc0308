"""`GET /health`: one status built from per-component checks.

Each part of the relay registers a check under its name (`spool` here; the
forwarder adds `openmetadata` and `breaker`). A check returns a
`ComponentHealth`; one that raises or takes longer than `CHECK_TIMEOUT_S`
counts as degraded. The relay is healthy (200) only when every component is:

    {"status": "healthy", "components": {"spool": {"status": "healthy", "events": 3, ...}}}

and otherwise answers 503 with `"status": "degraded"` and the same detail.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

__all__ = ["CHECK_TIMEOUT_S", "ComponentCheck", "ComponentHealth", "Health"]

CHECK_TIMEOUT_S = 2.0
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    healthy: bool
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": "healthy" if self.healthy else "degraded", **self.details}


ComponentCheck = Callable[[], ComponentHealth | Awaitable[ComponentHealth]]


class Health:
    """The registry of component checks and the `/health` handler."""

    def __init__(self) -> None:
        self._checks: dict[str, ComponentCheck] = {}

    def add(self, name: str, check: ComponentCheck) -> None:
        """Register (or replace) the check of component `name`."""
        self._checks[name] = check

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self._checks)

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the JSON document) from running every check."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(n, self._checks[n]) for n in names))
        components = {name: result.to_json() for name, result in zip(names, results, strict=True)}
        healthy = all(result.healthy for result in results)
        return healthy, {
            "status": "healthy" if healthy else "degraded",
            "components": components,
        }

    async def _run(self, name: str, check: ComponentCheck) -> ComponentHealth:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                return result
        except TimeoutError:
            return ComponentHealth(False, {"error": f"check took over {CHECK_TIMEOUT_S:g} s"})
        except Exception as exc:  # a broken check is a degraded component, not a crash
            log.warning("health check %s failed", name, exc_info=True)
            return ComponentHealth(False, {"error": f"{type(exc).__name__}: {exc}"})

    async def handle(self, request: web.Request) -> web.Response:
        healthy, document = await self.report()
        return web.Response(
            status=200 if healthy else 503,
            body=orjson.dumps(document),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
