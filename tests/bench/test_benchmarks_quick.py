"""Every benchmark still runs: each script in benchmarks/ with --quick, as `make bench` runs it.

Marked `bench` (and slow): together they take several minutes, more than the test suite's
budget, so `make test` deselects them and `make bench` runs them before the full set. A new
script in benchmarks/ is picked up here and in the report without being listed anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _runner import QUICK_TIMEOUT_S, benchmarks, run

pytestmark = [pytest.mark.slow, pytest.mark.bench]

MARKDOWN_RULE = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


@pytest.mark.timeout(QUICK_TIMEOUT_S + 60)
@pytest.mark.parametrize("script", benchmarks(), ids=lambda path: path.stem)
def test_benchmark_runs_quick_with_a_table_and_results(script: Path, tmp_path: Path) -> None:
    outcome = run(script, quick=True, results_dir=tmp_path)
    assert outcome.returncode == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    lines = [line for line in outcome.stdout.splitlines() if line.strip()]
    assert any(MARKDOWN_RULE.match(line) for line in lines), outcome.stdout
    # the RESULT lines come last, each a number
    assert lines and lines[-1].startswith("RESULT "), outcome.stdout
    assert outcome.results, outcome.stdout
    for name, value in outcome.results.items():
        number = float(value)
        if name.endswith("_lost"):
            assert number == 0, f"{name}={value}: acknowledged events did not arrive"
