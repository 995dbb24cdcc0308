"""The CLI starts light: each operator command's module is imported only when that command
runs, so `--help`, a usage error and a refused configuration answer without aiohttp."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relay._operations import OPERATIONS

REPO = Path(__file__).resolve().parent.parent.parent
# Each operator command's module, from the table (a new command is covered too).
_COMMAND_MODULES = {name: op.run.partition(":")[0] for name, op in OPERATIONS.items()}
# aiohttp, and the modules that would bring it or the spool's machinery along.
_HEAVY = (
    "aiohttp", "relay._admin", "relay._app", "relay._spool", *sorted(_COMMAND_MODULES.values()),
)  # fmt: skip


def _fresh(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it binds `result`, printed with what got loaded."""
    program = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        heavy = [name for name in {_HEAVY!r} if name in sys.modules]
        print(json.dumps({{"result": result, "loaded": heavy}}))
    """)
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def test_importing_the_cli_loads_no_command_module() -> None:
    answer = _fresh("""
        import relay._cli
        result = None
    """)
    assert answer["loaded"] == []


def test_a_refused_configuration_answers_without_aiohttp(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\nlisten = "localhost"\n')  # no port: refused
    answer = _fresh(f"""
        from relay._cli import main
        result = main(["serve", "--config", {str(config)!r}])
    """)
    assert answer == {"result": 2, "loaded": []}


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in OPERATIONS)])
def test_help_answers_without_aiohttp(argv: list[str]) -> None:
    answer = _fresh(f"""
        from relay._cli import main
        try:
            main({argv!r})
        except SystemExit as exc:
            result = exc.code
    """)
    assert answer == {"result": 0, "loaded": []}


def test_a_command_imports_its_module_when_it_runs() -> None:
    """A usage error `replay` finds itself (not argparse): its module was loaded to say it."""
    answer = _fresh("""
        from relay._cli import main
        result = main(["replay", "--reason", "x", "--file", "events.json"])
    """)
    assert answer["result"] == 2
    loaded = answer["loaded"]
    assert isinstance(loaded, list)
    replay = _COMMAND_MODULES["replay"]
    assert replay in loaded
    assert not (set(_COMMAND_MODULES.values()) - {replay}) & set(loaded)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_every_command_names_a_run_function(name: str) -> None:
    """A wrong "module:function" in the table fails here, not at an operator's prompt."""
    run = OPERATIONS[name].load()
    assert callable(run)
    assert run.__name__ == "run"
    assert run.__module__ == _COMMAND_MODULES[name]


def test_every_command_parses_its_flags() -> None:
    """The table's parsers are the ones `main` uses (a flag of each command parses)."""
    from relay._cli import _parser

    samples = {
        "doctor": ["doctor", "--timeout", "3"],
        "status": ["status", "--interval", "0.5"],
        "smoke": ["smoke", "--timeout", "5"],
        "replay": ["replay", "--dead-letters", "--id", "1", "2"],
    }
    assert set(samples) == set(OPERATIONS)
    parsed = {name: _parser().parse_args(argv) for name, argv in samples.items()}
    assert parsed["doctor"].timeout == 3.0
    assert parsed["status"].interval == 0.5
    assert parsed["smoke"].timeout == 5.0
    assert parsed["replay"].ids == [1, 2]
