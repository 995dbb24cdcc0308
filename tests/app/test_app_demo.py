"""`make demo` keeps telling its story: Spark -> plugin -> relay -> OpenMetadata, outage, drain.

The demo script runs as `make demo` runs it (its own Spark, mock and relay processes); its
output must name what OpenMetadata received and show the outage and the drain."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from app_support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

TABLES = ("demo_warehouse.warehouse.sales.orders_enriched",
          "demo_warehouse.warehouse.sales.revenue_by_country")  # fmt: skip
FAILING_TASK = "orders_daily.execute_insert_into_hadoop_fs_relation_command.exports_checked_orders"


def test_demo_shows_lineage_status_outage_and_drain() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo.py")],
        capture_output=True, text=True, timeout=450, cwd=REPO,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    sink = re.search(r"sink = '(\w+)'", out)
    assert sink is not None, out
    # the lineage tree: the aggregate table made from the joined table, with its column pairs
    tree = out.split("3. What OpenMetadata shows", 1)[1].split("4. OpenMetadata goes down", 1)[0]
    assert re.search(rf"^   {re.escape(TABLES[1])}  \(table\)$", tree, re.M), tree
    assert re.search(rf"^   └── {re.escape(TABLES[0])}  \(table\)$", tree, re.M), tree
    assert "columns: amount -> revenue, country -> country, order_id -> orders" in tree
    if sink.group(1) == "rest":
        # files as containers, joined into the enriched table, column by column
        assert 'demo_files.landing."customers.csv"  (file)' in tree
        assert 'demo_files.landing."orders.json"  (file)' in tree
        assert "demo_files.exports.customer_totals  (file)" in tree
        assert "customer_id -> customer_id, amount -> total" in tree
        assert re.search(rf"run started [\d:]+: Failed \(failed task: {FAILING_TASK}\)", tree)
        after = out.split("The second run, as OpenMetadata has it now", 1)[1]
        assert len(re.findall(rf": Failed \(failed task: {FAILING_TASK}\)", after)) == 2, after
    else:
        assert f"FAIL event of task {FAILING_TASK}" in tree
        assert "run 2: 10 events reached OpenMetadata" in out
    # the outage: the job's time compared, backlog and an open breaker, then the drain
    assert re.search(r"\| 2   \| down         \| +[\d.]+ s \|", out), out
    assert re.search(r"backlog +[1-9]\d*  breaker open", out), out
    assert re.search(r"backlog drained to 0 in [\d.]+ s", out), out
    assert re.search(r"^   received +20$", out, re.M), out
    assert re.search(r"^   backlog +0$", out, re.M), out
    assert "relay exit status 0, mock exit status 0" in out
    assert "demo FAILED" not in out
