"""Fuzz figures: the hostile-input tests with more hypothesis examples than the suite runs.

    python benchmarks/fuzz.py --quick       # the suite's slice (250 fuzzed requests + corpus)
    python benchmarks/fuzz.py [--examples N] # default 5000 fuzzed requests

Runs `tests/ingest/test_hostile_input.py` under pytest (a relay of its own, raw sockets: see
that module) and reports what its session summary prints: `RESULT fuzz_cases=` (requests
sent, corpus and fuzzed) and `RESULT fuzz_crashes=` (answers that were not well-formed JSON
2xx/4xx/503; any also fails the test). A plain `pytest` run prints the same two lines.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/ingest/test_hostile_input.py"
RESULT = re.compile(r"^RESULT (fuzz_\w+)=(\d+)$", re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the suite's slice, under a minute")
    parser.add_argument("--examples", type=int, default=5000, help="fuzzed requests")
    args = parser.parse_args()
    examples = 250 if args.quick else args.examples
    env = {**os.environ, "HOSTILE_FUZZ_EXAMPLES": str(examples)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    figures = dict(RESULT.findall(done.stdout))
    passed = done.returncode == 0
    print("| fuzz | value |\n|---|---|")
    print(f"| hypothesis examples asked | {examples} |")
    print(f"| requests sent (corpus + fuzzed) | {figures.get('fuzz_cases', '?')} |")
    print(f"| malformed answers | {figures.get('fuzz_crashes', '?')} |")
    print(f"| tests passed (log, memory, well-behaved client, spool) | {passed} |")
    print(f"| seconds | {seconds:.1f} |")
    if not passed:
        print(done.stdout[-3000:], file=sys.stderr)
    print(f"RESULT fuzz_cases={figures.get('fuzz_cases', 0)}")
    print(f"RESULT fuzz_crashes={figures.get('fuzz_crashes', 0)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
