"""The `lineage-relay` command.

    lineage-relay serve [--config FILE] [--listen HOST:PORT] [--spool-dir DIR] [--log-level L]
    lineage-relay mock-openmetadata [...]   the mock OpenMetadata server (tests, demo)
    lineage-relay doctor|status|smoke [...] check a setup, watch a relay, gate a rollout
    lineage-relay replay [...]              dead letters, files, an S3 offload back into the spool

Exit status of `serve`: 0 after a graceful stop (SIGTERM/SIGINT), 1 when the
relay failed (the spool could not be opened, or a write/fsync failed), 2 when the
configuration is refused (the message names the key).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._config import DEFAULT_LISTEN, Config, load_config
from ._exceptions import ConfigError, SpoolError
from ._observe.logging import configure_logging
from ._operations import OPERATIONS

# `_app` is imported only when serving, and each operator command's module only when it runs
# (see `_operations`): help, a usage error and a refused configuration answer without aiohttp.
if TYPE_CHECKING:
    from ._app import Relay

__all__ = ["main"]

log = logging.getLogger("relay")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineage-relay",
        description="A local, durable relay from OpenLineage clients to OpenMetadata.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the relay",
        description=(
            "Accept OpenLineage events over HTTP, spool them durably, deliver them. "
            "Precedence: defaults < --config file < LINEAGE_RELAY_<SECTION>_<KEY> < flags."
        ),
    )
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    serve.add_argument("--spool-dir", metavar="DIR", help="directory of the on-disk spool")
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="default info"
    )
    commands.add_parser(
        "mock-openmetadata",
        help="run the mock OpenMetadata server (see `lineage-relay mock-openmetadata --help`)",
        add_help=False,
    )
    for name, operation in OPERATIONS.items():
        operation.add_parser(name, commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["mock-openmetadata"]:
        # Its own argument parser lives with the mock, imported only when asked for.
        mock = importlib.import_module("relay.testing.mock_openmetadata")
        cli_main: Callable[[list[str]], int] = mock.cli_main
        return cli_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "serve":
        return _serve(args)
    if args.command in OPERATIONS:
        return OPERATIONS[args.command].load()(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse refuses others


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.listen is not None:
        overrides["relay.listen"] = args.listen
    if args.spool_dir is not None:
        overrides["spool.dir"] = args.spool_dir
    if args.log_level is not None:
        overrides["relay.log_level"] = args.log_level
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"lineage-relay: configuration refused: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.relay.log_level)
    return asyncio.run(_run(config))


async def _run(config: Config) -> int:
    from ._app import Relay

    try:
        relay = Relay(config)
    except ConfigError as exc:
        log.error("configuration refused: %s", exc, extra={"error": str(exc)})
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("received %s again; still stopping", sig.name)
            return
        log.info("received %s; stopping", sig.name, extra={"signal": sig.name})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await _serve_until_stopped(relay, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _serve_until_stopped(relay: Relay, stop: asyncio.Event) -> int:
    try:
        await relay.start()
    except ConfigError as exc:
        log.error("configuration refused: %s", exc, extra={"error": str(exc)})
        return EXIT_CONFIG
    except (OSError, SpoolError) as exc:
        log.critical(
            "the relay cannot start: %s",
            exc,
            extra={"error": str(exc), "error_type": type(exc).__name__},
        )
        return EXIT_FAILED

    stopped = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(relay.wait_failed())
    try:
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopped, failed):
            task.cancel()
        # A signal: drain (and offload) before exiting; a failed spool: just stop.
        await relay.aclose(drain=stop.is_set() and relay.failure is None)
    if relay.failure is not None:
        log.critical(
            "the relay stopped after a spool failure; events acknowledged before it are on disk",
            extra={"error": str(relay.failure), "exit_status": EXIT_FAILED},
        )
        return EXIT_FAILED
    return EXIT_OK
