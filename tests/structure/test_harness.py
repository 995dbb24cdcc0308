"""One test harness: shared helpers live in `*_support.py` modules or fixtures, never in a
`conftest` imported by name (pytest loads every folder's conftest as the same module name, so
such an import breaks as soon as two folders are collected in one call)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_no_test_module_imports_conftest_by_name() -> None:
    offenders = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if "conftest" in {name.split(".")[-1] for name in _imported_modules(path)}
    )
    assert offenders == []


def test_helper_module_names_do_not_collide_across_folders() -> None:
    """Folders are on sys.path side by side (no packages), and so is benchmarks/ (pytest's
    `pythonpath`, for tests/bench): two `x_support.py`, or a helper named like a benchmark
    script, would shadow."""
    seen: dict[str, Path] = {}
    clashes: list[str] = []
    for path in sorted([*TESTS.rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]):
        if path.name == "conftest.py" or "fixtures" in path.parts:
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(REPO)} and {path.relative_to(REPO)}")
        seen[path.name] = path
    assert clashes == []
