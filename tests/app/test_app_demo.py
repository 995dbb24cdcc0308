"""`make demo` keeps telling its story: Spark -> plugin -> relay -> OpenMetadata, outage, drain.

The demo script runs as `make demo` runs it (its own Spark, mock and relay processes); its
output must name what OpenMetadata received and show the outage and the drain."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from app_support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(660)]

TABLES = ("demo_warehouse.warehouse.sales.orders_enriched",
          "demo_warehouse.warehouse.sales.revenue_by_country")  # fmt: skip
FAILING_TASK = "execute_insert_into_hadoop_fs_relation_command.exports_checked_orders"


def test_demo_shows_lineage_status_outage_and_drain() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "sink = 'rest'" in out, out
    tree = out.split("3. What OpenMetadata shows", 1)[1].split("4. OpenMetadata goes down", 1)[0]
    # the lineage tree: tables and files, each edge with its column pairs
    assert re.search(rf"^   {re.escape(TABLES[1])}  \(table\)$", tree, re.M), tree
    assert re.search(rf"^   └── {re.escape(TABLES[0])}  \(table\)$", tree, re.M), tree
    assert "columns: amount -> revenue, country -> country, order_id -> orders" in tree
    assert re.search(r"^   demo_files\.exports\.customer_totals  \(file\)$", tree, re.M), tree
    assert "columns: amount -> total, customer_id -> customer_id" in tree
    assert '── demo_files.landing."orders.json"  (file)' in tree
    assert "columns: amount -> amount, customer_id -> customer_id, order_id -> order_id" in tree
    assert '── demo_files.landing."customers.csv"  (file)' in tree
    assert "columns: country -> country" in tree
    assert "4 edge(s)" in tree
    # the pipeline, its tasks, and the first run Failed naming the failing task
    assert "pipeline spark.orders_daily: 4 task(s)" in tree
    assert f"task {FAILING_TASK}" in tree
    assert re.search(rf"run started [\d:]+: Failed \(failed task: {FAILING_TASK}\)", tree), tree
    # the outage: the job's time compared, backlog and an open breaker, then the drain
    assert re.search(r"\| 2   \| down         \| +[\d.]+ s \|", out), out
    assert re.search(r"backlog +[1-9]\d*  breaker open", out), out
    assert re.search(r"backlog drained to 0 in [\d.]+ s", out), out
    after = out.split("The second run, as OpenMetadata has it now", 1)[1]
    assert len(re.findall(rf": Failed \(failed task: {FAILING_TASK}\)", after)) == 2, after
    # counters: every event the job sent arrived, nothing left or dead-lettered
    assert re.search(r"^   received +20$", out, re.M), out
    assert re.search(r"^   delivered +20$", out, re.M), out
    assert re.search(r"^   dead letters +0$", out, re.M), out
    assert re.search(r"^   backlog +0$", out, re.M), out
    assert "relay exit status 0, mock exit status 0" in out
    assert "demo FAILED" not in out
