"""Run every benchmark and write `benchmarks/results/REPORT.md` (what `make bench` does).

    python benchmarks/_runner.py [--quick] [--only NAME ...] [--results DIR] [--no-readme]

A benchmark is any runnable `benchmarks/*.py` (a `__main__` block) whose name does not start
with `_`; each takes `--quick` (under a minute) and otherwise runs in full, prints Markdown
tables and ends with `RESULT <name>=<number>` lines. New scripts join the report by being
there. The report has the machine (cores, CPU model, memory, Python, Spark, Java, fsync time
of the disk under the results directory, load at the start), the date, a headline table of
every RESULT, then each benchmark's output and the plots it wrote (PNG files in the results
directory). Unless `--no-readme`, the README's performance section (between its
`bench:start`/`bench:end` markers) gets the headline table and the outage plot.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT = re.compile(r"^RESULT (\w+)=(\S+)\s*$")
QUICK_TIMEOUT_S = 300
FULL_TIMEOUT_S = 3600
# Where a benchmark writes its plots: set by this runner, else benchmarks/results.
RESULTS_ENV = "BENCH_RESULTS_DIR"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def benchmarks(root: Path = HERE) -> list[Path]:
    """Every benchmark script, by name: the runnable ones (a module that only serves
    another, like `drain_rest.py` for `drain.py`, has no `__main__` block)."""
    return sorted(
        p
        for p in root.glob("*.py")
        if not p.name.startswith("_") and 'if __name__ == "__main__":' in p.read_text()
    )


@dataclass
class Outcome:
    script: Path
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, str] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.script.stem


def run(script: Path, *, quick: bool, results_dir: Path) -> Outcome:
    """Run one benchmark to its end (bounded) and collect its RESULT lines and new plots."""
    began, wall = time.monotonic(), time.time()
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    # Its own process group: on a timeout, the servers and Spark it started go with it.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, RESULTS_ENV: str(results_dir)}, start_new_session=True,
    )  # fmt: skip
    timeout_s = QUICK_TIMEOUT_S if quick else FULL_TIMEOUT_S
    try:
        out, err = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        out, err = proc.communicate()
        code, err = -1, err + f"\n(timed out after {timeout_s:g} s)"
    outcome = Outcome(script, time.monotonic() - began, code, out, err)
    for line in out.splitlines():
        match = RESULT.match(line)
        if match:
            outcome.results[match.group(1)] = match.group(2)
    outcome.plots = sorted(p for p in results_dir.glob("*.png") if p.stat().st_mtime >= wall - 1)
    return outcome


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the benchmark's process group, SIGKILL what is left after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def fsync_ms(directory: Path, rounds: int = 50) -> tuple[float, float]:
    """Median and max time of a 4 KiB write + fsync in `directory` (what each spool commit pays)."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".fsync-") as handle:
        for _ in range(rounds):
            began = time.perf_counter()
            os.write(handle.fileno(), b"x" * 4096)
            os.fsync(handle.fileno())
            samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), max(samples)


def machine(results_dir: Path) -> list[tuple[str, str]]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{kib / 1024**2:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "?"
    try:
        import pyspark

        spark = pyspark.__version__
    except ImportError:
        spark = "not installed"
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30,
                              check=False).stderr.splitlines()[0]  # fmt: skip
    except (OSError, IndexError, subprocess.TimeoutExpired):
        java = "not found"
    median, worst = fsync_ms(results_dir)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [
        ("cores", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("Spark (pyspark)", spark),
        ("Java", java),
        ("fsync of 4 KiB", f"{median:.2f} ms median, {worst:.2f} ms max (results disk)"),
        ("load average at start", " / ".join(f"{x:.2f}" for x in load)),
        ("wrk", "installed" if _which("wrk") else "not installed (aiohttp client instead)"),
    ]


def _which(tool: str) -> bool:
    return any((Path(p) / tool).is_file() for p in os.environ.get("PATH", "").split(os.pathsep))


def _commit() -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=REPO, timeout=10, check=False)  # fmt: skip
        return proc.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def headline(outcomes: list[Outcome]) -> str:
    lines = ["| benchmark | result | value |", "|---|---|---|"]
    for outcome in outcomes:
        if outcome.returncode != 0:
            lines.append(f"| {outcome.name} | (failed, exit {outcome.returncode}) | |")
        for name, value in outcome.results.items():
            lines.append(f"| {outcome.name} | `{name}` | {value} |")
    return "\n".join(lines)


def report(outcomes: list[Outcome], facts: list[tuple[str, str]], quick: bool) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (--quick: indicative only)" if quick else "full"
    parts = [
        "# lineage-relay benchmarks",
        "",
        f"{now}, {mode} mode, commit {_commit() or '?'}; `make bench` writes this file.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts),
        "",
        "## Results",
        "",
        headline(outcomes),
        "",
    ]
    for outcome in outcomes:
        command = f"python benchmarks/{outcome.script.name}" + (" --quick" if quick else "")
        parts += [
            f"## {outcome.name}",
            "",
            f"`{command}` ({outcome.seconds:.0f} s, exit {outcome.returncode})",
            "",
            outcome.stdout.strip(),
            "",
        ]
        if outcome.returncode != 0:
            parts += ["```text", outcome.stderr.strip()[-3000:], "```", ""]
        parts += [f"![{p.stem}]({p.name})" for p in outcome.plots]
        if outcome.plots:
            parts.append("")
    return "\n".join(parts)


def update_readme(readme: Path, outcomes: list[Outcome], quick: bool) -> bool:
    """Put the headline table and the outage plot between the README's bench markers."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    body = [
        README_START,
        f"Latest `make bench` ({day}{', quick mode' if quick else ''}; the machine and every "
        "table in [benchmarks/results/REPORT.md](benchmarks/results/REPORT.md)):",
        "",
        headline(outcomes),
        "",
    ]
    if any(p.name == "outage.png" for o in outcomes for p in o.plots):
        body += ["![The relay through an OpenMetadata outage](benchmarks/results/outage.png)", ""]
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + "\n".join(body) + README_END + tail)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark with --quick")
    parser.add_argument(
        "--only", nargs="+", action="extend", default=[], metavar="NAME",
        help="benchmark names (file stems); repeat or list several",
    )  # fmt: skip
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    every = benchmarks()
    known = [s.stem for s in every]
    if unknown := sorted(set(args.only) - set(known)):
        parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(known)}")
    scripts = [s for s in every if not args.only or s.stem in args.only]
    facts = machine(args.results)
    outcomes = []
    for script in scripts:
        print(f"== {script.name} {'--quick' if args.quick else ''}", flush=True)
        outcome = run(script, quick=args.quick, results_dir=args.results)
        print(outcome.stdout, flush=True)
        if outcome.returncode != 0:
            print(outcome.stderr[-3000:], file=sys.stderr)
        outcomes.append(outcome)
    path = args.results / "REPORT.md"
    path.write_text(report(outcomes, facts, args.quick))
    print(f"wrote {path}")
    if not args.no_readme and not args.only and update_readme(REPO / "README.md", outcomes,
                                                               args.quick):  # fmt: skip
        print("updated the performance section of README.md")
    failed = [o.name for o in outcomes if o.returncode != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
