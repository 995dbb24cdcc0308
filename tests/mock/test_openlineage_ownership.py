"""2.0: an OpenLineage job's ``ownership`` facet sets the pipeline's owners, as the
``ownershipUpdateMode`` setting says (``replace`` by default, or ``append``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from mock_support import TOKEN, catalog, run_event

from relay.testing.mock_openmetadata import CatalogError, MockOpenMetadata, build_fqn

PIPELINE = build_fqn(
    "openlineage", "default-nightly_etl.execute_insert_into_hive_table.sales_daily_revenue"
)


def _with_principals() -> dict[str, Any]:
    data = catalog()
    data["users"] = [{"name": "jdoe"}, {"name": "Data"}]
    data["teams"] = [{"name": "data"}, {"name": "sales", "teamType": "Department"}]
    return data


@pytest.fixture
async def owned(server_version: str) -> AsyncIterator[MockOpenMetadata]:
    data = _with_principals()
    async with MockOpenMetadata(tokens=[TOKEN], catalog=data, version=server_version) as mock:
        yield mock


async def _post(client: aiohttp.ClientSession, mock: MockOpenMetadata, *owners: str) -> None:
    event = run_event()
    event["job"]["facets"] = {"ownership": {"owners": [{"name": name} for name in owners]}}
    async with client.post(f"{mock.url}/v1/openlineage/lineage", json=event) as resp:
        assert resp.status == 200, await resp.text()


def _owners(mock: MockOpenMetadata) -> list[tuple[str, str]]:
    pipeline = mock.entity("pipeline", PIPELINE)
    assert pipeline is not None
    return [(owner["type"], owner["name"]) for owner in pipeline["owners"]]


async def test_replace_is_the_default(
    owned: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await _post(client, owned, "user:JDOE", "data", "sales", "nobody")
    # A bare name is a Group team first; "sales" is a Department, not an owner; "nobody" is
    # unknown: both are skipped.
    assert _owners(owned) == [("user", "jdoe"), ("team", "data")]
    await _post(client, owned, "user:data")
    assert _owners(owned) == [("user", "Data")]
    await _post(client, owned, "nobody")  # nothing resolved: owners stay
    assert _owners(owned) == [("user", "Data")]


async def test_append_keeps_the_owners_there_are(
    owned: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    async with client.put(
        f"{owned.control_url}/mock/openlineage/settings", json={"ownershipUpdateMode": "append"}
    ) as resp:
        assert resp.status == 200
    await _post(client, owned, "jdoe")
    await _post(client, owned, "team:data", "jdoe")
    assert _owners(owned) == [("user", "jdoe"), ("team", "data")]
    pipeline = owned.entity("pipeline", PIPELINE)
    assert pipeline is not None
    assert pipeline["version"] == 0.3  # created, then two owner changes


@pytest.mark.parametrize("server_version", ["1.13.0"])
async def test_1_13_ignores_the_facet(
    owned: MockOpenMetadata, client: aiohttp.ClientSession
) -> None:
    await _post(client, owned, "jdoe")
    assert _owners(owned) == []


def test_catalog_principals_need_names() -> None:
    data = catalog()
    data["users"] = [{"displayName": "No Name"}]
    with pytest.raises(CatalogError, match=r"catalog users\[0\] needs a non-empty name"):
        MockOpenMetadata(catalog=data)
