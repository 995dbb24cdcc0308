"""``MockOpenMetadata``: the in-process server (API port + control port) and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from ._api import build_api_app
from ._catalog import read_catalog
from ._control import build_control_app
from ._faults import FaultRule, parse_rules
from ._ol_settings import EventFailure, OpenLineageSettings, parse_failures
from ._state import DEFAULT_SERVER_VERSION, MockState

_SHUTDOWN_TIMEOUT_S = 2.0


class MockOpenMetadata:
    """A mock OpenMetadata server for tests, demos and benchmarks.

    ``tokens``: accepted bearer tokens (None: any well-formed, unexpired token).
    ``catalog``: a catalog mapping or the path of a catalog JSON file (see ``_catalog``).
    ``faults``: fault rules active from the start. ``latency_ms`` / ``error_rate``: a delay
    added to every API call and the share of calls answered 503. ``openlineage_endpoints``:
    False makes the native OpenLineage endpoints 404, like an older server.
    ``openlineage``: the native endpoints' settings. ``request_log_limit`` /
    ``event_log_limit``: how many of the latest requests / events to remember (None: all;
    the defaults bound memory under benchmark load, ``openlineage_events_received`` counts
    every event regardless). ``version``: the OpenMetadata version to answer as (default the
    current 2.0 release; ``1.13.0`` keeps 1.13's behaviour where the two differ).

    Use as ``async with MockOpenMetadata(...) as mock:`` (starts on ephemeral loopback ports)
    or call ``await start(...)`` and ``await aclose()``.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        catalog: Mapping[str, Any] | str | Path | None = None,
        faults: Sequence[FaultRule | Mapping[str, Any]] = (),
        latency_ms: int = 0,
        error_rate: float = 0.0,
        openlineage_endpoints: bool = True,
        openlineage: OpenLineageSettings | None = None,
        request_log_limit: int | None = 10_000,
        event_log_limit: int | None = 100_000,
        seed: int | None = None,
        version: str = DEFAULT_SERVER_VERSION,
    ) -> None:
        if isinstance(catalog, str | Path):
            catalog = read_catalog(catalog)
        self._state = MockState(
            tokens=tokens,
            catalog=catalog,
            faults=parse_rules(list(faults)),
            latency_ms=latency_ms,
            error_rate=error_rate,
            openlineage_endpoints=openlineage_endpoints,
            openlineage=openlineage or OpenLineageSettings(),
            request_log_limit=request_log_limit,
            event_log_limit=event_log_limit,
            seed=seed,
            version=version,
        )
        self._api_runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self._api_site: web.TCPSite | None = None
        self._held: socket.socket | None = None  # the API port while it is down
        self._host = "127.0.0.1"
        self._control_host = "127.0.0.1"
        self._port = 0
        self._control_port = 0
        self._ssl_context: ssl.SSLContext | None = None
        self._started = False
        self._closed = False
        self._fault_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int | None = 0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        control_host: str | None = None,
    ) -> None:
        """Listen on ``host:port`` (0: ephemeral) and the control port (None: no control port).

        With ``ssl_context`` the API port serves HTTPS (the control port stays plain HTTP).
        The control port binds ``control_host`` (default: ``host``).
        """
        if self._started or self._closed:
            raise RuntimeError("a MockOpenMetadata starts once; create a new one to restart")
        self._started = True
        self._host, self._ssl_context = host, ssl_context
        self._control_host = control_host or host
        try:
            self._api_runner = web.AppRunner(
                build_api_app(self._state),
                access_log=None,
                shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
                handle_signals=False,
            )
            await self._api_runner.setup()
            self._port = port
            await self._listen()
            if control_port is not None:
                self._control_runner = web.AppRunner(
                    build_control_app(self._state, self.set_faults, self._api_status),
                    access_log=None,
                    shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
                    handle_signals=False,
                )
                await self._control_runner.setup()
                site = web.TCPSite(self._control_runner, self._control_host, control_port)
                await site.start()
                self._control_port = _bound_port(site)
            self._state.store.base_url = self.url
            if self._state.faults.down:
                await self._go_down()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop both ports; hanging requests are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._state.closing.set()
        self._release_port()
        for runner in (self._api_runner, self._control_runner):
            if runner is not None:
                await runner.cleanup()

    async def __aenter__(self) -> MockOpenMetadata:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def control_port(self) -> int:
        return self._control_port

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` of the API port."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{_url_host(self._host)}:{self._port}"

    @property
    def url(self) -> str:
        """The API base, ending in ``/api`` (the relay's ``openmetadata.host_port``)."""
        return f"{self.base_url}/api"

    @property
    def control_url(self) -> str:
        return f"http://{_url_host(self._control_host)}:{self._control_port}"

    # -- faults and inspection ---------------------------------------------------------------

    async def set_faults(self, rules: FaultRule | Mapping[str, Any] | Sequence[Any]) -> None:
        """Replace the active fault rules; a ``down`` rule closes the API port until cleared."""
        parsed = parse_rules(rules)
        async with self._fault_lock:
            self._state.faults.replace(parsed)
            if not self._started or self._closed:
                return
            if self._state.faults.down:
                await self._go_down()
            else:
                await self._listen()

    async def clear_faults(self) -> None:
        await self.set_faults([])

    @property
    def faults(self) -> list[FaultRule]:
        return list(self._state.faults.rules)

    def set_openlineage_failures(
        self, failures: EventFailure | Mapping[str, Any] | Sequence[Any]
    ) -> None:
        """Make matching events fail on the native endpoints (see ``EventFailure``)."""
        if isinstance(failures, EventFailure):
            failures = [failures]
        self._state.openlineage.set_failures(parse_failures(failures))

    def set_openlineage_settings(self, settings: OpenLineageSettings) -> None:
        self._state.openlineage.settings = settings

    @property
    def server_version(self) -> str:
        """The OpenMetadata version the mock reports and behaves as."""
        return self._state.version

    def set_server_version(self, version: str) -> None:
        """Answer as another OpenMetadata version from the next request on: ``1.13.x``
        behaves as 1.13 where 2.0 differs, ``2.x`` as 2.0 (ValueError if not MAJOR.MINOR.PATCH).
        """
        self._state.set_version(version)

    def set_tokens(self, tokens: Iterable[str] | None) -> None:
        """Replace the accepted tokens (token rotation)."""
        self._state.tokens.set_tokens(tokens)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What the API port received: method, path, query, status, time, duration_ms, body
        (decoded JSON), fault (the fault mode applied) and error (an error answer's message)."""
        return [item.to_json() for item in self._state.requests]

    @property
    def openlineage_events(self) -> list[dict[str, Any]]:
        """OpenLineage events received on the native endpoints, in arrival order."""
        return list(self._state.events)

    @property
    def openlineage_events_received(self) -> int:
        """How many events the native endpoints accepted since the start (or the last reset)."""
        return self._state.events_received

    @property
    def lineage_edges(self) -> list[dict[str, Any]]:
        """Every stored lineage edge (``fromEntity``/``toEntity`` references + details)."""
        return list(self._state.lineage.edges.values())

    def entity(self, entity_type: str, fqn: str) -> dict[str, Any] | None:
        """A stored entity by type and FQN, or None."""
        return self._state.store.find_by_fqn(entity_type, fqn)

    def pipeline_statuses(self, pipeline_fqn: str) -> list[dict[str, Any]]:
        """Stored statuses of a pipeline, oldest first."""
        pipeline = self._state.store.find_by_fqn("pipeline", pipeline_fqn)
        if pipeline is None:
            return []
        series = self._state.store.statuses.get(pipeline["id"], {})
        return [series[stamp] for stamp in sorted(series)]

    def reset(self) -> None:
        """Back to the seeded catalog; lineage, statuses, logs, event failures cleared.

        Fault rules are cleared too, except that a ``down`` port stays down until
        ``set_faults`` is called (resetting is synchronous; reopening a port is not).
        """
        down = self._state.faults.down
        rules = self._state.faults.rules
        self._state.reset()
        if down:
            self._state.faults.replace(rules)

    # -- the API port going down and up ------------------------------------------------------

    def _api_status(self) -> dict[str, Any]:
        return {"api": "down" if self._api_site is None else "up", "url": self.url}

    async def _listen(self) -> None:
        if self._api_site is not None or self._api_runner is None:
            return
        self._release_port()
        site = web.TCPSite(self._api_runner, self._host, self._port, ssl_context=self._ssl_context)
        await site.start()
        self._api_site = site
        self._port = _bound_port(site)

    async def _go_down(self) -> None:
        site, self._api_site = self._api_site, None
        if site is not None:
            await site.stop()
        # Keep-alive connections would still reach the app: drop them as well.
        server = self._api_runner.server if self._api_runner is not None else None
        for protocol in list(server.connections if server is not None else []):
            transport = protocol.transport
            if transport is not None:
                transport.abort()
        self._hold_port()

    def _hold_port(self) -> None:
        """Keep the down port bound, not listening: a connection to it is refused, and no
        other socket can take it meanwhile (a client's ephemeral port, a relay binding port 0:
        seen once in CI), so the port comes back up where clients expect it."""
        held = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        try:
            held.bind((self._host, self._port))
        except OSError:
            # A connection the mock closed may linger in TIME_WAIT on the port: bind beside it.
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                held.bind((self._host, self._port))
            except OSError:
                held.close()
                return  # not held: coming back up may then find the port taken
        self._held = held

    def _release_port(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(OSError):
                held.close()


def _bound_port(site: web.TCPSite) -> int:
    # aiohttp keeps the asyncio server private; the bound port is only found there.
    sockets = getattr(site._server, "sockets", None)
    if not sockets:
        raise RuntimeError("the mock's listening socket did not open")
    port: int = sockets[0].getsockname()[1]
    return port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
