"""The pure translation (relay._translate): events -> model, names, lookups, run states, edges."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from relay._config import MappingRule
from relay._translate import (
    Dataset,
    EntityView,
    RunState,
    Symlink,
    advance,
    build_fqn,
    column_pairs,
    column_type,
    container_request,
    dataset_uri,
    edge_pairs,
    entity_name,
    lineage_details,
    lookup_for,
    merge_details,
    parse_run_event,
    parse_time_ms,
    pipeline_spec,
    same_details,
    source_of,
    split_fqn,
    state_from_status,
    status_body,
    table_requests,
    task_name,
)

SPARK = Path(__file__).resolve().parent.parent / "fixtures" / "events" / "spark"
HIVE = MappingRule(namespace="hive://*", service="hive_prod", database="warehouse")


def _event(name: str) -> bytes:
    (path,) = SPARK.glob(f"{name}*.json")
    return path.read_bytes()


def _with(body: bytes, **changes: Any) -> bytes:
    doc = json.loads(body)
    doc.update(changes)
    return json.dumps(doc).encode()


# -- model ------------------------------------------------------------------------------


def test_an_action_event_belongs_to_its_parent_application() -> None:
    event = parse_run_event(_event("04_COMPLETE"))
    assert event is not None
    assert event.event_type == "COMPLETE" and not event.is_application
    assert (event.app.namespace, event.app.name) == ("analytics", "orders_daily")
    assert event.app.run_id == "0193a1f2-7c4e-7d21-9a0b-3c5e8f61d2a4"
    assert event.sql.startswith("INSERT OVERWRITE TABLE reporting.revenue_by_country")
    assert [d.table_symlink.name for d in event.inputs if d.table_symlink] == [
        "sales.orders", "crm.customers",
    ]  # fmt: skip
    (output,) = event.outputs
    lineage = dict(output.column_lineage)
    # Only DIRECT sources: join keys and filter columns (INDIRECT) do not feed a column.
    assert [(f.name, f.field) for f in lineage["revenue"]] == [
        ("/warehouse/sales.db/orders", "amount")
    ]
    assert [f.field for f in lineage["country"]] == ["country"]


def test_the_application_event_is_its_own_application() -> None:
    event = parse_run_event(_event("01_START"))
    assert event is not None and event.is_application
    assert event.app.name == "orders_daily"


def test_an_application_with_a_scheduler_parent_is_still_the_application() -> None:
    doc = json.loads(_event("01_START"))
    doc["run"]["facets"]["parent"] = {
        "run": {"runId": "0193a1f2-0000-7000-8000-000000000000"},
        "job": {"namespace": "airflow", "name": "dag.task"},
    }
    event = parse_run_event(json.dumps(doc).encode())
    assert event is not None and event.is_application and event.app.name == "orders_daily"


def test_dataset_and_job_events_are_no_run_events() -> None:
    assert parse_run_event(b'{"eventTime": "2024-01-01T00:00:00Z", "dataset": {}}') is None
    with pytest.raises(ValueError, match="not JSON"):
        parse_run_event(b"{")


def test_a_facet_of_the_wrong_shape_is_skipped_not_fatal() -> None:
    doc = json.loads(_event("04_COMPLETE"))
    doc["outputs"][0]["facets"]["columnLineage"] = "oops"
    doc["inputs"][0]["facets"]["symlinks"] = {"identifiers": [1, {"name": 2}]}
    event = parse_run_event(json.dumps(doc).encode())
    assert event is not None
    assert event.outputs[0].column_lineage == () and event.inputs[0].symlinks == ()


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-10-17T09:18:11.5Z", 1729156691500),
        ("2024-10-17T09:18:11.123456789Z", 1729156691123),
        ("2024-10-17T11:18:11.5+02:00", 1729156691500),
        ("2024-10-17T09:18:11.5", 1729156691500),  # no offset: UTC
    ],
)
def test_event_times_in_every_iso_shape_clients_send(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


# -- names ------------------------------------------------------------------------------


def test_fqn_parts_with_dots_are_quoted_and_split_back() -> None:
    fqn = build_fqn("svc", "my.db", 'we"ird', "t")
    assert fqn == 'svc."my.db".we\\"ird.t'
    assert split_fqn(fqn) == ["svc", "my.db", 'we"ird', "t"]


def test_entity_names_are_made_valid_deterministically() -> None:
    assert entity_name("orders daily (v2)") == "orders daily (v2)"
    assert entity_name("a::b/c") == "a__b_c"
    long = entity_name("x" * 300)
    assert len(long) == 128 and long == entity_name("x" * 300) != entity_name("x" * 301)


def test_a_task_is_named_without_its_applications_prefix() -> None:
    assert task_name("app.execute_insert.warehouse_t1", "app") == "execute_insert.warehouse_t1"
    assert task_name("other.job", "app") == "other.job"


# -- datasets -----------------------------------------------------------------------------


def _table(name: str, *, symlink: str = "", ns: str = "hdfs://nn:8020") -> Dataset:
    links = (Symlink("hive://metastore:9083", symlink, "TABLE"),) if symlink else ()
    return Dataset(namespace=ns, name=name, symlinks=links)


def test_a_rule_on_the_symlink_namespace_gives_the_exact_fqn() -> None:
    lookup = lookup_for(_table("/w/sales.db/orders", symlink="sales.orders"), [HIVE])
    assert (lookup.kind, lookup.fqn) == ("table", "hive_prod.warehouse.sales.orders")


def test_the_name_fills_the_fqn_from_the_right_and_the_rule_the_rest() -> None:
    rule = MappingRule(namespace="postgres://*", service="pg", database="d", schema="public")
    assert lookup_for(_table("orders", ns="postgres://h:5432"), [rule]).fqn == "pg.d.public.orders"
    assert lookup_for(_table("db.s.orders", ns="postgres://h:5432"), [rule]).fqn == "pg.db.s.orders"


def test_a_rule_without_database_searches_that_service_by_the_known_parts() -> None:
    rule = MappingRule(namespace="hive://*", service="hive_prod")
    lookup = lookup_for(_table("/w/t", symlink="sales.orders"), [rule])
    assert (lookup.fqn, lookup.name_parts, lookup.service) == ("", ("sales", "orders"), "hive_prod")


def test_the_first_matching_rule_wins() -> None:
    first = MappingRule(namespace="hive://metastore:*", service="a", database="x")
    second = MappingRule(namespace="hive://*", service="b", database="y")
    lookup = lookup_for(_table("/w/t", symlink="s.t"), [first, second])
    assert lookup.fqn == "a.x.s.t"


def test_without_a_rule_files_are_containers_and_names_are_table_suffixes() -> None:
    files = lookup_for(_table("/data/raw", ns="s3a://lake"), [])
    assert (files.kind, files.full_path, files.service) == ("container", "s3://lake/data/raw", "")
    tables = lookup_for(_table("/w/t", symlink="sales.orders"), [])
    assert (tables.kind, tables.name_parts) == ("table", ("sales", "orders"))


def test_a_container_rule_looks_up_the_dataset_uri_in_that_service() -> None:
    rule = MappingRule(namespace="s3://*", service="s3_prod", entity="container")
    lookup = lookup_for(_table("events/2024/", ns="s3://lake"), [rule])
    assert (lookup.kind, lookup.full_path, lookup.service) == (
        "container", "s3://lake/events/2024", "s3_prod",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("namespace", "name", "uri"),
    [
        ("file", "/tmp/x", "file:///tmp/x"),
        ("hdfs://nn:8020", "/warehouse/t", "hdfs://nn:8020/warehouse/t"),
        ("s3n://bucket", "key/part", "s3://bucket/key/part"),
        ("gs://bucket/", "/k", "gs://bucket/k"),
    ],
)
def test_dataset_uris(namespace: str, name: str, uri: str) -> None:
    assert dataset_uri(namespace, name) == uri


def test_auto_create_requests_need_a_rule_with_every_part() -> None:
    dataset = Dataset(namespace="hdfs://nn", name="/w/t", symlinks=(
        Symlink("hive://m:9083", "reporting.daily", "TABLE"),), fields=())  # fmt: skip
    requests = table_requests(lookup_for(dataset, [HIVE]), dataset)
    assert [c for c, _ in requests] == ["databases", "databaseSchemas", "tables"]
    assert requests[2][1]["databaseSchema"] == "hive_prod.warehouse.reporting"
    assert table_requests(lookup_for(dataset, []), dataset) == []
    assert container_request(lookup_for(dataset, []), dataset) is None


def test_spark_types_map_to_openmetadata_types() -> None:
    assert [column_type(t) for t in ("string", "decimal(10,2)", "array<int>", "weird")] == [
        "STRING", "DECIMAL", "ARRAY", "UNKNOWN",
    ]  # fmt: skip


# -- runs ---------------------------------------------------------------------------------


def _run_events() -> list[Any]:
    return [parse_run_event(p.read_bytes()) for p in sorted(SPARK.glob("*.json"))]


def _fold(events: list[Any]) -> RunState:
    state = None
    for event in events:
        task = None if event.is_application else task_name(event.job_name, event.app.name)
        state = advance(state, event, task)
    assert state is not None
    return state


def test_the_samples_fold_to_a_successful_run_with_one_task() -> None:
    state = _fold(_run_events())
    body = status_body(state)
    assert body["timestamp"] == parse_time_ms("2026-11-20T02:00:03.118Z")  # the app START
    assert body["executionStatus"] == "Successful"
    (task,) = body["taskStatus"]
    assert task["executionStatus"] == "Successful"
    assert task["startTime"] < task["endTime"]


def test_any_order_and_any_repetition_fold_to_the_same_state() -> None:
    events = _run_events()
    expected = _fold(events)
    for order in itertools.permutations(events):
        assert _fold([*order, order[0]]) == expected


def test_a_fail_is_never_turned_green() -> None:
    events = _run_events()
    failed = parse_run_event(_with(_event("04_COMPLETE"), eventType="FAIL"))
    state = _fold([*events[:3], failed, events[3], events[4]])
    assert state.status == "Failed"
    assert status_body(state)["taskStatus"][0]["executionStatus"] == "Failed"


def test_before_the_application_start_the_earliest_time_stands_in() -> None:
    events = _run_events()
    early = _fold(events[1:3])
    assert not early.start_final and early.start_ms == events[1].event_time_ms
    assert _fold([*events[1:3], events[0]]).start_ms == events[0].event_time_ms


def test_a_status_read_back_keeps_failed() -> None:
    task = {"name": "t", "executionStatus": "Failed"}
    state = state_from_status(
        "r", {"timestamp": 5, "executionStatus": "Failed", "taskStatus": [task]}
    )
    assert state is not None and state.status == "Failed"
    completed = parse_run_event(_event("05_COMPLETE"))
    assert completed is not None and advance(state, completed, None).status == "Failed"


# -- edges --------------------------------------------------------------------------------


def _view(fqn: str, *columns: str) -> EntityView:
    return EntityView(
        id=fqn, type="table", fqn=fqn, columns=frozenset(f"{fqn}.{c}" for c in columns)
    )


def test_edges_come_from_complete_and_from_running_until_the_action_ended() -> None:
    start, running, complete = (parse_run_event(_event(n)) for n in ("02", "03", "04"))
    assert start is not None and running is not None and complete is not None
    assert edge_pairs(start, False) == []
    assert edge_pairs(running, False) == [(0, 0), (1, 0)]
    assert edge_pairs(running, True) == []
    assert edge_pairs(complete, True) == [(0, 0), (1, 0)]


def test_column_lineage_maps_to_column_fqns_and_drops_unknown_columns() -> None:
    event = parse_run_event(_event("04_COMPLETE"))
    assert event is not None
    orders = _view("s.d.sales.orders", "order_id", "amount")  # no ordered_at, no customer_id
    out = _view("s.d.reporting.r", "revenue", "orders")  # no country, no segment
    details, dropped = lineage_details(
        orders, out, column_pairs(event.inputs[0], event.outputs[0]),
        pipeline_id="p", source=source_of(event.producer), sql=event.sql,
    )  # fmt: skip
    assert details["columnsLineage"] == [
        {"fromColumns": ["s.d.sales.orders.amount"], "toColumn": "s.d.reporting.r.revenue"},
        {"fromColumns": ["s.d.sales.orders.order_id"], "toColumn": "s.d.reporting.r.orders"},
    ]
    assert dropped == 0  # orders' sources of the other columns are indirect or customers'
    customers = _view("s.d.crm.customers", "customer_id")
    _, dropped = lineage_details(
        customers, out, column_pairs(event.inputs[1], event.outputs[0]),
        pipeline_id="p", source="SparkLineage", sql="",
    )  # fmt: skip
    assert dropped == 2  # country and segment: neither in customers nor in the output


def test_merging_keeps_both_writers_columns_and_spots_no_change() -> None:
    a = {"pipeline": {"id": "p1"}, "source": "SparkLineage",
         "columnsLineage": [{"fromColumns": ["t1.a"], "toColumn": "t2.a"}]}  # fmt: skip
    b = {"pipeline": {"id": "p2"}, "source": "SparkLineage",
         "columnsLineage": [{"fromColumns": ["t1.b"], "toColumn": "t2.b"},
                            {"fromColumns": ["t1.c"], "toColumn": "t2.a"}]}  # fmt: skip
    merged = merge_details(a, b)
    assert merged["pipeline"] == {"id": "p2"}
    assert merged["columnsLineage"] == [
        {"fromColumns": ["t1.a", "t1.c"], "toColumn": "t2.a"},
        {"fromColumns": ["t1.b"], "toColumn": "t2.b"},
    ]
    assert same_details(merged, merge_details(merged, b))
    assert not same_details(a, merged) and not same_details(None, merged)


def test_the_pipeline_is_the_application_unless_the_openmetadata_facet_names_it() -> None:
    event = parse_run_event(_event("04_COMPLETE"))
    assert event is not None
    spec = pipeline_spec(event, "spark")
    assert (spec.fqn, spec.display_name) == ("spark.orders_daily", "orders_daily")
    doc = json.loads(_event("04_COMPLETE"))
    doc["job"]["facets"]["openmetadata"] = {"pipelineName": "orders.nightly", "other": 1}
    named = parse_run_event(json.dumps(doc).encode())
    assert named is not None
    assert pipeline_spec(named, "spark").fqn == 'spark."orders.nightly"'
