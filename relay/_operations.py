"""The operator commands beside `serve`: `doctor`, `status`, `smoke`, `replay`.

Their argparse parsers live here, and each command's implementation is named as
"module:function", imported only when that command runs: `lineage-relay --help` and a refused
configuration answer without loading aiohttp, the spool or the admin client (~0.5 s).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._config import DEFAULT_LISTEN

__all__ = ["OPERATIONS", "Operation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One sub-command: its parser, and where its `run(args) -> exit status` lives."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: str  # "module:function", imported when the command runs

    def add_parser(self, name: str, commands: Any) -> None:
        """Register the sub-command on the `lineage-relay` subcommands."""
        self.add_arguments(commands.add_parser(name, help=self.help, description=self.description))

    def load(self) -> Callable[[argparse.Namespace], int]:
        module, _, function = self.run.partition(":")
        run: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), function
        )
        return run


def _doctor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration of the relay")
    parser.add_argument(
        "--spark-conf", metavar="FILE", help="a spark-defaults.conf whose lineage keys to check"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="per call to OpenMetadata (10)"
    )


def _status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"the relay's base URL (default: from --config, else http://{DEFAULT_LISTEN})"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (for relay.listen)")
    parser.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between samples (2)"
    )


def _smoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="the relay's TOML configuration")
    parser.add_argument("--url", help="the relay's base URL (default: from relay.listen)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="how long to wait (60)"
    )
    parser.add_argument("--input", metavar="FQN", help="table the smoke job reads")
    parser.add_argument("--output", metavar="FQN", help="table the smoke job writes")
    parser.add_argument(
        "--create-test-entities",
        action="store_true",
        help="create two throwaway tables in --schema and remove them afterwards",
    )
    parser.add_argument(
        "--schema", metavar="FQN", help="database schema for --create-test-entities"
    )
    parser.add_argument(
        "--namespace",
        default="lineage-relay-smoke",
        help="OpenLineage namespace of the job and datasets (default lineage-relay-smoke)",
    )


def _replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--spool-dir", metavar="DIR", help="the spool to put the events in")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dead-letters", action="store_true", help="move dead letters back into the queue"
    )
    source.add_argument(
        "--file", nargs="+", metavar="FILE", type=Path,
        help="JSON (one event, an array, or {\"events\": [...]}) or NDJSON, gzip'd or not",
    )  # fmt: skip
    source.add_argument(
        "--s3", metavar="s3://BUCKET/PREFIX", help="every object under the prefix, in key order"
    )
    parser.add_argument(
        "--reason", metavar="PREFIX", help="with --dead-letters: only reasons starting so"
    )
    parser.add_argument(
        "--id", nargs="+", type=int, metavar="ID", dest="ids",
        help="with --dead-letters: only these dead letters (ids as `status` or the logs show)",
    )  # fmt: skip
    parser.add_argument("--region", help="with --s3: AWS region (default: offload.region)")
    parser.add_argument(
        "--endpoint-url", help="with --s3: S3-compatible endpoint (default: offload.endpoint_url)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )


OPERATIONS: dict[str, Operation] = {
    "doctor": Operation(
        help="check configuration, OpenMetadata, token, TLS, spool and Spark settings",
        description=(
            "Check a relay setup and print each finding with its fix. "
            "Exit status: 0 all passed, 1 warnings, 2 failures."
        ),
        add_arguments=_doctor,
        run="relay._doctor:run",
    ),
    "status": Operation(
        help="one screen of a running relay: rates, backlog, latency, breaker, dead letters",
        description="Read the relay's /health and /metrics and show what it is doing.",
        add_arguments=_status,
        run="relay._status:run",
    ),
    "smoke": Operation(
        help="post a synthetic run through the relay and check it arrives in OpenMetadata",
        description=(
            "Post a START and a COMPLETE of a unique job through the running relay and check "
            "within --timeout that OpenMetadata shows them: the lineage edge (both sinks) and "
            "the run status (rest sink). Exit status: 0 seen, 1 not seen, 2 usage."
        ),
        add_arguments=_smoke,
        run="relay._smoke:run",
    ),
    "replay": Operation(
        help="put dead letters, files or an S3 offload back into the spool",
        description=(
            "Re-queue events into the spool for the relay to deliver. Works on the spool "
            "directly: stop the relay using it first (its lock refuses a second user). "
            "Idempotent: what was queued from a file or S3 before is not queued again."
        ),
        add_arguments=_replay,
        run="relay._replay.command:run",
    ),
}
