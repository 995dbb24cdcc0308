"""The operator commands beside `serve`, each in its own module: `doctor`, `status`, `smoke`.

Each module has `add_parser(commands)` (its argparse sub-command) and `run(args) -> int`
(its exit status); `_cli.py` registers and dispatches them by name.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from . import _doctor, _smoke, _status

__all__ = ["OPERATIONS", "Operation"]


class Operation(Protocol):
    def add_parser(self, commands: Any) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


OPERATIONS: dict[str, Operation] = {"doctor": _doctor, "status": _status, "smoke": _smoke}
