"""Tests that read the reference folder skip when it is absent, summed up in one line, and
fail instead under CI, so a CI run never loses them silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# Parametrized tests that ask for the folder, and a file whose mock fixture asks for it.
SELECTION = [
    "tests/mock/test_schema_oracle.py::test_enums_match_the_schemas",
    "tests/mock/test_entities.py",
]


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env, LINEAGE_RELAY_SHARED_DIR=str(tmp_path / "absent"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *SELECTION],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_without_the_folder_they_skip_with_one_summary_line(tmp_path: Path) -> None:
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]
    skip_lines = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skip_lines) == 1, result.stdout[-2000:]
    assert "reference folder" in skip_lines[0]


def test_under_ci_a_missing_folder_fails_them(tmp_path: Path) -> None:
    result = _pytest(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "CI=true: it must be present" in result.stdout
