"""The `rest` sink against the mock OpenMetadata over loopback (real HTTP, real SQLite state)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rest_support import (
    CATALOG,
    SPARK,
    TOKEN,
    bodies_in,
    catalog_counts,
    deliver,
    interleaved,
    make_rest_sink,
    mock_api,
    rest_config,
    rest_sink,
    snapshot,
    spooled,
    writes,
)
from wait_support import wait_until

from relay._config import MappingRule
from relay._events import SpooledEvent
from relay._observe.metrics import Metrics
from relay._sinks.base import Outcome
from relay.testing.mock_openmetadata import MockOpenMetadata, read_catalog

TASK = "execute_insert_into_hadoop_fs_relation_command.warehouse_reporting_db_revenue_by_country"
ORDERS = "hive_prod.warehouse.sales.orders"
CUSTOMERS = "hive_prod.warehouse.crm.customers"
REVENUE = "hive_prod.warehouse.reporting.revenue_by_country"
EXPECTED = {
    "pipelines": {"spark.orders_daily": [TASK]},
    "statuses": {"spark.orders_daily": [("Successful", {TASK: "Successful"})]},
    "edges": {
        (ORDERS, REVENUE): {
            "pipeline": "spark.orders_daily", "source": "SparkLineage", "sql": True,
            "columns": [(f"{ORDERS}.amount", f"{REVENUE}.revenue"),
                        (f"{ORDERS}.order_id", f"{REVENUE}.orders")],
        },
        (CUSTOMERS, REVENUE): {
            "pipeline": "spark.orders_daily", "source": "SparkLineage", "sql": True,
            "columns": [(f"{CUSTOMERS}.country", f"{REVENUE}.country"),
                        (f"{CUSTOMERS}.segment", f"{REVENUE}.segment")],
        },
    },
}  # fmt: skip
SINK_WRITES = {
    "/api/v1/services/pipelineServices", "/api/v1/pipelines", "/api/v1/lineage",
    "/api/v1/pipelines/spark.orders_daily/status",
}  # fmt: skip


def _catalog(**changes: Any) -> dict[str, Any]:
    catalog = copy.deepcopy(read_catalog(CATALOG))
    catalog.update(changes)
    return catalog


def _without_table(name: str) -> dict[str, Any]:
    catalog = _catalog()
    catalog["tables"] = [t for t in catalog["tables"] if t["name"] != name]
    return catalog


def _changed(body: bytes, change: Any) -> bytes:
    doc = json.loads(body)
    change(doc)
    return json.dumps(doc).encode()


async def test_the_samples_give_exactly_the_expected_pipeline_status_and_edges(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    before = await catalog_counts(mock)
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        await deliver(sink, spooled(bodies_in(SPARK)))
    assert await snapshot(mock) == EXPECTED
    assert await catalog_counts(mock) == before  # nothing created, nothing else touched
    assert {path for _, path in writes(mock)} == SINK_WRITES
    assert sink.server_version == "2.0.7"


async def test_an_openmetadata_1_13_server_gets_the_same(tmp_path: Path, metrics: Metrics) -> None:
    async with MockOpenMetadata(tokens=[TOKEN], catalog=CATALOG, version="1.13.0") as mock:
        async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
            await deliver(sink, spooled(bodies_in(SPARK)))
        assert sink.server_version == "1.13.0"
        assert await snapshot(mock) == EXPECTED


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_posted_twice_or_interleaved_the_result_is_the_same(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics, seed: int
) -> None:
    bodies = bodies_in(SPARK)
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        order = interleaved(bodies, seed)
        for body in order:  # one event per batch: the worst case for per-batch coalescing
            await deliver(sink, spooled([body]))
        assert await snapshot(mock) == EXPECTED
        written = len(writes(mock))
        await deliver(sink, spooled(interleaved(bodies, seed + 10)))
        assert writes(mock)[written:] == []  # the same events again: nothing new to say
    assert await snapshot(mock) == EXPECTED


async def test_a_relay_restart_neither_repeats_nor_forgets(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)
    first = make_rest_sink(rest_config(mock), tmp_path, metrics)
    await deliver(first, spooled(bodies[:3]))
    await first.aclose()
    async with rest_sink(rest_config(mock), tmp_path, metrics) as second:
        await deliver(second, spooled(bodies[3:]))
    assert await snapshot(mock) == EXPECTED
    statuses = mock.pipeline_statuses("spark.orders_daily")
    assert len(statuses) == 1 and statuses[0]["timestamp"] == 1795140003118  # the app START


async def test_an_action_before_its_application_start_moves_to_the_real_start(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        await deliver(sink, spooled(bodies[1:4]))
        assert mock.pipeline_statuses("spark.orders_daily")[0]["executionStatus"] == "Pending"
        await deliver(sink, spooled([bodies[0], bodies[4]]))
    assert await snapshot(mock) == EXPECTED
    assert [s["timestamp"] for s in mock.pipeline_statuses("spark.orders_daily")] == [1795140003118]


async def test_a_failed_action_fails_the_run_and_a_later_complete_keeps_it_failed(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)

    def fail(doc: dict[str, Any]) -> None:
        doc["eventType"] = "FAIL"
        doc["run"]["facets"]["errorMessage"] = {
            "_producer": "p", "_schemaURL": "s", "message": "boom", "programmingLanguage": "JVM",
        }  # fmt: skip

    failed = _changed(bodies[3], fail)
    sink = make_rest_sink(rest_config(mock), tmp_path, metrics)
    await deliver(sink, spooled([*bodies[:3], failed]))
    assert mock.pipeline_statuses("spark.orders_daily")[0]["executionStatus"] == "Failed"
    await sink.aclose()
    # After a restart, the COMPLETE of the same action and of the application arrive.
    async with rest_sink(rest_config(mock), tmp_path, metrics) as again:
        await deliver(again, spooled([bodies[3], bodies[4]]))
    state = await snapshot(mock)
    assert state["statuses"] == {"spark.orders_daily": [("Failed", {TASK: "Failed"})]}


async def test_the_openmetadata_job_facet_names_service_and_pipeline(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    """What the plugin passes on from spark.openmetadata.transport.* (the agent's keys)."""

    def hint(doc: dict[str, Any]) -> None:
        doc["job"]["facets"]["openmetadata"] = {
            "_producer": "p", "_schemaURL": "s", "pipelineServiceName": "etl_spark",
            "pipelineName": "orders nightly", "pipelineDescription": "the nightly orders job",
            "pipelineSourceUrl": "https://git.example.com/etl/orders.py",
        }  # fmt: skip

    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        await deliver(sink, spooled(_changed(body, hint) for body in bodies_in(SPARK)))
    state = await snapshot(mock)
    assert state["pipelines"] == {"etl_spark.orders nightly": [TASK]}
    assert {edge["pipeline"] for edge in state["edges"].values()} == {"etl_spark.orders nightly"}
    pipeline = mock.entity("pipeline", "etl_spark.orders nightly")
    assert pipeline is not None
    assert pipeline["description"] == "the nightly orders job"
    assert pipeline["sourceUrl"] == "https://git.example.com/etl/orders.py"
    assert mock.entity("pipelineService", "spark") is None  # the configured default: unused


async def test_a_lost_state_file_is_made_up_for_by_the_servers_status(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)
    failed = _changed(bodies[3], lambda doc: doc.update(eventType="FAIL"))
    sink = make_rest_sink(rest_config(mock), tmp_path, metrics)
    await deliver(sink, spooled([*bodies[:3], failed]))
    await sink.aclose()
    for path in tmp_path.glob("rest-sink.db*"):
        path.unlink()  # the relay's memory of the run is gone
    async with rest_sink(rest_config(mock), tmp_path, metrics) as again:
        await deliver(again, spooled([bodies[3], bodies[4]]))
    (status,) = mock.pipeline_statuses("spark.orders_daily")  # found again by executionId
    assert status["timestamp"] == 1795140003118  # the application START's, not a new one
    assert status["executionId"] == "0193a1f2-7c4e-7d21-9a0b-3c5e8f61d2a4"
    assert status["executionStatus"] == "Failed"


async def test_an_unknown_output_parks_its_edges_until_the_table_exists(
    tmp_path: Path, metrics: Metrics
) -> None:
    async with MockOpenMetadata(
        tokens=[TOKEN], catalog=_without_table("revenue_by_country")
    ) as mock:
        async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
            await deliver(sink, spooled(bodies_in(SPARK)))  # delivered: nothing holds the run
            assert mock.lineage_edges == []
            assert metrics.registry.get_sample_value("lineage_relay_unresolved_datasets") == 1
            labels = {"namespace": "hive://metastore.internal:9083"}
            assert metrics.registry.get_sample_value("lineage_relay_unresolved_total", labels) == 1
            assert await sink.retry_parked() == 0  # still missing: nothing written
            await _create_revenue_table(mock)
            await wait_until(
                lambda: metrics.registry.get_sample_value("lineage_relay_unresolved_datasets") == 0
            )
        assert await snapshot(mock) == EXPECTED


async def test_a_parked_edge_survives_a_restart(tmp_path: Path, metrics: Metrics) -> None:
    async with MockOpenMetadata(
        tokens=[TOKEN], catalog=_without_table("revenue_by_country")
    ) as mock:
        sink = make_rest_sink(rest_config(mock), tmp_path, metrics)
        await deliver(sink, spooled(bodies_in(SPARK)))
        await sink.aclose()
        await _create_revenue_table(mock)
        async with rest_sink(rest_config(mock), tmp_path, Metrics()) as again:
            await again.start()
            await wait_until(lambda: len(mock.lineage_edges) == 2)
        assert await snapshot(mock) == EXPECTED


async def test_a_parked_edge_is_dead_lettered_after_the_retention(
    tmp_path: Path, metrics: Metrics
) -> None:
    buried: list[tuple[SpooledEvent, str]] = []

    async def bury(event: SpooledEvent, reason: str) -> None:
        buried.append((event, reason))

    async with MockOpenMetadata(
        tokens=[TOKEN], catalog=_without_table("revenue_by_country")
    ) as mock:
        config = rest_config(mock, unresolved_retention_s=0.05)
        async with rest_sink(config, tmp_path, metrics, dead_letter=bury) as sink:
            events = spooled(bodies_in(SPARK))
            await deliver(sink, events)
            # Two edges (orders and customers to the missing table), RUNNING and COMPLETE
            # parked as one row each: one dead letter for the event.
            await wait_until(lambda: len(buried) == 1)
            await wait_until(
                lambda: metrics.registry.get_sample_value("lineage_relay_unresolved_datasets") == 0
            )
    event, reason = buried[0]
    assert event.body == events[3].body  # the latest event of the run carries the edge
    assert reason.startswith("unresolved: ") and "revenue_by_country" in reason
    assert metrics.registry.get_sample_value(
        "lineage_relay_dead_letters_total", {"reason": "unresolved"}
    ) == 1  # fmt: skip


async def test_auto_create_makes_the_missing_table_and_writes_at_once(
    tmp_path: Path, metrics: Metrics
) -> None:
    catalog = _without_table("revenue_by_country")
    catalog["databaseSchemas"] = [s for s in catalog["databaseSchemas"] if s["name"] != "reporting"]
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        async with rest_sink(rest_config(mock, auto_create=True), tmp_path, metrics) as sink:
            await deliver(sink, spooled(bodies_in(SPARK)))
        table = mock.entity("table", REVENUE)
        assert table is not None
        assert [(c["name"], c["dataType"]) for c in table["columns"]] == [
            ("country", "STRING"), ("segment", "STRING"), ("revenue", "DECIMAL"),
            ("orders", "BIGINT"),
        ]  # fmt: skip
        assert mock.entity("databaseSchema", "hive_prod.warehouse.reporting") is not None
        assert await snapshot(mock) == EXPECTED
        assert metrics.registry.get_sample_value("lineage_relay_unresolved_datasets") == 0


async def test_auto_create_makes_containers_under_a_container_rule(tmp_path: Path) -> None:
    catalog = {"storageServices": [{"name": "hdfs_store", "serviceType": "CustomStorage"}]}
    rule = MappingRule(namespace="hive://*", service="hdfs_store", entity="container")
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        config = rest_config(mock, mapping=(rule,), auto_create=True)
        async with rest_sink(config, tmp_path, Metrics()) as sink:
            await deliver(sink, spooled(bodies_in(SPARK)))
        edges = (await snapshot(mock))["edges"]
    # Named by their path (quoted: it has dots), fullPath the dataset's URI.
    orders = 'hdfs_store."namenode.internal:8020/warehouse/sales.db/orders"'
    customers = 'hdfs_store."namenode.internal:8020/warehouse/crm.db/customers"'
    revenue = 'hdfs_store."namenode.internal:8020/warehouse/reporting.db/revenue_by_country"'
    assert set(edges) == {(orders, revenue), (customers, revenue)}
    assert edges[(orders, revenue)]["columns"] == [
        (f"{orders}.amount", f"{revenue}.revenue"), (f"{orders}.order_id", f"{revenue}.orders"),
    ]  # fmt: skip
    created = mock.entity("container", revenue)
    assert created is not None
    assert (
        created["fullPath"]
        == "hdfs://namenode.internal:8020/warehouse/reporting.db/revenue_by_country"
    )


async def test_the_same_db_table_under_two_services_is_never_guessed(
    tmp_path: Path,
) -> None:
    catalog, _ = _with_decoy()
    bodies = bodies_in(SPARK)
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        metrics = Metrics()
        async with rest_sink(rest_config(mock, mapping=()), tmp_path / "a", metrics) as sink:
            await deliver(sink, spooled(bodies))
        labels = {"namespace": "hive://metastore.internal:9083"}
        assert metrics.registry.get_sample_value("lineage_relay_ambiguous_datasets_total", labels)
        assert set((await snapshot(mock))["edges"]) == {(CUSTOMERS, REVENUE)}  # no orders edge

        async with rest_sink(rest_config(mock), tmp_path / "b", Metrics()) as with_rule:
            await deliver(with_rule, spooled(bodies))
        edges = (await snapshot(mock))["edges"]
        assert set(edges) == {(ORDERS, REVENUE), (CUSTOMERS, REVENUE)}
        assert not any(source.startswith("hive_decoy") for source, _ in edges)


async def test_a_soft_deleted_table_is_never_bound(tmp_path: Path) -> None:
    # A 2.0 server finds soft-deleted entities in search unless told not to: the live table
    # must stay the only candidate, so no ambiguity is reported and its edge is written.
    catalog, decoy_fqn = _with_decoy()
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog) as mock:
        entity = mock.entity("table", decoy_fqn)
        assert entity is not None
        assert (await mock_api(mock, "DELETE", f"/v1/tables/{entity['id']}"))[0] == 200
        metrics = Metrics()
        async with rest_sink(rest_config(mock, mapping=()), tmp_path, metrics) as sink:
            await deliver(sink, spooled(bodies_in(SPARK)))
        labels = {"namespace": "hive://metastore.internal:9083"}
        assert not metrics.registry.get_sample_value(
            "lineage_relay_ambiguous_datasets_total", labels
        )
        edges = (await snapshot(mock))["edges"]
        assert (ORDERS, REVENUE) in edges
        assert not any(source.startswith("hive_decoy") for source, _ in edges)


@pytest.mark.parametrize("edge_endpoint", [True, False])
async def test_two_jobs_writing_the_same_tables_keep_both_columns(
    mock: MockOpenMetadata, tmp_path: Path, edge_endpoint: bool
) -> None:
    if not edge_endpoint:  # a server older than getLineageEdge: the route answers 404
        await mock.set_faults(
            {"mode": "error", "status": 404, "path": "/api/v1/lineage/getLineageEdge/*"}
        )
    complete = bodies_in(SPARK)[3]

    def only(column: str, app: str) -> Any:
        def change(doc: dict[str, Any]) -> None:
            facet = doc["outputs"][0]["facets"]["columnLineage"]
            facet["fields"] = {column: facet["fields"][column]}
            doc["run"]["facets"]["parent"]["job"]["name"] = app
            doc["job"]["name"] = f"{app}.insert"

        return change

    first = _changed(complete, only("revenue", "job_a"))
    second = _changed(complete, only("orders", "job_b"))
    # Two relays (their own caches): the second reads the edge the first wrote.
    for index, body in enumerate((first, second)):
        async with rest_sink(rest_config(mock), tmp_path / str(index), Metrics()) as sink:
            await deliver(sink, spooled([body]))
    edge = (await snapshot(mock))["edges"][(ORDERS, REVENUE)]
    assert edge["columns"] == [
        (f"{ORDERS}.amount", f"{REVENUE}.revenue"), (f"{ORDERS}.order_id", f"{REVENUE}.orders"),
    ]  # fmt: skip
    assert edge["pipeline"] == "spark.job_b"  # the latest writer's pipeline
    entity_lineage = [
        r for r in mock.requests if r["path"].startswith("/api/v1/lineage/table/")
    ]  # the older server's way to read the edge
    assert bool(entity_lineage) is not edge_endpoint


async def test_two_relays_alternating_on_one_edge_lose_nothing(
    mock: MockOpenMetadata, tmp_path: Path
) -> None:
    complete = bodies_in(SPARK)[3]

    def only(*columns: str) -> Any:
        def change(doc: dict[str, Any]) -> None:
            facet = doc["outputs"][0]["facets"]["columnLineage"]
            facet["fields"] = {c: facet["fields"][c] for c in columns}

        return change

    async with (
        rest_sink(rest_config(mock), tmp_path / "a", Metrics()) as first,
        rest_sink(rest_config(mock), tmp_path / "b", Metrics()) as second,
    ):
        await deliver(first, spooled([_changed(complete, only("revenue"))]))
        await deliver(second, spooled([_changed(complete, only("orders"))]))
        # The first relay remembers only its own columns; its next write (a new query text)
        # must keep the other relay's.
        third = _changed(_changed(complete, only("revenue")), _new_query)
        await deliver(first, spooled([third]))
    edge = (await snapshot(mock))["edges"][(ORDERS, REVENUE)]
    assert edge["columns"] == [
        (f"{ORDERS}.amount", f"{REVENUE}.revenue"), (f"{ORDERS}.order_id", f"{REVENUE}.orders"),
    ]  # fmt: skip


def _new_query(doc: dict[str, Any]) -> None:
    doc["job"]["facets"]["sql"]["query"] += " -- v2"


async def test_a_permanent_refusal_dead_letters_only_that_event(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)
    await mock.set_faults({"mode": "error", "status": 400, "path": "/api/v1/lineage"})
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        results = await sink.send(spooled(bodies))
    outcomes = [r.outcome for r in results]
    # RUNNING and COMPLETE write edges: refused; START and the application's events do not.
    assert outcomes == [
        Outcome.DELIVERED, Outcome.DELIVERED, Outcome.PERMANENT, Outcome.PERMANENT,
        Outcome.DELIVERED,
    ]  # fmt: skip
    assert "HTTP 400" in results[2].reason


async def test_openmetadata_down_raises_for_the_breaker(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    from relay._exceptions import RetriableSinkError

    await mock.set_faults({"mode": "error", "status": 503, "path": "/api/v1/*"})
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        with pytest.raises(RetriableSinkError, match="503"):
            await sink.send(spooled(bodies_in(SPARK)))
        await mock.clear_faults()
        await deliver(sink, spooled(bodies_in(SPARK)))
    assert await snapshot(mock) == EXPECTED


async def test_a_pipeline_deleted_behind_the_relays_back_is_made_again(
    mock: MockOpenMetadata, tmp_path: Path, metrics: Metrics
) -> None:
    bodies = bodies_in(SPARK)
    async with rest_sink(rest_config(mock), tmp_path, metrics) as sink:
        await deliver(sink, spooled(bodies))
        old = mock.entity("pipeline", "spark.orders_daily")
        assert old is not None
        status, _ = await mock_api(mock, "DELETE", f"/v1/pipelines/{old['id']}?hardDelete=true")
        assert status == 200
        # The next run of the application: new run ids, the caches still name the old pipeline.
        again = [
            body.replace(b"0193a1f2-7c4e", b"0193a1f2-7c4f").replace(
                b"0193a1f3-0b11", b"0193a1f3-0b12"
            )
            for body in bodies
        ]
        await deliver(sink, spooled(again))
    new = mock.entity("pipeline", "spark.orders_daily")
    assert new is not None and new["id"] != old["id"]
    state = await snapshot(mock)
    assert state["pipelines"] == EXPECTED["pipelines"]
    assert state["statuses"]["spark.orders_daily"] == [("Successful", {TASK: "Successful"})]
    assert {e["lineageDetails"]["pipeline"]["id"] for e in mock.lineage_edges} == {new["id"]}


# -- helpers ------------------------------------------------------------------------------


def _with_decoy() -> tuple[dict[str, Any], str]:
    """The catalog with a second Hive service holding the same database, schema and first
    table; and that copy's FQN."""
    catalog = _catalog()
    catalog["databaseServices"].append({"name": "hive_decoy", "serviceType": "Hive"})
    catalog["databases"].append({"name": "warehouse", "service": "hive_decoy"})
    catalog["databaseSchemas"].append({"name": "sales", "database": "hive_decoy.warehouse"})
    decoy = copy.deepcopy(catalog["tables"][0])
    decoy["databaseSchema"] = "hive_decoy.warehouse.sales"
    catalog["tables"].append(decoy)
    return catalog, f"hive_decoy.warehouse.sales.{decoy['name']}"


async def _create_revenue_table(mock: MockOpenMetadata) -> None:
    (table,) = [t for t in read_catalog(CATALOG)["tables"] if t["name"] == "revenue_by_country"]
    assert (await mock_api(mock, "PUT", "/v1/tables", table))[0] == 201
