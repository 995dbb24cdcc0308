"""``lineage-relay mock-openmetadata``: run the mock until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from ._catalog import CatalogError
from ._faults import parse_rules
from ._ol_settings import OpenLineageSettings, check_settings_version
from ._server import MockOpenMetadata
from ._state import DEFAULT_SERVER_VERSION, parse_server_version

READY_PREFIX = "mock-openmetadata listening on "
_EPILOG = """\
The relay's openmetadata.host_port is http://HOST:PORT/api.

Control API (plain HTTP on --control-listen):
  PUT    /mock/faults              one rule or a list, replacing the active set
  DELETE /mock/faults              clear them
  GET    /mock/requests            what the API port received (?path=GLOB&method=M)
  GET    /mock/openlineage-events  events received on the native endpoints
  PUT    /mock/openlineage/failures  make chosen events fail: {"job_name": GLOB,
                                   "run_id": ID, "reason": TEXT, "retriable": BOOL}
  PUT    /mock/openlineage/settings  {"eventTypeFilter": [...], "autoCreateEntities": BOOL,
                                   "namespaceToServiceMapping": {...}, ...}
  PUT    /mock/tokens              {"tokens": [...]} (token rotation)
  PUT    /mock/version             {"version": "1.13.0"}: answer as another version
  GET    /mock/state, /mock/lineage, /mock/health;  POST /mock/reset

Fault rule: {"mode": "healthy|slow|error|hang|reset|down", "latency_ms": N,
  "jitter_ms": N, "status": N, "retry_after_s": N, "rate": 0..1, "path": GLOB,
  "method": M, "times": N}; the first matching rule applies; "down" refuses
  connections on the API port until the rules are cleared.
"""


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8585)")
    return host.strip("[]"), int(port)


def _server_version(text: str) -> str:
    try:
        parse_server_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _json_or_file(text: str) -> Any:
    """Inline JSON, or the path of a JSON file."""
    source = text
    if not text.lstrip().startswith(("{", "[")):
        try:
            source = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither inline JSON nor a readable file ({exc.strerror})"
            ) from exc
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON in {text!r}: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineage-relay mock-openmetadata",
        description="A mock OpenMetadata server (API 2.0, or 1.13) with fault injection.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 8585),
        metavar="HOST:PORT",
        help="API address (default 127.0.0.1:8585; port 0 = ephemeral)",
    )
    parser.add_argument(
        "--control-listen",
        type=_address,
        metavar="HOST:PORT",
        help="control API address (default: the API port + 1; ephemeral when that is 0)",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=None,
        metavar="T",
        help="accepted bearer token (repeatable; default: any unexpired token)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        metavar="FILE",
        help="JSON catalog of services, databases, schemas, tables, containers",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, metavar="N", help="delay added to every API call"
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of API calls answered 503 (0..1)",
    )
    parser.add_argument(
        "--faults",
        type=_json_or_file,
        metavar="JSON",
        help="fault rule(s) active from the start: inline JSON or a file",
    )
    parser.add_argument(
        "--no-openlineage-endpoints",
        action="store_true",
        help="answer 404 on /api/v1/openlineage/* like older servers",
    )
    parser.add_argument(
        "--openlineage-settings",
        type=_json_or_file,
        metavar="JSON",
        help="OpenMetadata OpenLineage settings (camelCase JSON or a file)",
    )
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS with this cert")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="private key of --tls-cert")
    parser.add_argument(
        "--request-log-limit",
        type=int,
        default=10_000,
        metavar="N",
        help="remember the latest N requests for GET /mock/requests (default 10000)",
    )
    parser.add_argument(
        "--event-log-limit",
        type=int,
        default=100_000,
        metavar="N",
        help="remember the latest N OpenLineage events (default 100000)",
    )
    parser.add_argument("--seed", type=int, help="seed of the fault dice (reproducible runs)")
    parser.add_argument(
        "--server-version",
        type=_server_version,
        default=DEFAULT_SERVER_VERSION,
        metavar="X.Y.Z",
        help=f"OpenMetadata version to answer as (default {DEFAULT_SERVER_VERSION}; "
        "1.13.0 behaves as 1.13 where 2.0 differs)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    host, port = args.listen
    if args.control_listen is not None:
        control_host, control_port = args.control_listen
    else:
        control_host, control_port = host, (port + 1 if port else 0)
    settings = None
    if args.openlineage_settings is not None:
        check_settings_version(
            args.openlineage_settings, parse_server_version(args.server_version) >= (2, 0, 0)
        )
        settings = OpenLineageSettings.from_json(args.openlineage_settings)
    mock = MockOpenMetadata(
        tokens=args.token,
        catalog=args.catalog,
        faults=parse_rules(args.faults) if args.faults is not None else (),
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        openlineage_endpoints=not args.no_openlineage_endpoints,
        openlineage=settings,
        seed=args.seed,
        request_log_limit=args.request_log_limit,
        event_log_limit=args.event_log_limit,
        version=args.server_version,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await mock.start(host, port, control_port, ssl_context, control_host=control_host)
    try:
        print(f"{READY_PREFIX}{mock.url} (control {mock.control_url})", flush=True)
        if args.token is None:
            print("note: no --token given, any unexpired bearer token is accepted", flush=True)
        await stop.wait()
    finally:
        await mock.aclose()


def cli_main(argv: list[str]) -> int:
    """Run the mock from command-line arguments; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error(f"--error-rate {args.error_rate} must be between 0 and 1")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    try:
        asyncio.run(_serve(args))
    except (CatalogError, ValueError, OSError, ssl.SSLError) as exc:
        print(f"mock-openmetadata: {exc}", file=sys.stderr)
        return 2
    return 0
