"""Bearer-token authentication with OpenMetadata's 401 bodies."""

from __future__ import annotations

import time

import aiohttp
from mock_support import AUTH, ORDERS, TOKEN, make_jwt

from relay.testing.mock_openmetadata import MockOpenMetadata


async def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_version_needs_no_token(mock: MockOpenMetadata) -> None:
    status, body = await _get(f"{mock.url}/v1/system/version", {})
    assert status == 200
    assert body["version"] == "2.0.7"  # the default: the current 2.0 release
    assert set(body) == {"version", "revision", "timestamp"}


async def test_missing_token_is_401_token_not_present(mock: MockOpenMetadata) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        status, body = await _get(f"{mock.url}/v1/tables/name/{ORDERS}", headers)
        assert (status, body) == (
            401,
            {"code": 401, "message": "Not Authorized! Token not present"},
        )


async def test_unknown_token_is_401_invalid_token(mock: MockOpenMetadata) -> None:
    status, body = await _get(
        f"{mock.url}/v1/tables/name/{ORDERS}", {"Authorization": "Bearer not-the-token"}
    )
    assert (status, body) == (401, {"code": 401, "message": "Not Authorized! Invalid Token"})


async def test_expired_jwt_is_refused_and_a_fresh_one_accepted() -> None:
    expired = make_jwt({"sub": "ingestion-bot", "exp": int(time.time()) - 60})
    fresh = make_jwt({"sub": "ingestion-bot", "exp": int(time.time()) + 3600})
    async with MockOpenMetadata(tokens=[expired, fresh]) as mock:
        url = f"{mock.url}/v1/services/pipelineServices/name/spark"
        status, body = await _get(url, {"Authorization": f"Bearer {expired}"})
        assert (status, body) == (401, {"code": 401, "message": "Expired token!"})
        status, body = await _get(url, {"Authorization": f"Bearer {fresh}"})
        assert status == 404  # authenticated; the service just does not exist
        assert body["message"] == "pipelineService instance for spark not found"


async def test_without_configured_tokens_any_unexpired_token_passes() -> None:
    async with MockOpenMetadata(tokens=None) as mock:
        url = f"{mock.url}/v1/tables/name/x.y.z.t"
        assert (await _get(url, {"Authorization": "Bearer anything"}))[0] == 404
        expired = make_jwt({"exp": 1})
        assert (await _get(url, {"Authorization": f"Bearer {expired}"}))[1]["message"] == (
            "Expired token!"
        )
        assert (await _get(url, {}))[0] == 401


async def test_token_rotation_through_the_control_api(mock: MockOpenMetadata) -> None:
    url = f"{mock.url}/v1/tables/name/{ORDERS}"
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{mock.control_url}/mock/tokens", json={"tokens": ["rotated"]}) as r,
    ):
        assert r.status == 200
    assert (await _get(url, AUTH))[1]["message"] == "Not Authorized! Invalid Token"
    assert (await _get(url, {"Authorization": "Bearer rotated"}))[0] == 200
    mock.set_tokens([TOKEN])
    assert (await _get(url, AUTH))[0] == 200


async def test_updated_by_comes_from_the_jwt_subject() -> None:
    token = make_jwt({"sub": "spark-relay-bot", "exp": int(time.time()) + 3600})
    async with (
        MockOpenMetadata(tokens=[token]) as mock,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.put(
            f"{mock.url}/v1/services/pipelineServices",
            json={"name": "spark", "serviceType": "Spark"},
        ) as resp,
    ):
        assert resp.status == 201
        assert (await resp.json())["updatedBy"] == "spark-relay-bot"
