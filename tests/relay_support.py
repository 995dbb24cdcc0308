"""Starting relays in tests, one way for every folder: the settings every test relay starts
from, and three ways to run one on them.

- `RelayStarter` (the `start_relay` and `start_forwarding_relay` fixtures): in-process, on the
  test's event loop; the usual way.
- `ThreadedRelay`: in-process on an event loop in a thread (with the mock it forwards to, if
  given), for synchronous tests that block on sockets or drive Spark.
- `RelayProcess`: `lineage-relay serve` as a child process, for what only a process shows (kill
  -9, stop signals, flags, the console script); `relay.testing.processes` runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from openmetadata_support import MOCK_TOKEN

from relay._app import Relay
from relay._config import ENV_PREFIX, Config, load_config
from relay._events import SpooledEvent
from relay.testing import processes
from relay.testing.mock_openmetadata import MockOpenMetadata

T = TypeVar("T")

# Delivery towards a port where nothing listens: events stay in the spool (a relay under test
# never talks to an OpenMetadata it was not given).
NOWHERE = "http://127.0.0.1:9/api"
CONSOLE_SCRIPT = Path(sys.executable).with_name("lineage-relay")

StartRelay = Callable[..., Awaitable[Relay]]


def relay_settings(spool_dir: Path, **overrides: Any) -> dict[str, Any]:
    """`{"section.key": value}` of a test relay: an ephemeral loopback port, its spool in
    `spool_dir`, OpenMetadata NOWHERE; `overrides` win."""
    return {
        "relay.listen": "127.0.0.1:0",
        "spool.dir": str(spool_dir),
        "openmetadata.host_port": NOWHERE,
        **overrides,
    }


def forwarding_settings(directory: Path, mock_url: str, **overrides: Any) -> dict[str, Any]:
    """A relay with its spool in `directory` forwarding to the mock at `mock_url` with
    MOCK_TOKEN (from a file written there), through the openlineage sink, with retries and
    linger short enough for a test."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "om-token"
    token_file.write_text(MOCK_TOKEN)
    settings = {
        "openmetadata.host_port": mock_url,
        "openmetadata.sink": "openlineage",
        "openmetadata.jwt_token_file": str(token_file),
        "openmetadata.retry_delay_ms": 20,
        "openmetadata.retry_max_delay_ms": 200,
        "forwarder.linger_ms": 20,
    }
    return relay_settings(directory / "spool", **{**settings, **overrides})


def relay_config(spool_dir: Path, **overrides: Any) -> Config:
    """The `Config` of `relay_settings` (nothing from the environment)."""
    return load_config(None, environ={}, overrides=relay_settings(spool_dir, **overrides))


async def spooled(relay: Relay) -> list[SpooledEvent]:
    """Every pending event of `relay`'s spool, in id order (leased briefly, then given back)."""
    assert relay.spool is not None
    events = await relay.spool.lease(max_events=1_000_000, max_bytes=1 << 40, lease_s=60)
    await relay.spool.release([e.id for e in events])
    return events


class RelayStarter:
    """`await starter(**{"section.key": value})` -> a started Relay; `aclose()` closes them all.

    `defaults(n)` gives the settings of the n-th relay started (0, 1, ...), overridden by the
    call's; nothing comes from the environment. `delivery=False` leaves the forwarder out (a
    call's `delivery=` decides for that relay).
    """

    def __init__(self, defaults: Callable[[int], dict[str, Any]], *, delivery: bool = True) -> None:
        self._defaults = defaults
        self._delivery = delivery
        self.started: list[Relay] = []

    async def __call__(self, *, delivery: bool | None = None, **overrides: Any) -> Relay:
        settings = {**self._defaults(len(self.started)), **overrides}
        relay = Relay(
            load_config(None, environ={}, overrides=settings),
            delivery=self._delivery if delivery is None else delivery,
        )
        self.started.append(relay)
        await relay.start()
        return relay

    async def aclose(self) -> None:
        for relay in self.started:
            await relay.aclose()


class ThreadedRelay:
    """A started relay on an event loop in a daemon thread: without delivery (`relay_settings`),
    or, given a `mock` not yet started, forwarding to it (`forwarding_settings`, the token file
    beside `spool_dir`): the mock starts first on the same loop and closes after the relay."""

    def __init__(
        self, spool_dir: Path, mock: MockOpenMetadata | None = None, /, **overrides: Any
    ) -> None:
        def settings(_: int) -> dict[str, Any]:
            if mock is None:
                return relay_settings(spool_dir, **overrides)
            given = {"spool.dir": str(spool_dir), **overrides}
            return forwarding_settings(spool_dir.parent, mock.url, **given)

        self._starter = RelayStarter(settings, delivery=mock is not None)
        self.mock = mock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.relay: Relay | None = None
        self.port = 0

    def __enter__(self) -> ThreadedRelay:
        self.thread.start()
        try:
            if self.mock is not None:
                self.run(self.mock.start())
            self.relay = self.run(self._starter())
        except BaseException:
            self.__exit__()
            raise
        self.port = int(self.relay.url.rsplit(":", 1)[1])
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run(self._starter.aclose())
            if self.mock is not None:
                self.run(self.mock.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()

    @property
    def config(self) -> Config:
        assert self.relay is not None
        return self.relay.config

    @property
    def url(self) -> str:
        assert self.relay is not None
        return self.relay.url

    @property
    def ingest_state(self) -> tuple[int, int, int]:
        """(in flight, processing, body bytes held), read on the relay's loop."""
        assert self.relay is not None
        ingest = self.relay.ingest

        async def read() -> tuple[int, int, int]:
            return ingest.in_flight, ingest.processing, ingest.body_bytes_in_flight

        return self.run(read())

    def spooled(self) -> list[SpooledEvent]:
        """`spooled(relay)`, on the relay's loop."""
        assert self.relay is not None
        return self.run(spooled(self.relay))


class RelayProcess(processes.RelayProcess):
    """`lineage-relay serve` as a child process on `relay_settings`: its listen address and
    spool as flags (`relay.listen` and `spool.dir` in `settings` are left out), the rest as
    `LINEAGE_RELAY_*` variables, with `relay.drain_timeout_s = 0`: nothing to drain towards, so
    a stop signal ends it at once (the drain's own tests set it).

    `settings` (`{"section.key": value}`) override the defaults; `env` adds raw variables
    after them. `start()` blocks until it listens (run it in a thread from async tests); its
    JSON log lines are in `log_path` (`logs()`).
    """

    def __init__(
        self,
        log_dir: Path,
        spool_dir: Path,
        *,
        name: str = "relay",
        config: Path | None = None,
        console_script: bool = False,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        # One source of a test relay's defaults (relay_settings); its listen and spool keys are
        # dropped below because the flags give them.
        given = relay_settings(spool_dir, **{"relay.drain_timeout_s": 0, **(settings or {})})
        variables = {
            ENV_PREFIX + key.replace(".", "_").upper(): str(value)
            for key, value in given.items()
            if key not in ("relay.listen", "spool.dir")  # the flags say those
        }
        program = (str(CONSOLE_SCRIPT),) if console_script and CONSOLE_SCRIPT.exists() else ()
        super().__init__(
            log_dir, spool_dir, config=config, env={**variables, **(env or {})}, name=name,
            program=program,
        )  # fmt: skip

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]
