"""Starting in-process relays in tests: one way for every folder that needs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relay._app import Relay
from relay._config import load_config

StartRelay = Callable[..., Awaitable[Relay]]


class RelayStarter:
    """`await starter(**{"section.key": value})` -> a started Relay; `aclose()` closes them all.

    `defaults(n)` gives the settings of the n-th relay started (0, 1, ...), overridden by the
    call's; nothing comes from the environment. `delivery=False` leaves the forwarder out.
    """

    def __init__(self, defaults: Callable[[int], dict[str, Any]], *, delivery: bool = True) -> None:
        self._defaults = defaults
        self._delivery = delivery
        self.started: list[Relay] = []

    async def __call__(self, **overrides: Any) -> Relay:
        settings = {**self._defaults(len(self.started)), **overrides}
        relay = Relay(load_config(None, environ={}, overrides=settings), delivery=self._delivery)
        self.started.append(relay)
        await relay.start()
        return relay

    async def aclose(self) -> None:
        for relay in self.started:
            await relay.aclose()
