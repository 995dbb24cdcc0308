"""What the spark_plugin costs a PySpark job: wall time with and without lineage, listener cost.

    python benchmarks/spark_overhead.py [--quick]

Spark runs in a child process (one local[2] session); this process prints the table and the
RESULT lines. Each timed phase alternates blocks of actions "no lineage" and "plugin posting to a
local receiver" in pairs (AB, BA, AB, ...), so drift on a shared machine hits both alike:

- healthy: actions that each aggregate 1M rows and write parquet (50 with the plugin and 50
  without, blocks of 5; --quick: 6 and 6, blocks of 1);
- tiny: actions writing 100 rows (100 and 100; --quick: 20 and 20);
- listener: a ~30-node plan (3 parquet sources, 3 joins, aggregate, 2 unions, filters, sort,
  limit, written to parquet) repeated; the time spent inside our listener callbacks (plan walk
  included) divided by the runs reported;
- stop: `spark.stop()` of a session whose plugin posts to a receiver that hangs (accepts the
  connection, never answers), then of a new session whose plugin posts to a closed port, each
  after a few actions, with the default flush timeout (2 s): what a dead relay adds to stop.

The receiver runs in this (parent) process, as the relay would run in its own: it does not
compete with the driver's Python for the GIL.

RESULT spark_ratio_healthy       plugin / no-lineage wall time, healthy actions (goal <= 1.03)
RESULT spark_ratio_tiny_actions  the same for tiny actions
RESULT listener_ms_per_query     listener callback time per ~30-node query (goal <= 5 ms)
RESULT spark_stop_s_hanging_relay  spark.stop() with the relay hanging (goal <= flush timeout + 1 s)
RESULT spark_stop_s_closed_port    spark.stop() with nothing listening (same goal)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


# -- child: runs Spark ---------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    """A local OpenLineage receiver that accepts everything (201)."""

    protocol_version = "HTTP/1.1"
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received += 1
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


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


def _session() -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("spark overhead benchmark")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _healthy_action(spark: Any, out: Path, n: int) -> None:
    spark.range(1_000_000).selectExpr("id", "id % 97 AS k", f"id * {n + 1} AS v").groupBy("k").sum(
        "v"
    ).write.mode("overwrite").parquet(str(out / "healthy"))


def _tiny_action(spark: Any, out: Path, n: int) -> None:
    spark.range(100).selectExpr("id", f"id + {n} AS v").write.mode("overwrite").parquet(
        str(out / "tiny")
    )


def _wide_query(spark: Any, src: Path) -> Any:
    """A ~30-node analyzed plan reading three parquet sources."""
    people = spark.read.parquet(str(src / "people"))
    depts = spark.read.parquet(str(src / "depts"))
    sales = spark.read.parquet(str(src / "sales"))
    joined = (
        sales.join(people, "pid")
        .join(depts, "did")
        .where("amount > 10")
        .selectExpr("dept", "name", "amount * 1.1 AS gross", "upper(region) AS region")
    )
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
    return (
        totals.unionByName(others)
        .unionByName(seniors)
        .where("total > 0")
        .orderBy("dept")
        .limit(1000)
    )


def _prepare_sources(spark: Any, src: Path) -> None:
    spark.range(2000).selectExpr(
        "id AS pid", "CAST(id % 20 AS INT) AS did", "concat('p', id) AS name", "id % 70 AS age"
    ).write.mode("overwrite").parquet(str(src / "people"))
    spark.range(20).selectExpr(
        "CAST(id AS INT) AS did", "concat('d', id) AS dept", "concat('r', id % 3) AS region"
    ).write.mode("overwrite").parquet(str(src / "depts"))
    spark.range(20000).selectExpr("id AS sid", "id % 2000 AS pid", "id % 100 AS amount").write.mode(
        "overwrite"
    ).parquet(str(src / "sales"))


def _timed_pairs(
    spark: Any, action: Any, out: Path, per_block: int, pairs: int, url: str
) -> dict[str, Any]:
    """`pairs` pairs of blocks of `per_block` actions, "no lineage" and "plugin" alternating
    AB, BA, AB, ... so that drift on a shared machine hits both alike. Enabling and closing the
    plugin (its flush) happen between blocks, outside the timed part."""
    from spark_plugin import enable

    for n in range(2 * per_block + 2):  # this workload's own warm-up (JIT, caches), untimed
        action(spark, out, n)
    totals = {"none": 0.0, "plugin": 0.0}
    pair_ratios: list[float] = []
    close_s: list[float] = []
    stats: dict[str, Any] = {}
    for pair in range(pairs):
        block: dict[str, float] = {}
        for mode in ("none", "plugin") if pair % 2 == 0 else ("plugin", "none"):
            handle = enable(spark, url=url) if mode == "plugin" else None
            began = time.perf_counter()
            for n in range(per_block):
                action(spark, out, n)
            block[mode] = time.perf_counter() - began
            # the same untimed settling after every block: Spark's listener queues drained
            spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(60_000)
            if handle is not None:
                closing = time.perf_counter()
                handle.close(30)
                close_s.append(time.perf_counter() - closing)
                stats = handle.stats()
        totals["none"] += block["none"]
        totals["plugin"] += block["plugin"]
        pair_ratios.append(block["plugin"] / block["none"])
    return {
        "actions": per_block * pairs,
        "none_s": totals["none"],
        "plugin_s": totals["plugin"],
        "ratio": totals["plugin"] / totals["none"],
        "median_pair_ratio": statistics.median(pair_ratios),
        "close_s": max(close_s) if close_s else 0.0,
        "last_stats": stats,
    }


def _listener_cost(spark: Any, src: Path, out: Path, queries: int, url: str) -> dict[str, Any]:
    from spark_plugin import enable

    query = _wide_query(spark, src)
    nodes = len(str(query._jdf.queryExecution().analyzed().treeString()).strip().splitlines())
    query.write.mode("overwrite").parquet(str(out / "wide"))  # warm-up, no lineage
    handle = enable(spark, url=url)
    handle.close(30)  # first enable compiles the JVM helper: keep it out of the measure
    handle = enable(spark, url=url)
    query.write.mode("overwrite").parquet(str(out / "wide"))  # warm the walker's caches
    assert handle.flush(30)
    base_s, base_runs = handle.stats()["listener_s"], handle.stats()["runs"]
    for _ in range(queries):
        query.write.mode("overwrite").parquet(str(out / "wide"))
    assert handle.flush(60)
    stats = handle.stats()
    handle.close(30)
    runs = stats["runs"] - base_runs
    return {
        "plan_nodes": nodes,
        "queries": runs,
        "listener_ms_per_query": 1000 * (stats["listener_s"] - base_s) / max(1, runs),
        "emitted": stats["emitted"],
        "dropped": stats["dropped"],
    }


def _timed_stop(spark: Any, out: Path, url: str) -> dict[str, Any]:
    """Enable the plugin towards `url`, run a few actions, time `spark.stop()`."""
    from spark_plugin import enable

    handle = enable(spark, url=url)
    for n in range(4):
        _tiny_action(spark, out, n)
    began = time.perf_counter()
    spark.stop()
    stop_s = time.perf_counter() - began
    return {"stop_s": stop_s, "flush_timeout_s": handle.config.flush_timeout_s, **handle.stats()}


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    url = args.url
    spark = _session()
    with tempfile.TemporaryDirectory(prefix="spark_overhead_") as tmp:
        out, src = Path(tmp) / "out", Path(tmp) / "src"
        _prepare_sources(spark, src)
        healthy_block, tiny_block = (1, 4) if args.quick else (5, 10)
        result = {
            "healthy": _timed_pairs(spark, _healthy_action, out, healthy_block, args.healthy, url),
            "tiny": _timed_pairs(spark, _tiny_action, out, tiny_block, args.tiny, url),
            "listener": _listener_cost(spark, src, out, args.queries, url),
            "stop_hanging": _timed_stop(spark, out, args.hang_url),
        }
        result["stop_closed_port"] = _timed_stop(_session(), out, _closed_port_url())
    print("RESULT_JSON " + json.dumps(result), flush=True)


# -- parent: orchestrates and reports --------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer actions (< 60 s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--healthy", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--hang-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    # pairs of blocks (a block: 1 or 5 healthy actions, 4 or 10 tiny ones)
    healthy, tiny, queries = (6, 5, 8) if args.quick else (10, 10, 40)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    hanging = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    hanging.daemon_threads = True
    threading.Thread(
        target=hanging.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    command = [
        sys.executable,
        __file__,
        "--child",
        f"--healthy={healthy}",
        f"--tiny={tiny}",
        f"--queries={queries}",
        f"--url=http://127.0.0.1:{server.server_address[1]}",
        f"--hang-url=http://127.0.0.1:{hanging.server_address[1]}",
        *(["--quick"] if args.quick else []),
    ]
    began = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    finally:
        _Hang.released.set()
        for srv in (server, hanging):
            srv.shutdown()
            srv.server_close()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT_JSON ")), None)
    if proc.returncode != 0 or line is None:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark child failed (exit {proc.returncode})")
    result = json.loads(line[len("RESULT_JSON ") :])
    h, t, lc = result["healthy"], result["tiny"], result["listener"]
    print(f"spark_overhead ({'quick' if args.quick else 'full'}), {time.monotonic() - began:.0f} s")
    print()
    print("| phase   | actions each way | no lineage s | plugin s | ratio | median pair ratio |")
    print("|---------|------------------|--------------|----------|-------|-------------------|")
    for name, r in (("healthy", h), ("tiny", t)):
        print(
            f"| {name:<7} | {r['actions']:>16} | {r['none_s']:>12.2f} | {r['plugin_s']:>8.2f} | "
            f"{r['ratio']:>5.3f} | {r['median_pair_ratio']:>17.3f} |"
        )
    print()
    print(
        f"longest close (flush) after a plugin block: {max(h['close_s'], t['close_s']):.3f} s; "
        f"last block's counters: {h['last_stats'].get('emitted')} emitted, "
        f"{h['last_stats'].get('dropped')} dropped"
    )
    print()
    print(
        f"listener: {lc['queries']} queries of a {lc['plan_nodes']}-node analyzed plan, "
        f"{lc['listener_ms_per_query']:.2f} ms inside the callbacks per query "
        f"(walk included); events emitted {lc['emitted']}, dropped {lc['dropped']}; "
        f"receiver got {_Sink.received} events in all"
    )
    print()
    for name, key in (("hanging relay", "stop_hanging"), ("closed port", "stop_closed_port")):
        r = result[key]
        print(
            f"spark.stop() with a {name}: {r['stop_s']:.2f} s (flush timeout "
            f"{r['flush_timeout_s']:.1f} s); {r['submitted']} events, {r['emitted']} emitted, "
            f"{r['dropped']} dropped {r['dropped_by_reason']}, {r['pending']} still in flight "
            "(counted when its POST times out)"
        )
    print()
    print(f"RESULT spark_ratio_healthy={h['ratio']:.3f}")
    print(f"RESULT listener_ms_per_query={lc['listener_ms_per_query']:.2f}")
    print(f"RESULT spark_ratio_tiny_actions={t['ratio']:.3f}")
    for name, key in (("hanging_relay", "stop_hanging"), ("closed_port", "stop_closed_port")):
        print(f"RESULT spark_stop_s_{name}={result[key]['stop_s']:.2f}")


if __name__ == "__main__":
    main()
