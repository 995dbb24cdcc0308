"""OpenMetadata's native OpenLineage endpoints: semantics, responses, injected failures."""

from __future__ import annotations

import gc
import json
import uuid
from typing import Any

import aiohttp
from mock_support import ORDERS, REVENUE, TOKEN, catalog, hive_dataset, run_event

from relay.testing.mock_openmetadata import EventFailure, MockOpenMetadata, OpenLineageSettings

BATCH = "/v1/openlineage/lineage/batch"
SINGLE = "/v1/openlineage/lineage"


async def _post(client: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with client.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_complete_event_writes_one_edge_with_column_lineage(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    event = run_event(parent_job="nightly_etl")
    status, body = await _post(client, mock.url + SINGLE, event)
    assert status == 200
    assert body == {
        "status": "success",
        "message": "Created 1 lineage edge(s)",
        "lineageEdgesCreated": 1,
    }
    [edge] = mock.lineage_edges
    assert edge["fromEntity"]["fullyQualifiedName"] == ORDERS
    assert edge["toEntity"]["fullyQualifiedName"] == REVENUE
    details = edge["lineageDetails"]
    assert details["source"] == "OpenLineage"
    assert details["columnsLineage"] == [
        {"fromColumns": [f"{ORDERS}.amount"], "toColumn": f"{REVENUE}.revenue", "function": "SUM"}
    ]
    assert details["description"].startswith("Lineage from OpenLineage event for job: default/")
    # The pipeline is the parent job, auto-created under the default "openlineage" service.
    assert details["pipeline"]["fullyQualifiedName"] == "openlineage.default-nightly_etl"
    assert mock.openlineage_events == [event]


async def test_batch_mixes_success_skip_and_failure(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    events = [
        run_event(),
        run_event(event_type="START"),  # filtered: COMPLETE only by default
        run_event(
            inputs=[hive_dataset("nowhere", "missing")], outputs=[hive_dataset("nowhere", "gone")]
        ),
        run_event(inputs=[]),  # no inputs: skipped
    ]
    status, body = await _post(client, mock.url + BATCH, {"events": events})
    assert status == 200
    assert body["status"] == "partial_success"
    assert body["summary"] == {"received": 4, "successful": 1, "failed": 1, "skipped": 2}
    assert body["lineageEdgesCreated"] == 1
    assert body["failedEvents"] == [
        {
            "index": 2,
            "reason": "No lineage edges created: 2 dataset(s) could not be resolved",
            "retriable": False,
        }
    ]
    assert mock.openlineage_events == events


async def test_every_event_failing_is_400(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    unresolved = run_event(inputs=[hive_dataset("x", "a")], outputs=[hive_dataset("x", "b")])
    status, body = await _post(client, mock.url + BATCH, {"events": [unresolved]})
    assert status == 400
    assert body["status"] == "failure"
    status, body = await _post(client, mock.url + SINGLE, unresolved)
    assert (status, body["status"], body["lineageEdgesCreated"]) == (400, "failure", 0)


async def test_repeated_events_upsert_one_edge(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        status, _ = await _post(client, mock.url + BATCH, {"events": [run_event()]})
        assert status == 200
    assert len(mock.lineage_edges) == 1
    assert len(mock.openlineage_events) == 3


async def test_injected_event_failures_drive_partial_success(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    doomed = str(uuid.uuid4())
    mock.set_openlineage_failures(
        [
            EventFailure(run_id=doomed, reason="database busy", retriable=True),
            {"job_name": "poison_*", "reason": "cannot map", "retriable": False},
        ]
    )
    events = [run_event(run_id=doomed), run_event(), run_event(job="poison_job")]
    status, body = await _post(client, mock.url + BATCH, {"events": events})
    assert status == 200
    assert body["status"] == "partial_success"
    assert body["failedEvents"] == [
        {"index": 0, "reason": "Error processing event: database busy", "retriable": True},
        {"index": 2, "reason": "Error processing event: cannot map", "retriable": False},
    ]
    # A single event: retriable -> 500 (OpenMetadata's exception path), permanent -> 400.
    assert (await _post(client, mock.url + SINGLE, run_event(run_id=doomed)))[0] == 500
    assert (await _post(client, mock.url + SINGLE, run_event(job="poison_x")))[0] == 400


async def test_failure_rules_over_control_api_with_times(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    rule = {"job_name": "*", "reason": "flaky", "retriable": True, "times": 1}
    async with client.put(f"{mock.control_url}/mock/openlineage/failures", json=rule) as resp:
        assert resp.status == 200
    assert (await _post(client, mock.url + BATCH, {"events": [run_event()]}))[0] == 400
    assert (await _post(client, mock.url + BATCH, {"events": [run_event()]}))[0] == 200


async def test_invalid_batch_is_rejected_whole(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    bad = run_event()
    del bad["schemaURL"]
    status, body = await _post(client, mock.url + BATCH, {"events": [run_event(), bad]})
    assert status == 400
    assert body == {"code": 400, "message": "[events[1].schemaURL must not be null]"}
    status, body = await _post(client, mock.url + BATCH, {"events": []})
    assert (status, body["message"]) == (400, "[events size must be between 1 and 2147483647]")
    assert mock.openlineage_events == []


async def test_large_batches_answer_alike_and_leave_the_gc_on(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    """Bodies large enough to be decoded with the GC paused: same answers, GC on afterwards,
    whether the batch was processed, refused by validation or not even JSON."""
    events = [run_event() for _ in range(150)]
    assert len(json.dumps({"events": events})) > 64 * 1024
    status, body = await _post(client, mock.url + BATCH, {"events": events})
    assert (status, body["summary"]["successful"], body["lineageEdgesCreated"]) == (200, 150, 150)
    assert gc.isenabled()
    bad = [*events[:-1], {**events[-1], "unknown": 1}]
    status, body = await _post(client, mock.url + BATCH, {"events": bad})
    assert (status, body["message"]) == (
        400,
        'Unrecognized field "unknown" (class org.openmetadata.schema.api.lineage.openlineage'
        ".OpenLineageRunEvent), not marked as ignorable",
    )
    assert gc.isenabled()
    raw = b'{"events": [' + b" " * 70_000
    async with client.post(mock.url + BATCH, data=raw) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"].startswith("Unable to process JSON")
    assert gc.isenabled()
    assert len(mock.openlineage_events) == 150


async def test_namespace_mapping_and_no_auto_create() -> None:
    settings = OpenLineageSettings(
        auto_create_entities=False,
        namespace_to_service={"postgres://db.internal:5432": "hive_prod"},
        event_type_filter=("START", "COMPLETE"),
    )
    async with (
        MockOpenMetadata(tokens=[TOKEN], catalog=catalog(), openlineage=settings) as mock,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        mapped = {"namespace": "postgres://db.internal:5432/warehouse", "name": "sales.orders"}
        event = run_event(event_type="START", inputs=[mapped])
        status, body = await _post(client, mock.url + SINGLE, event)
        assert (status, body["lineageEdgesCreated"]) == (200, 1)
        assert mock.lineage_edges[0]["fromEntity"]["fullyQualifiedName"] == ORDERS
        assert "pipeline" not in mock.lineage_edges[0]["lineageDetails"]  # no auto-create
        # Like OpenMetadata, the last two dot-parts are schema and table: a table whose own
        # name holds a dot cannot be resolved this way.
        dotted = {"namespace": "postgres://db.internal:5432", "name": "public.customers.v2"}
        status, body = await _post(client, mock.url + SINGLE, run_event(inputs=[dotted]))
        assert (status, body["status"]) == (400, "failure")
        missing = run_event(outputs=[hive_dataset("sales", "new_t")])
        status, body = await _post(client, mock.url + SINGLE, missing)
        assert (status, body["status"]) == (400, "failure")
        assert mock.entity("table", "hive_prod.warehouse.sales.new_t") is None
        # Resolutions are remembered only until the catalog or the settings change: the same
        # event resolves once the table is created through the API ...
        table = {
            "name": "new_t",
            "databaseSchema": "hive_prod.warehouse.sales",
            "columns": [{"name": "id", "dataType": "BIGINT"}],
        }
        async with client.put(mock.url + "/v1/tables", json=table) as resp:
            assert resp.status == 201
        status, body = await _post(client, mock.url + SINGLE, missing)
        assert (status, body["lineageEdgesCreated"]) == (200, 1)
        # ... and a dataset refused without auto-create is created once it is switched on.
        later = run_event(outputs=[hive_dataset("sales", "later_t")])
        assert (await _post(client, mock.url + SINGLE, later))[0] == 400
        switched = {**settings.to_json(), "autoCreateEntities": True}
        async with client.put(f"{mock.control_url}/mock/openlineage/settings", json=switched) as r:
            assert r.status == 200
        assert (await _post(client, mock.url + SINGLE, later))[0] == 200
        assert mock.entity("table", "hive_prod.warehouse.sales.later_t") is not None


async def test_auto_create_makes_the_missing_table_from_the_schema_facet(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    output = hive_dataset("sales", "fresh_table")
    output["facets"]["schema"] = {
        "_producer": "spark",
        "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
        "fields": [{"name": "id", "type": "long"}, {"name": "label", "type": "string"}],
    }
    status, body = await _post(client, mock.url + SINGLE, run_event(outputs=[output]))
    assert (status, body["lineageEdgesCreated"]) == (200, 1)
    table = mock.entity("table", "hive_prod.warehouse.sales.fresh_table")
    assert table is not None
    assert [(c["name"], c["dataType"]) for c in table["columns"]] == [
        ("id", "BIGINT"),
        ("label", "VARCHAR"),
    ]


async def test_endpoints_absent_like_an_older_server(client: aiohttp.ClientSession) -> None:
    async with MockOpenMetadata(tokens=[TOKEN], openlineage_endpoints=False) as old:
        status, body = await _post(client, old.url + BATCH, {"events": [run_event()]})
        assert (status, body["code"]) == (404, 404)
        assert (await _post(client, old.url + SINGLE, run_event()))[0] == 404


async def test_disabled_setting_answers_503(client: aiohttp.ClientSession) -> None:
    settings = OpenLineageSettings(enabled=False)
    async with MockOpenMetadata(tokens=[TOKEN], openlineage=settings) as mock:
        status, body = await _post(client, mock.url + BATCH, {"events": [run_event()]})
        assert (status, body["message"]) == (503, "OpenLineage API is disabled")


async def test_control_api_shows_events_state_lineage_and_takes_settings(
    mock: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    control = mock.control_url
    events = [run_event(), run_event(event_type="START")]
    assert (await _post(client, mock.url + BATCH, {"events": events}))[0] == 200
    async with client.get(f"{control}/mock/openlineage-events") as resp:
        assert await resp.json() == events
    async with client.post(f"{control}/mock/openlineage-events/take") as resp:
        assert await resp.json() == events  # returned and removed in one step
    async with client.post(f"{control}/mock/openlineage-events/take") as resp:
        assert await resp.json() == []
    async with client.get(f"{control}/mock/state") as resp:
        state = await resp.json()
    assert (state["openlineage_events"], state["lineage_edges"]) == (2, 1)
    async with client.get(f"{control}/mock/lineage") as resp:
        [edge] = await resp.json()
    assert edge["toEntity"]["fullyQualifiedName"] == REVENUE
    settings = {"eventTypeFilter": ["START"], "autoCreateEntities": False}
    async with client.put(f"{control}/mock/openlineage/settings", json=settings) as resp:
        assert (await resp.json())["eventTypeFilter"] == ["START"]
    status, body = await _post(client, mock.url + BATCH, {"events": [run_event()]})
    assert (status, body["summary"]["skipped"]) == (200, 1)  # COMPLETE is now filtered out
    async with client.put(f"{control}/mock/openlineage/settings", json={"eventTypes": []}) as resp:
        assert resp.status == 400
        assert "unknown OpenLineage setting(s) ['eventTypes']" in (await resp.json())["message"]
    async with client.delete(f"{control}/mock/openlineage-events") as resp:
        assert resp.status == 200
    assert mock.openlineage_events == []
    assert mock.openlineage_events_received == 0
