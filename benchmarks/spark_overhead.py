"""What lineage costs a PySpark job, with OpenMetadata healthy, slow or dead, and the relay dead.

    python benchmarks/spark_overhead.py [--quick] [--reps N]

This process starts the mock OpenMetadata and the relay (each its own process, 127.0.0.1);
Spark runs in a child process (one local[2] session, in-memory catalog). The child runs
blocks of the same job, many small actions (write a parquet file, read it back and aggregate,
write a catalog table, read it back and filter), under six cases:

  (a) no lineage;
  (b) spark_plugin -> relay -> mock OpenMetadata, healthy;
  (c) the same with the mock at 2 s per call;
  (d) the same with the mock down (connections refused);
  (e) spark_plugin with the relay itself down (nothing listens at its port);
  (f) for contrast, a synchronous baseline as the legacy agent works: a listener that posts
      each action's event straight to the mock (2 s per call) before returning.

The cases are interleaved, a b c d e f, b c d e a f, c d e a b f, ... (rotated, so no case is
always first), so drift on a shared machine hits all alike; (f) runs in every repetition in
full mode, once with --quick (it is the slow one). A
block is timed from its first action until Spark's listener bus is empty (what `spark.stop()`
waits for); enabling and closing the plugin are outside. Each ratio is the median over the
repetitions of the case's time divided by (a)'s in the same repetition.

Then, as before: the listener's own cost on a ~30-node plan, and `spark.stop()` with a relay
that hangs and with nothing listening. Finally the mock is healthy again, the relay drains,
and every event the plugin got acknowledged in (b)-(d) is looked for at the mock (the relay
uses the `openlineage` sink: the mock's native endpoint records every event it receives).

RESULT spark_ratio_healthy / _slow_om / _om_down / _relay_down   (b)..(e) over (a); goal <= 1.03
RESULT spark_ratio_sync_baseline_slow                            (f) over (a)
RESULT spark_events_lost           events of (b)-(d) acknowledged but not at the mock (must be 0)
RESULT listener_ms_per_query       listener callback time per ~30-node query (goal <= 5 ms)
RESULT spark_stop_s_hanging_relay / spark_stop_s_closed_port   (goal <= flush timeout + 1 s)
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from relay.testing.processes import MockProcess, RelayProcess, exit_on_sigterm
from relay.testing.spark import local_session

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"  # noqa: S105 -- what the mock accepts, not a secret
SLOW_MS = 2000
CASES = {
    "a": "no lineage",
    "b": "plugin, relay, OpenMetadata healthy",
    "c": f"plugin, relay, OpenMetadata {SLOW_MS / 1000:g} s per call",
    "d": "plugin, relay, OpenMetadata down",
    "e": "plugin, relay down",
    "f": f"synchronous baseline, OpenMetadata {SLOW_MS / 1000:g} s per call",
}
FAULTS: dict[str, dict[str, Any] | None] = {
    "b": None,
    "c": {"mode": "slow", "latency_ms": SLOW_MS},
    "d": {"mode": "down"},
    "f": {"mode": "slow", "latency_ms": SLOW_MS},
}
RESULT_NAMES = {"b": "healthy", "c": "slow_om", "d": "om_down", "e": "relay_down"}


# -- child: runs Spark ---------------------------------------------------------------------


class _Hang(BaseHTTPRequestHandler):
    """A receiver that reads the request and never answers (until the benchmark ends)."""

    protocol_version = "HTTP/1.1"
    released = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).released.wait(120)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _SyncBaseline:
    """A QueryExecutionListener posting one event per action to OpenMetadata before returning."""

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.util.QueryExecutionListener"]

    def __init__(self, url: str) -> None:
        self.url = url
        self.posted = 0

    def _post(self, func: str, state: str) -> None:
        event = {
            "eventType": state, "eventTime": "2026-12-01T00:00:00Z",
            "producer": "https://example.invalid/legacy-agent",
            "run": {"runId": "01935f3e-0000-7000-8000-000000000000"},
            "job": {"namespace": "bench_f", "name": f"sync_baseline.{func}"},
            "inputs": [], "outputs": [],
        }  # fmt: skip
        request = urllib.request.Request(  # noqa: S310 -- loopback
            self.url, data=json.dumps(event).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                resp.read()
        except OSError:
            pass  # the legacy agent logs and goes on
        self.posted += 1

    def onSuccess(self, func: str, qe: Any, duration_ns: int) -> None:
        self._post(func, "COMPLETE")

    def onFailure(self, func: str, qe: Any, error: Any) -> None:
        self._post(func, "FAIL")


def _session(warehouse: Path) -> Any:
    """local[2], in-memory catalog (no Hive: `base` is not given)."""
    return local_session(
        "spark overhead benchmark",
        conf={
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.warehouse.dir": str(warehouse),
            # where spark_plugin spills what a dead relay could not take (not the shared temp dir)
            "spark.lineageRelay.spill.dir": str(warehouse.parent / "spill"),
        },
    )


def _job(spark: Any, out: Path, case: str, units: int) -> None:
    """`units` x 4 small actions on local files and catalog tables."""
    for n in range(units):
        path = str(out / f"file_{case}")
        spark.range(20_000).selectExpr("id", "id % 17 AS k", f"id * {n + 1} AS v").write.mode(
            "overwrite"
        ).parquet(path)
        spark.read.parquet(path).groupBy("k").sum("v").collect()
        spark.range(5_000).selectExpr("id", "id % 5 AS k").write.mode("overwrite").saveAsTable(
            f"bench_{case}"
        )
        spark.table(f"bench_{case}").where("k = 1").count()


def _control(control_url: str, fault: dict[str, Any] | None) -> None:
    body = None if fault is None else json.dumps(fault).encode()
    request = urllib.request.Request(  # noqa: S310 -- loopback
        control_url + "/mock/faults", data=body, method="DELETE" if fault is None else "PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        resp.read()


def _block(
    spark: Any, out: Path, case: str, units: int, args: argparse.Namespace
) -> dict[str, Any]:
    from spark_plugin import enable

    if case in FAULTS:
        _control(args.control_url, FAULTS[case])
    handle, baseline, proxy = None, None, None
    if case in "bcd":
        handle = enable(spark, url=args.relay_url, namespace=f"bench_{case}")
    elif case == "e":
        handle = enable(spark, url=args.closed_url, namespace="bench_e")
    elif case == "f":
        baseline = _SyncBaseline(args.om_url + "/v1/openlineage/lineage")
        # py4j makes a new JVM proxy each time a Python object crosses, and unregister needs
        # the one registered: take it back from a JVM list and use that for both calls.
        holder = spark.sparkContext._jvm.java.util.ArrayList()
        holder.add(baseline)
        proxy = holder.get(0)
        spark._jsparkSession.listenerManager().register(proxy)
    bus = spark.sparkContext._jsc.sc().listenerBus()
    began = time.perf_counter()
    _job(spark, out, case, units)
    bus.waitUntilEmpty(600_000)
    elapsed = time.perf_counter() - began
    result: dict[str, Any] = {"s": elapsed}
    if handle is not None:
        closing = time.perf_counter()
        handle.close(30)
        result.update(close_s=time.perf_counter() - closing, **handle.stats())
    if baseline is not None:
        spark._jsparkSession.listenerManager().unregister(proxy)
        result["posted"] = baseline.posted
    return result


def _wide_query(spark: Any, src: Path) -> Any:
    """A ~30-node analyzed plan reading three parquet sources."""
    people = spark.read.parquet(str(src / "people"))
    depts = spark.read.parquet(str(src / "depts"))
    sales = spark.read.parquet(str(src / "sales"))
    joined = (
        sales.join(people, "pid").join(depts, "did").where("amount > 10")
        .selectExpr("dept", "name", "amount * 1.1 AS gross", "upper(region) AS region")
    )  # fmt: skip
    totals = joined.groupBy("dept", "region").agg({"gross": "sum", "name": "count"})
    totals = totals.withColumnRenamed("sum(gross)", "total").withColumnRenamed("count(name)", "n")
    others = people.join(depts, "did").selectExpr(
        "dept", "upper(region) AS region", "CAST(age AS DOUBLE) AS total", "1L AS n"
    )
    seniors = (
        people.where("age > 60")
        .join(depts, "did")
        .selectExpr(
            "dept", "lower(region) AS region", "CAST(age * 2 AS DOUBLE) AS total", "2L AS n"
        )
    )
    union = totals.unionByName(others).unionByName(seniors)
    return union.where("total > 0").orderBy("dept").limit(1000)


def _listener_cost(spark: Any, tmp: Path, queries: int, url: str) -> dict[str, Any]:
    from spark_plugin import enable

    src, out = tmp / "src", str(tmp / "wide")
    spark.range(2000).selectExpr(
        "id AS pid", "CAST(id % 20 AS INT) AS did", "concat('p', id) AS name", "id % 70 AS age"
    ).write.mode("overwrite").parquet(str(src / "people"))
    spark.range(20).selectExpr(
        "CAST(id AS INT) AS did", "concat('d', id) AS dept", "concat('r', id % 3) AS region"
    ).write.mode("overwrite").parquet(str(src / "depts"))
    spark.range(20000).selectExpr("id AS sid", "id % 2000 AS pid", "id % 100 AS amount").write.mode(
        "overwrite"
    ).parquet(str(src / "sales"))
    query = _wide_query(spark, src)
    nodes = len(str(query._jdf.queryExecution().analyzed().treeString()).strip().splitlines())
    handle = enable(spark, url=url, namespace="bench_listener")
    query.write.mode("overwrite").parquet(out)  # warm the walker's caches
    assert handle.flush(30)
    base_s, base_runs = handle.stats()["listener_s"], handle.stats()["runs"]
    for _ in range(queries):
        query.write.mode("overwrite").parquet(out)
    assert handle.flush(60)
    stats = handle.stats()
    handle.close(30)
    runs = stats["runs"] - base_runs
    return {
        "plan_nodes": nodes,
        "queries": runs,
        "listener_ms_per_query": 1000 * (stats["listener_s"] - base_s) / max(1, runs),
    }


def _timed_stop(spark: Any, out: Path, url: str, tag: str) -> dict[str, Any]:
    """Enable the plugin towards `url`, run a few actions, time `spark.stop()`."""
    from spark_plugin import enable

    handle = enable(spark, url=url, namespace="bench_stop")
    _job(spark, out, tag, 1)
    began = time.perf_counter()
    spark.stop()
    stop_s = time.perf_counter() - began
    return {"stop_s": stop_s, "flush_timeout_s": handle.config.flush_timeout_s, **handle.stats()}


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="spark_overhead_") as name:
        tmp = Path(name)
        spark = _session(tmp / "warehouse")
        out = tmp / "out"
        blocks: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
        for case in "ab":  # warm-up (JIT, the plugin's first enable compiles its helper), untimed
            blocks[case].append({**_block(spark, out, case, 1, args), "warmup": True})
        for rep in range(args.reps):
            # a b c d e, then b c d e a, ...: no case always runs first in its repetition
            order = "abcde"[rep % 5 :] + "abcde"[: rep % 5]
            for case in order + ("" if rep % args.f_every else "f"):
                blocks[case].append(_block(spark, out, case, args.units, args))
        _control(args.control_url, None)
        result = {
            "blocks": blocks,
            "listener": _listener_cost(spark, tmp, args.queries, args.relay_url),
            "stop_hanging": _timed_stop(spark, out, args.hang_url, "stop_hanging"),
        }
        spark = _session(tmp / "warehouse")
        result["stop_closed_port"] = _timed_stop(spark, out, args.closed_url, "stop_closed")
    print("RESULT_JSON " + json.dumps(result), flush=True)


# -- parent: orchestrates and reports --------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _ratios(blocks: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Per case, the median over repetitions of its time over (a)'s in the same repetition."""
    base = [b["s"] for b in blocks["a"] if not b.get("warmup")]
    ratios: dict[str, float] = {}
    for case, items in blocks.items():
        timed = [b["s"] for b in items if not b.get("warmup")]
        ratios[case] = statistics.median(t / a for t, a in zip(timed, base, strict=False))
    return ratios


def _events_lost(mock: MockProcess, relay: RelayProcess, blocks: dict[str, Any]) -> tuple[int, int]:
    """(acknowledged in b-d, of those not at the mock) once the relay drained to the mock."""
    deadline = time.monotonic() + 90
    while relay.metrics().get("lineage_relay_spool_events", 0) and time.monotonic() < deadline:
        time.sleep(0.5)
    acked = sum(b.get("emitted", 0) for case in "bcd" for b in blocks[case])
    seen = {
        (e["run"]["runId"], e.get("eventType"), e.get("eventTime"))
        for e in mock.control("/mock/openlineage-events")
        if (e.get("job") or {}).get("namespace") in ("bench_b", "bench_c", "bench_d")
    }
    return acked, max(0, acked - len(seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions (< 60 s)")
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 10; quick 3)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("relay-url", "control-url", "om-url", "closed-url", "hang-url"):
        parser.add_argument(f"--{hidden}", default="", help=argparse.SUPPRESS)
    for hidden in ("units", "queries", "f-every"):
        parser.add_argument(f"--{hidden}", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    reps = args.reps or (3 if args.quick else 10)
    exit_on_sigterm()
    units, queries, f_every = (1, 3, reps) if args.quick else (3, 40, 1)
    hanging = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    hanging.daemon_threads = True
    threading.Thread(target=hanging.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
                     ).start()  # fmt: skip
    env = {
        # the native endpoint keeps every event it receives: what the lost count checks
        "LINEAGE_RELAY_OPENMETADATA_SINK": "openlineage",
        "LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN_ENV": "BENCH_OPENMETADATA_TOKEN",
        "BENCH_OPENMETADATA_TOKEN": TOKEN,
        "LINEAGE_RELAY_BREAKER_RECOVERY_TIMEOUT_S": "2",
        "LINEAGE_RELAY_BREAKER_MAX_RECOVERY_TIMEOUT_S": "4",
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-spark-overhead-") as tmp:
        work = Path(tmp)
        with MockProcess(work, token=TOKEN) as mock:
            env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = mock.url
            with RelayProcess(work, work / "spool", env=env) as relay:
                command = [
                    sys.executable, __file__, "--child", f"--reps={reps}", f"--units={units}",
                    f"--queries={queries}", f"--f-every={f_every}", f"--relay-url={relay.url}",
                    f"--control-url={mock.control_url}", f"--om-url={mock.url}",
                    f"--closed-url={_closed_port_url()}",
                    f"--hang-url=http://127.0.0.1:{hanging.server_address[1]}",
                ]  # fmt: skip
                try:
                    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                                          check=False, cwd=REPO)  # fmt: skip
                finally:
                    _Hang.released.set()
                    hanging.shutdown()
                    hanging.server_close()
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT_JSON ")),
                            None)  # fmt: skip
                if proc.returncode != 0 or line is None:
                    sys.stderr.write(proc.stderr[-4000:])
                    raise SystemExit(f"benchmark child failed (exit {proc.returncode})")
                result = json.loads(line[len("RESULT_JSON ") :])
                blocks = result["blocks"]
                mock.clear_faults()
                acked, lost = _events_lost(mock, relay, blocks)
    ratios = _ratios(blocks)
    mode = "quick" if args.quick else "full"
    print(f"spark_overhead ({mode}): {reps} repetitions of {4 * units} actions per case, "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    print()
    print("| case | lineage | blocks s | median s | ratio to (a) | plugin dropped |")
    print("|---|---|---|---|---|---|")
    for case, label in CASES.items():
        timed = [b for b in blocks[case] if not b.get("warmup")]
        dropped = sum(b.get("dropped", 0) for b in blocks[case]) if case in "bcde" else "-"
        median_s = statistics.median(b["s"] for b in timed)
        each = " ".join(f"{b['s']:.2f}" for b in timed)
        print(f"| ({case}) | {label} | {each} | {median_s:.2f} | {ratios[case]:.3f} | "
              f"{dropped} |")  # fmt: skip
    print()
    close_s = max(b.get("close_s", 0.0) for case in "bcde" for b in blocks[case])
    print(
        f"longest plugin close (flush) after a block: {close_s:.3f} s; events of (b)-(d) "
        f"acknowledged by the relay: {acked}, not found at the mock after the drain: {lost}"
    )
    lc = result["listener"]
    print(
        f"listener: {lc['queries']} queries of a {lc['plan_nodes']}-node analyzed plan, "
        f"{lc['listener_ms_per_query']:.2f} ms inside the callbacks per query (walk included)"
    )
    for name, key in (("hanging relay", "stop_hanging"), ("closed port", "stop_closed_port")):
        r = result[key]
        print(f"spark.stop() with a {name}: {r['stop_s']:.2f} s (flush timeout "
              f"{r['flush_timeout_s']:.1f} s); {r['submitted']} events, {r['emitted']} emitted, "
              f"{r['dropped']} dropped, {r.get('spilled', 0)} spilled")  # fmt: skip
    print()
    for case, name in RESULT_NAMES.items():
        print(f"RESULT spark_ratio_{name}={ratios[case]:.3f}")
    print(f"RESULT spark_ratio_sync_baseline_slow={ratios['f']:.3f}")
    print(f"RESULT spark_events_lost={lost}")
    print(f"RESULT listener_ms_per_query={lc['listener_ms_per_query']:.2f}")
    for name, key in (("hanging_relay", "stop_hanging"), ("closed_port", "stop_closed_port")):
        print(f"RESULT spark_stop_s_{name}={result[key]['stop_s']:.2f}")


if __name__ == "__main__":
    main()
