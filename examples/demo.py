"""The lineage-relay demo (`make demo`): a relay, a real OpenLineage client, a Spark-like run.

1. starts `lineage-relay serve` in a subprocess on a free loopback port, spool in a temp dir;
2. posts the OpenLineage events of one Spark application run, built and sent with the
   real OpenLineage Python client (`HttpTransport`, gzip-compressed like Spark can):
   application START, two SQL jobs (START/COMPLETE with inputs, outputs, schema,
   symlinks and column lineage), application COMPLETE;
3. prints the relay's counters from `/metrics` and its `/health`;
4. stops the relay with SIGTERM (graceful: exit status 0).

OpenMetadata is not part of this demo yet: the relay's forwarder finds nothing at the
configured address, so it backs off and every acknowledged event stays safely in the
spool (that is what `/health` reports). Needs nothing but this repository.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    job_type_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    sql_job,
    symlinks_dataset,
)
from openlineage.client.transport.http import HttpCompression, HttpConfig, HttpTransport
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/spark"
NAMESPACE = "analytics"
APP = "orders_daily"
HDFS = "hdfs://namenode.internal:8020"
HIVE = "hive://metastore.internal:9083"


# -- the events of one Spark application run ----------------------------------------------


def table(location: str, name: str, columns: list[tuple[str, str]]) -> dict[str, Any]:
    """Dataset facets as the Spark integration emits them for a Hive table."""
    return {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns]
        ),
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[symlinks_dataset.Identifier(namespace=HIVE, name=name, type="TABLE")]
        ),
    }


def column_lineage(
    sources: dict[str, list[tuple[str, str, str]]],
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """{output column: [(input dataset path, input column, subtype)]}."""
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=HDFS,
                        name=path,
                        field=column,
                        transformations=[
                            column_lineage_dataset.Transformation(
                                type="DIRECT" if subtype != "JOIN" else "INDIRECT",
                                subtype=subtype,
                            )
                        ],
                    )
                    for path, column, subtype in inputs
                ]
            )
            for out, inputs in sources.items()
        }
    )


def application_run() -> list[tuple[str, RunEvent]]:
    """(label, event) in emission order, with realistic timestamps."""
    started = datetime.now(UTC) - timedelta(minutes=2)

    def at(seconds: float) -> str:
        return (started + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")

    engine = processing_engine_run.ProcessingEngineRunFacet(
        version="3.5.3", name="spark", openlineageAdapterVersion="1.54.0"
    )
    app_run = str(uuid.uuid4())
    app_job = Job(
        namespace=NAMESPACE,
        name=APP,
        facets={"jobType": job_type_job.JobTypeJobFacet("NONE", "SPARK", "APPLICATION")},
    )
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=app_run), job=parent_run.Job(namespace=NAMESPACE, name=APP)
    )
    orders = ("/warehouse/sales.db/orders", "sales.orders")
    customers = ("/warehouse/crm.db/customers", "crm.customers")
    enriched = ("/warehouse/sales.db/orders_enriched", "sales.orders_enriched")
    revenue = ("/warehouse/reporting.db/revenue_by_country", "reporting.revenue_by_country")
    order_cols = [("order_id", "long"), ("customer_id", "long"), ("amount", "decimal(12,2)")]
    customer_cols = [("customer_id", "long"), ("country", "string")]
    enriched_cols = [*order_cols, ("country", "string")]
    revenue_cols = [("country", "string"), ("revenue", "decimal(22,2)")]

    def dataset(
        kind: type[InputDataset] | type[OutputDataset],
        where: tuple[str, str],
        columns: list[tuple[str, str]],
        extra: dict[str, Any] | None = None,
    ) -> Any:
        return kind(
            namespace=HDFS,
            name=where[0],
            facets={**table(where[0], where[1], columns), **(extra or {})},
        )

    jobs = [
        (
            "execute_insert_into_hadoop_fs_relation_command.warehouse_sales_db_orders_enriched",
            "INSERT OVERWRITE TABLE sales.orders_enriched SELECT o.*, c.country "
            "FROM sales.orders o JOIN crm.customers c USING (customer_id)",
            [dataset(InputDataset, orders, order_cols),
             dataset(InputDataset, customers, customer_cols)],
            dataset(
                OutputDataset, enriched, enriched_cols,
                {"columnLineage": column_lineage({
                    **{c: [(orders[0], c, "IDENTITY")] for c, _ in order_cols},
                    "country": [(customers[0], "country", "IDENTITY"),
                                (customers[0], "customer_id", "JOIN")],
                })},
            ),
        ),
        (
            "execute_insert_into_hadoop_fs_relation_command.warehouse_reporting_db_revenue_by_country",
            "INSERT OVERWRITE TABLE reporting.revenue_by_country "
            "SELECT country, sum(amount) FROM sales.orders_enriched GROUP BY country",
            [dataset(InputDataset, enriched, enriched_cols)],
            dataset(
                OutputDataset, revenue, revenue_cols,
                {"columnLineage": column_lineage({
                    "country": [(enriched[0], "country", "IDENTITY")],
                    "revenue": [(enriched[0], "amount", "AGGREGATION")],
                })},
            ),
        ),
    ]  # fmt: skip

    events = [
        (
            "application",
            RunEvent(
                eventType=RunState.START, eventTime=at(0), producer=PRODUCER,
                run=Run(runId=app_run, facets={"processing_engine": engine}), job=app_job,
            ),
        )
    ]  # fmt: skip
    for i, (suffix, sql, inputs, output) in enumerate(jobs):
        run = Run(runId=str(uuid.uuid4()), facets={"parent": parent, "processing_engine": engine})
        job = Job(
            namespace=NAMESPACE,
            name=f"{APP}.{suffix}",
            facets={
                "jobType": job_type_job.JobTypeJobFacet("BATCH", "SPARK", "SQL_JOB"),
                "sql": sql_job.SQLJobFacet(query=sql),
            },
        )
        for state, t in ((RunState.START, 10 + 30 * i), (RunState.COMPLETE, 25 + 30 * i)):
            events.append(
                (
                    "sql job",
                    RunEvent(
                        eventType=state, eventTime=at(t), producer=PRODUCER,
                        run=run, job=job, inputs=inputs, outputs=[output],
                    ),
                )
            )  # fmt: skip
    events.append(
        (
            "application",
            RunEvent(
                eventType=RunState.COMPLETE, eventTime=at(70), producer=PRODUCER,
                run=Run(runId=app_run, facets={"processing_engine": engine}), job=app_job,
            ),
        )
    )  # fmt: skip
    return events


# -- the relay process ----------------------------------------------------------------------


def start_relay(spool_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")}
    # No OpenMetadata in this demo: point delivery at a loopback port where nothing listens.
    env["LINEAGE_RELAY_OPENMETADATA_HOST_PORT"] = "http://127.0.0.1:9/api"
    command = [sys.executable, "-m", "relay", "serve", "--listen", "127.0.0.1:0",
               "--spool-dir", str(spool_dir)]  # fmt: skip
    print("$ lineage-relay serve --listen 127.0.0.1:0 --spool-dir", spool_dir)
    log = open(log_path, "wb")  # noqa: SIM115 -- the child writes it until it exits
    proc = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=REPO)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "relay listening":
                return proc, str(entry["url"])
        if proc.poll() is not None:
            raise SystemExit(f"the relay exited with {proc.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the relay did not start within 30 s:\n{log_path.read_text()}")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 -- loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:  # /health answers 503 when degraded
        return exc.code, exc.read()


def show_metrics(url: str) -> dict[str, float]:
    _, text = get(url + "/metrics")
    samples = {
        (s.name + "".join(f'{{{k}="{v}"}}' for k, v in s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    wanted = [
        'lineage_relay_events_received_total{endpoint="/api/v1/lineage"}',
        "lineage_relay_ingest_duration_seconds_count",
        "lineage_relay_ingest_duration_seconds_sum",
        "lineage_relay_spool_events",
        "lineage_relay_spool_bytes",
        "lineage_relay_spool_oldest_event_age_seconds",
        "lineage_relay_spool_corrupt_records_total",
    ]
    for name in wanted:
        print(f"  {name:<68} {samples.get(name, 0.0):g}")
    count = samples.get("lineage_relay_ingest_duration_seconds_count", 0.0)
    if count:
        mean_ms = 1000 * samples["lineage_relay_ingest_duration_seconds_sum"] / count
        print(f"  -> mean time from request to durable acknowledgement: {mean_ms:.1f} ms")
    return samples


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lineage-relay-demo-") as tmp:
        spool_dir, log_path = Path(tmp) / "spool", Path(tmp) / "relay.log"
        print("1. Start the relay")
        proc, url = start_relay(spool_dir, log_path)
        try:
            print(f"   listening on {url}\n")
            print("2. Post one Spark application run with the OpenLineage Python client")
            transport = HttpTransport(HttpConfig(url=url, compression=HttpCompression.GZIP))
            client = OpenLineageClient(transport=transport)
            events = application_run()
            for label, event in events:
                client.emit(event)  # raises unless the relay answered 2xx (durably spooled)
                outputs = ", ".join(o.name for o in event.outputs or [])
                state = event.eventType.value if event.eventType else "?"
                print(f"   {state:<9} {label:<12} {event.job.name}")
                if outputs:
                    print(f"   {'':<9} {'':<12}   -> {outputs}")
            transport.close()
            print()
            print("3. The relay's counters (GET /metrics)")
            samples = show_metrics(url)
            received = samples.get(
                'lineage_relay_events_received_total{endpoint="/api/v1/lineage"}'
            )
            print()
            print("4. Health (GET /health)")
            status, body = get(url + "/health")
            print(f"   HTTP {status}")
            for line in json.dumps(json.loads(body), indent=2).splitlines():
                print("   " + line)
            print("   (no OpenMetadata in this demo: events wait in the spool, nothing is lost)")
            print()
        finally:
            print("5. Stop the relay (SIGTERM)")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        print(f"   exit status {code}")
        if received != len(events) or code != 0:
            print(f"demo FAILED: {received} of {len(events)} events acknowledged, exit {code}")
            print(log_path.read_text())
            return 1
        print(f"\nAll {len(events)} events were acknowledged only after reaching the disk.")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
