"""Child process for test_never_block: real Spark jobs with the relay dead, hanging, then at exit.

Usage: python never_block_job.py <receiver_url_for_the_exit_case>
Prints one JSON line per case on stdout.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugin_support import Receiver, closed_port_url

from spark_plugin import enable

FLUSH_TIMEOUT_S = 1.0


def session(app: str) -> Any:
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    return spark


def jobs(spark: Any, base: Path) -> list[str]:
    """A few real actions; returns what each produced, so the parent can check they ran."""
    done = []
    for n in range(2):
        out = base / f"out_{n}"
        spark.range(1000).selectExpr("id", "id % 7 AS k").write.mode("overwrite").parquet(str(out))
        done.append(str(spark.read.parquet(str(out)).groupBy("k").count().count()))
    return done


def case(name: str, url: str, base: Path) -> dict[str, Any]:
    spark = session(f"never block {name}")
    handle = enable(spark, url=url, flush_timeout_s=FLUSH_TIMEOUT_S, timeout_s=2.0)
    results = jobs(spark, base / name)
    began = time.monotonic()
    spark.stop()
    stop_s = time.monotonic() - began
    sender = handle._sender
    assert sender is not None
    joined = sender.join(5.0)  # the in-flight POST ends on its own timeout
    return {
        "case": name,
        "results": results,
        "stop_s": stop_s,
        "joined": joined,
        **handle.stats(),
    }


def main() -> None:
    exit_url = sys.argv[1]
    base = Path(tempfile.mkdtemp(prefix="never_block_"))
    print(json.dumps(case("closed_port", closed_port_url(), base)), flush=True)
    hanging = Receiver(hang=True)
    try:
        print(json.dumps(case("hanging", hanging.url, base)), flush=True)
    finally:
        hanging.close()
    # exit without spark.stop(): the interpreter's exit hook flushes within the deadline
    spark = session("never block exit")
    enable(spark, url=exit_url, flush_timeout_s=FLUSH_TIMEOUT_S)
    print(json.dumps({"case": "exit", "results": jobs(spark, base / "exit")}), flush=True)


if __name__ == "__main__":
    main()
