"""The version switch: 2.0.7 by default, 1.13 on request, and the request models of each.

Each 2.0 difference is sent, as a client would, to a mock answering as 2.0.7 and to one
answering as 1.13.0. With the reference folder present, what the 1.13 mock did is also judged
by the 1.13 JSON Schemas, and the 2.0 mock must differ from them exactly on these bodies.
Sources: the issue's list (checked against a 2.0.7 server) and OpenMetadata's 1.13 -> 2.0
contract-change notes (names, task names).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schema_oracle as oracle
from mock_support import TOKEN, catalog, run_event

from relay.testing.mock_openmetadata import DEFAULT_SERVER_VERSION, MockOpenMetadata
from relay.testing.mock_openmetadata._cli import build_parser
from relay.testing.processes import MockProcess

SCHEMA = "hive_prod.warehouse.sales"
_TABLE = {"name": "v", "databaseSchema": SCHEMA, "columns": [{"name": "id", "dataType": "INT"}]}

# (collection, body, accepted by 2.0, accepted by 1.13)
CASES: list[tuple[str, dict[str, Any], bool, bool]] = [
    ("tables", {**_TABLE, "aliases": ["v_alias"]}, True, False),
    ("tables", {**_TABLE, "tableType": "SemanticView"}, True, False),
    ("tables", {**_TABLE, "tableType": "View"}, True, True),
    ("services/databaseServices", {"name": "q", "serviceType": "QuestDB"}, True, False),
    ("services/databaseServices", {"name": "b", "serviceType": "SapBw4Hana"}, True, False),
    ("services/databaseServices", {"name": "s", "serviceType": "SapSuccessFactors"}, True, False),
    ("services/pipelineServices", {"name": "p", "serviceType": "Prefect"}, True, False),
    ("services/pipelineServices", {"name": "h", "serviceType": "SapBw4HanaPipeline"}, True, False),
    (
        "services/pipelineServices",
        {"name": "st", "serviceType": "Spark", "style": {"color": "#336699"}},
        True,
        False,
    ),
    ("pipelines", {"name": "e", "service": "openlineage", "tasks": [{"name": ""}]}, False, True),
    ("pipelines", {"name": "f", "service": "openlineage", "tasks": [{"name": "t"}]}, True, True),
    ("pipelines", {"name": "g", "service": "openlineage", "tasks": [{"name": "a>b"}]}, False, True),
    ("tables", {**_TABLE, "name": 'say "hi"'}, False, True),
    ("tables", {**_TABLE, "name": "a>b"}, False, True),
    ("tables", {**_TABLE, "columns": [{"name": "x\ty", "dataType": "INT"}]}, False, True),
    ("databaseSchemas", {"name": "s>1", "database": "hive_prod.warehouse"}, False, True),
]


@pytest.fixture
async def pair() -> AsyncIterator[dict[str, MockOpenMetadata]]:
    async with (
        MockOpenMetadata(tokens=[TOKEN], catalog=catalog()) as v2,
        MockOpenMetadata(tokens=[TOKEN], catalog=catalog(), version="1.13.0") as v1,
    ):
        yield {"2.0": v2, "1.13": v1}


async def _put(client: aiohttp.ClientSession, mock: MockOpenMetadata, path: str, body: Any) -> int:
    async with client.put(f"{mock.url}/v1/{path}", json=body) as resp:
        return resp.status


async def test_default_version_and_the_switch(client: aiohttp.ClientSession) -> None:
    async with MockOpenMetadata(tokens=[TOKEN], catalog=catalog()) as mock:
        assert DEFAULT_SERVER_VERSION == "2.0.7"
        async with client.get(f"{mock.url}/v1/system/version") as resp:
            assert (await resp.json())["version"] == "2.0.7"
        aliased = {**_TABLE, "aliases": ["x"]}
        assert await _put(client, mock, "tables", aliased) == 201
        async with client.put(
            f"{mock.control_url}/mock/version", json={"version": "1.13.0"}
        ) as resp:
            assert (resp.status, await resp.json()) == (200, {"version": "1.13.0"})
        async with client.get(f"{mock.url}/v1/system/version") as resp:
            assert (await resp.json())["version"] == "1.13.0"
        assert await _put(client, mock, "tables", aliased) == 400  # 1.13 from now on
        async with client.put(f"{mock.control_url}/mock/version", json={"version": "2"}) as resp:
            assert resp.status == 400
            assert "MAJOR.MINOR.PATCH" in (await resp.json())["message"]
        mock.set_server_version("2.0.7")
        assert mock.server_version == "2.0.7"
        async with client.get(f"{mock.control_url}/mock/version") as resp:
            assert await resp.json() == {"version": "2.0.7"}
        assert await _put(client, mock, "tables", aliased) == 200


@pytest.mark.slow
async def test_command_line_answers_as_the_version_asked_for(
    client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with MockProcess(tmp_path, args=("--server-version", "1.13.0")) as mock:
        async with client.get(f"{mock.url}/v1/system/version") as resp:
            assert (await resp.json())["version"] == "1.13.0"
        async with client.get(f"{mock.control_url}/mock/version") as resp:
            assert await resp.json() == {"version": "1.13.0"}
    assert mock.stop() == 0  # it answers SIGTERM by exiting cleanly


def test_command_line_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([]).server_version == "2.0.7"
    assert parser.parse_args(["--server-version", "1.13.0"]).server_version == "1.13.0"
    with pytest.raises(SystemExit):
        parser.parse_args(["--server-version", "latest"])
    assert "is not MAJOR.MINOR.PATCH" in capsys.readouterr().err


@pytest.mark.parametrize(("collection", "body", "v2", "v1"), CASES)
async def test_request_models_follow_the_version(
    pair: dict[str, MockOpenMetadata],
    client: aiohttp.ClientSession,
    collection: str,
    body: dict[str, Any],
    v2: bool,
    v1: bool,
) -> None:
    got = {
        name: await _put(client, mock, collection, copy.deepcopy(body))
        for name, mock in pair.items()
    }
    assert got == {"2.0": 201 if v2 else 400, "1.13": 201 if v1 else 400}


@pytest.mark.parametrize("field", ["producer", "schemaURL"])
@pytest.mark.parametrize("version", ["2.0", "1.13"])
async def test_openlineage_producer_and_schema_url_are_uris(
    pair: dict[str, MockOpenMetadata], client: aiohttp.ClientSession, field: str, version: str
) -> None:
    """Both are ``java.net.URI`` fields of the server's event class: a string ``URI.create``
    refuses is a 400, in either version."""
    mock = pair[version]
    event = run_event()
    event[field] = "spark job 1"
    async with client.post(f"{mock.url}/v1/openlineage/lineage", json=event) as resp:
        body = await resp.json()
        assert resp.status == 400
        assert "java.net.URI" in body["message"]
        assert f'(field "{field}")' in body["message"]
    event[field] = "urn:spark:job%201"  # relative or opaque URIs are URIs too
    async with client.post(f"{mock.url}/v1/openlineage/lineage", json=event) as resp:
        assert resp.status in (200, 400)
        assert "java.net.URI" not in (await resp.json()).get("message", "")


async def test_the_1_13_mock_agrees_with_the_1_13_schemas(
    pair: dict[str, MockOpenMetadata], client: aiohttp.ClientSession, shared_dir: Path
) -> None:
    for collection, body, _, _ in CASES:
        await _put(client, pair["1.13"], collection, copy.deepcopy(body))
        await _put(client, pair["2.0"], collection, copy.deepcopy(body))
    assert oracle.disagreements(shared_dir, pair["1.13"].requests) == []
    differing = oracle.disagreements(shared_dir, pair["2.0"].requests)
    assert len(differing) == sum(v2 != v1 for _, _, v2, v1 in CASES), differing


async def test_ownership_facet_and_setting_are_2_0(
    pair: dict[str, MockOpenMetadata], client: aiohttp.ClientSession
) -> None:
    event = run_event()
    event["job"]["facets"] = {"ownership": {"owners": [{"name": "team:data"}]}}
    nameless = copy.deepcopy(event)
    nameless["job"]["facets"]["ownership"]["owners"] = [{"type": "MAINTAINER"}]
    statuses = {}
    for version, mock in pair.items():
        for label, body in (("named", event), ("nameless", nameless)):
            async with client.post(f"{mock.url}/v1/openlineage/lineage", json=body) as resp:
                statuses[version, label] = resp.status
    assert statuses == {
        ("2.0", "named"): 200,
        ("2.0", "nameless"): 400,  # 2.0 reads the facet: an owner needs a name
        ("1.13", "named"): 200,
        ("1.13", "nameless"): 200,  # 1.13 took any job facet as it came
    }
    setting = {"ownershipUpdateMode": "append"}
    url = "/mock/openlineage/settings"
    async with client.put(pair["2.0"].control_url + url, json=setting) as resp:
        assert (resp.status, (await resp.json())["ownershipUpdateMode"]) == (200, "append")
    async with client.put(pair["1.13"].control_url + url, json=setting) as resp:
        assert resp.status == 400
        assert "came with OpenMetadata 2.0" in (await resp.json())["message"]
    async with client.put(pair["2.0"].control_url + url, json={"ownershipUpdateMode": "x"}) as resp:
        assert resp.status == 400
