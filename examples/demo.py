"""The lineage-relay demo (`make demo`): Spark -> spark_plugin -> relay -> OpenMetadata.

Everything runs on this machine, on free loopback ports, in a temp dir removed at the end:

1. starts the mock OpenMetadata with a small catalog (`demo_catalog.json`: the tables and
   files of the job) and the relay (`demo_relay.toml`), spool in the temp dir;
2. runs a PySpark ETL with `spark_plugin` enabled (`demo_etl.py`, in its own process): it
   reads a CSV and a JSON file, joins, aggregates, writes a catalog table and a file, and one
   action fails on purpose; then reads back through OpenMetadata's API what arrived: the
   lineage (tables, files, edges, column pairs), the pipeline, its tasks and run status;
3. takes OpenMetadata down and runs the job again: its wall time next to the first run's,
   the relay's backlog and breaker (`/health`, `/metrics`) while OpenMetadata is away, then
   OpenMetadata back and the backlog draining to 0;
4. prints the relay's counters and stops everything. Exit status 0 when every step checked out.

    python examples/demo.py [--sink rest|openlineage]

`--sink` overrides `openmetadata.sink` of `demo_relay.toml` (the only difference between the
two: "openlineage" uses OpenMetadata's native OpenLineage endpoint, "rest" the REST API).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from demo_show import (
    RelaySample,
    edge_count,
    lineage_graph,
    print_counters,
    print_lineage,
    print_native_runs,
    print_pipelines,
    print_sample,
    sample,
)

from relay.testing.processes import MockProcess, RelayProcess, exit_on_sigterm

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "demo_relay.toml"
CATALOG = HERE / "demo_catalog.json"
ETL = HERE / "demo_etl.py"
TOKEN = "demo-bot-token"  # noqa: S105 -- the mock's throwaway token
ETL_TIMEOUT_S = 300.0


def render_catalog(data: Path, target: Path) -> Path:
    """The shipped catalog with the files' real location filled in."""
    text = string.Template(CATALOG.read_text()).substitute(data=str(data))
    target.write_text(text)
    return target


def run_etl(
    data: Path, relay_url: str, log_dir: Path, number: int, watch: Callable[[], object] | None
) -> dict[str, Any]:
    """Run `demo_etl.py` in a child process; `watch` is called every ~0.5 s meanwhile."""
    out, err = log_dir / f"etl-{number}.out", log_dir / f"etl-{number}.log"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(ETL), "--data", str(data), "--relay", relay_url],
            stdout=stdout, stderr=stderr, cwd=HERE.parent,
        )  # fmt: skip
        deadline = time.monotonic() + ETL_TIMEOUT_S
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Spark job ran over {ETL_TIMEOUT_S:g} s")
                if watch is not None:
                    watch()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.5)
        finally:
            if proc.poll() is None:  # interrupted: the job goes too
                proc.kill()
                proc.wait()
    lines = [x for x in out.read_text().splitlines() if x.startswith("ETL_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"the Spark job exited with {proc.returncode}:\n{err.read_text()[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len("ETL_RESULT ") :])
    for action in result["actions"]:
        outcome = "ok" if action["outcome"] == "ok" else f"FAILED: {action['outcome']}"
        print(f"   {action['action']:<40} {outcome}")
    print(f"   job wall time {result['wall_s']:.1f} s; spark_plugin: {result['emitted']} events "
          f"sent to the relay, {result['dropped']} dropped")  # fmt: skip
    return result


class Watcher:
    """Samples the relay and prints a line whenever backlog, breaker or delivery changed."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.since = time.monotonic()
        self.last: RelaySample | None = None

    def __call__(self) -> RelaySample:
        now = sample(self.relay, self.since)
        last = self.last
        if last is None or (now.backlog, now.breaker, now.delivered) != (
            last.backlog, last.breaker, last.delivered,
        ):  # fmt: skip
            print_sample(now)
        self.last = now
        return now

    def until(self, done: Callable[[RelaySample], bool], timeout_s: float) -> RelaySample:
        deadline = time.monotonic() + timeout_s
        while True:
            now = self()
            if done(now) or time.monotonic() > deadline:
                return now
            time.sleep(0.25)


def show_openmetadata(
    mock: MockProcess, sink: str, app_runs: list[str], *, lineage: bool = True
) -> tuple[int, int]:
    """Lineage, pipelines and run statuses as OpenMetadata has them: (edges, run statuses)."""
    nodes = lineage_graph(mock)
    if lineage:
        print("   Lineage (GET /api/v1/lineage/{table|container}/name/{fqn}):")
        print_lineage(nodes)
        print()
    print("   Pipelines, tasks and run status (GET /api/v1/pipelines, .../status):")
    statuses = print_pipelines(mock)
    if sink == "openlineage":
        print("   (the native OpenLineage endpoint writes no tasks and no run status;")
        print("    what it received of each run, from the mock's record:)")
        print_native_runs(mock, app_runs)
    return edge_count(nodes), statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sink", choices=["rest", "openlineage"], help="openmetadata.sink")
    args = parser.parse_args(argv)
    problems: list[str] = []
    exit_on_sigterm()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lineage-relay-demo-") as tmp:
        work = Path(tmp)
        data, logs = work / "data", work / "logs"
        data.mkdir()
        logs.mkdir()
        env = {"LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN": "", "DEMO_OPENMETADATA_TOKEN": TOKEN}
        mock = MockProcess(logs, catalog=render_catalog(data, work / "catalog.json"), token=TOKEN)
        with contextlib.ExitStack() as stack:
            print("1. Start OpenMetadata (the mock) and the relay")
            stack.enter_context(mock)
            env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = mock.url
            if args.sink:
                env["LINEAGE_RELAY_OPENMETADATA_SINK"] = args.sink
            relay = RelayProcess(logs, work / "spool", config=CONFIG, env=env)
            stack.enter_context(relay)
            _, health = relay.health()
            sink = str(health["components"]["openmetadata"].get("sink", args.sink))
            print(f"   OpenMetadata  {mock.url}  (catalog: {CATALOG.name}, control API "
                  f"{mock.control_url})")  # fmt: skip
            print(f"   relay         {relay.url}  (config: {CONFIG.name}, sink = {sink!r}, "
                  f"spool in {work / 'spool'})")  # fmt: skip
            print()

            print("2. Run the Spark job (PySpark, spark_plugin.enable(spark, url=<relay>))")
            first = run_etl(data, relay.url, logs, 1, None)
            since = time.monotonic()
            while sample(relay, since).backlog and time.monotonic() - since < 60:
                time.sleep(0.25)
            backlog = sample(relay, since).backlog
            print(f"   the relay's backlog: {backlog} events (all delivered or refused)")
            if backlog:
                problems.append(f"{backlog} events of the first run were not delivered")
            print()

            print("3. What OpenMetadata shows, read back through its API")
            edges, _ = show_openmetadata(mock, sink, [first["app_run_id"]])
            if edges == 0:
                problems.append("no lineage edge reached OpenMetadata")
            print()

            print("4. OpenMetadata goes down; the same job runs again")
            mock.set_faults({"mode": "down"})
            print('   PUT /mock/faults {"mode": "down"}: OpenMetadata refuses connections')
            print("   the relay while the job runs (GET /health, GET /metrics):")
            watcher = Watcher(relay)
            second = run_etl(data, relay.url, logs, 2, watcher)
            opened = watcher.until(lambda s: s.breaker == "open", 30)
            if opened.breaker != "open" or opened.backlog == 0:
                problems.append("the outage showed no backlog or no open breaker")
            ratio = second["wall_s"] / first["wall_s"]
            print()
            print("   | run | OpenMetadata | job wall time |")
            print("   |-----|--------------|---------------|")
            print(f"   | 1   | healthy      | {first['wall_s']:>11.1f} s |")
            print(f"   | 2   | down         | {second['wall_s']:>11.1f} s |  ({ratio:.2f}x)")
            print(
                f"   {opened.backlog} events wait in the relay's spool; the job never waits for "
                "OpenMetadata (the relay acknowledges from its disk)."
            )
            print(
                "   (one run each, so load on the machine shows in the times: "
                "benchmarks/spark_overhead.py measures the difference)"
            )
            print()
            mock.clear_faults()
            print("   DELETE /mock/faults: OpenMetadata is back")
            watcher = Watcher(relay)
            drained = watcher.until(lambda s: s.backlog == 0, 90)
            if drained.backlog != 0:
                problems.append(f"the backlog did not drain: {drained.backlog} events left")
            else:
                print(f"   backlog drained to 0 in {drained.at_s:.1f} s")
            print()
            print("   The second run, as OpenMetadata has it now:")
            _, statuses_now = show_openmetadata(
                mock, sink, [first["app_run_id"], second["app_run_id"]], lineage=False
            )
            if sink == "rest" and statuses_now < 2:
                problems.append(f"{statuses_now} run statuses in OpenMetadata, expected 2")
            print()

            print("5. The relay's counters (GET /metrics)")
            counters = print_counters(relay.metrics())
            emitted = first["emitted"] + second["emitted"]
            if counters["received"] != emitted:
                problems.append(f"the relay received {counters['received']:g} of {emitted}")
            if counters["delivered"] + counters["dead letters"] != emitted:
                problems.append(f"OpenMetadata answered for {counters['delivered']:g} of {emitted}")
            if first["dropped"] or second["dropped"]:
                problems.append("spark_plugin dropped events")
            print()

            print("6. Stop everything (SIGTERM)")
            relay_code, mock_code = relay.stop(), mock.stop()
            print(f"   relay exit status {relay_code}, mock exit status {mock_code}")
            if relay_code or mock_code:
                problems.append("a server did not stop cleanly")
                for log in sorted(logs.glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text()[-2000:]}")
    print()
    if problems:
        print("demo FAILED: " + "; ".join(problems))
        return 1
    print(f"Demo done in {time.monotonic() - began:.0f} s: every event the job sent reached "
          "OpenMetadata, also those sent while it was down.")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
