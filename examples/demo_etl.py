"""The demo's Spark job: a small PySpark ETL with lineage from `spark_plugin`.

    python examples/demo_etl.py --data DIR --relay http://127.0.0.1:5055

Writes its two inputs itself (plain Python, no Spark: they are the "landing" files an upstream
system would drop), then, in a local Spark session with a Hive catalog under DIR:

1. reads `landing/customers.csv` and `landing/orders.json`, joins them and writes the catalog
   table `sales.orders_enriched`;
2. aggregates it into the catalog table `sales.revenue_by_country`;
3. aggregates it into the parquet file `exports/customer_totals`;
4. a data-quality check that fails on purpose (an order whose customer is unknown): its
   write to `exports/checked_orders` stops with an error, and the job carries on.

Spark's own log goes to stderr; the last line on stdout is `ETL_RESULT {json}` with the
job's wall time (first action to the end of `spark.stop()`, the plugin's flush included,
JVM start-up excluded), each action's outcome and the plugin's counters.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

APP_NAME = "orders_daily"
NAMESPACE = "demo"
COUNTRIES = ("FR", "DE", "US", "JP")
CUSTOMERS = 40
ORDERS = 400


def write_inputs(data: Path) -> None:
    """The landing files; customer ids of the orders run one past the known customers."""
    landing = data / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    with open(landing / "customers.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "name", "country"])
        for i in range(CUSTOMERS):
            writer.writerow([i, f"customer {i}", COUNTRIES[i % len(COUNTRIES)]])
    with open(landing / "orders.json", "w") as out:
        for i in range(ORDERS):
            order = {"order_id": i, "customer_id": i % (CUSTOMERS + 1), "amount": 5 + i % 50}
            out.write(json.dumps(order) + "\n")


def run(data: Path, relay_url: str) -> dict[str, Any]:
    from pyspark.sql import functions as F

    # The local session the tests make too; a real driver needs spark_plugin only.
    from relay.testing.spark import local_session
    from spark_plugin import enable

    # A Hive catalog under DIR; no Spark log: the failing action would print a stack trace.
    spark = local_session(APP_NAME, base=data, log_level="OFF")
    # Every run does the same work, so their wall times compare: the tables are created anew
    # (replacing an existing Hive table costs more). Before enable: not part of the lineage.
    spark.sql("CREATE DATABASE IF NOT EXISTS sales")
    for table in ("sales.orders_enriched", "sales.revenue_by_country"):
        spark.sql(f"DROP TABLE IF EXISTS {table}")
    lineage = enable(spark, url=relay_url, namespace=NAMESPACE)
    exports = data / "exports"
    actions: list[dict[str, str]] = []
    began = time.perf_counter()

    customers = (
        spark.read.schema("customer_id INT, name STRING, country STRING")
        .option("header", True)
        .csv(str(data / "landing" / "customers.csv"))
    )
    orders = spark.read.schema("order_id BIGINT, customer_id INT, amount DOUBLE").json(
        str(data / "landing" / "orders.json")
    )
    enriched = orders.join(customers, "customer_id").select(
        "order_id", "customer_id", "amount", "country"
    )
    enriched.write.mode("overwrite").saveAsTable("sales.orders_enriched")
    actions.append({"action": "write table sales.orders_enriched", "outcome": "ok"})

    table = spark.table("sales.orders_enriched")
    table.groupBy("country").agg(
        F.sum("amount").alias("revenue"), F.count("order_id").alias("orders")
    ).write.mode("overwrite").saveAsTable("sales.revenue_by_country")
    actions.append({"action": "write table sales.revenue_by_country", "outcome": "ok"})

    table.groupBy("customer_id").agg(F.sum("amount").alias("total")).write.mode(
        "overwrite"
    ).parquet(str(exports / "customer_totals"))
    actions.append({"action": "write file exports/customer_totals", "outcome": "ok"})

    checked = orders.join(customers, "customer_id", "left").selectExpr(
        "order_id", "assert_true(country IS NOT NULL, 'an order names an unknown customer') AS ok"
    )
    try:
        checked.write.mode("overwrite").parquet(str(exports / "checked_orders"))
        actions.append({"action": "write file exports/checked_orders", "outcome": "ok"})
    except Exception as exc:  # noqa: BLE001 -- the failure the demo wants; the job goes on
        reason = str(exc).strip().splitlines()[0][:120]
        actions.append({"action": "write file exports/checked_orders", "outcome": reason})

    spark.stop()  # the plugin flushes (bounded by its flush timeout)
    wall_s = time.perf_counter() - began
    return {
        "wall_s": round(wall_s, 3),
        "actions": actions,
        "app_run_id": lineage.app_run_id,
        "emitted": lineage.emitted,
        "dropped": lineage.dropped,
        "failed_posts": lineage.failed_posts,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="working directory")
    parser.add_argument("--relay", required=True, help="the relay's URL")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    write_inputs(args.data)
    result = run(args.data, args.relay)
    print("ETL_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
