"""The command line, catalog seeding and HTTPS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from mock_support import CATALOG_FILE, ORDERS

from relay.testing.mock_openmetadata import CatalogError, MockOpenMetadata, cli_main, load_catalog
from relay.testing.mock_openmetadata._store import Store
from relay.testing.processes import MockProcess


@pytest.mark.slow
async def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    faults = json.dumps({"mode": "error", "status": 502, "path": "/api/v1/lineage"})
    with MockProcess(
        tmp_path, token="cli-token", catalog=CATALOG_FILE, args=("--faults", faults)
    ) as mock:
        headers = {"Authorization": "Bearer cli-token"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(f"{mock.url}/v1/tables/name/{ORDERS}") as resp:
                assert resp.status == 200
            async with session.put(f"{mock.url}/v1/lineage", json={}) as resp:
                assert resp.status == 502
            async with session.get(f"{mock.control_url}/mock/requests") as resp:
                assert [r["status"] for r in await resp.json()] == [200, 502]
    assert mock.stop() == 0  # it answers SIGTERM by exiting cleanly


@pytest.mark.slow
async def test_command_line_serves_https(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls = ("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    with MockProcess(tmp_path, args=tls) as mock:
        assert mock.url.startswith("https://127.0.0.1:")
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{mock.url}/v1/system/version", ssl=client_context) as resp,
        ):
            assert resp.status == 200
    assert mock.stop() == 0


def test_command_line_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["--listen", "127.0.0.1:0", "--catalog", str(tmp_path / "none.json")]) == 2
    assert "cannot read catalog file" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"tables": [{"name": "t", "databaseSchema": "a.b.c", "columns": []}]}')
    assert cli_main(["--listen", "127.0.0.1:0", "--catalog", str(broken)]) == 2
    assert "catalog tables[0] cannot be created: databaseSchema instance for a.b.c not found" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        cli_main(["--listen", "nowhere"])
    assert "is not HOST:PORT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["--tls-cert", "cert.pem"])
    capsys.readouterr()
    # The project's command line hands the subcommand over unchanged.
    relay_cli = pytest.importorskip("relay._cli")
    missing = str(tmp_path / "none.json")
    assert (
        relay_cli.main(["mock-openmetadata", "--listen", "127.0.0.1:0", "--catalog", missing]) == 2
    )
    assert "cannot read catalog file" in capsys.readouterr().err


def test_catalog_items_are_validated_like_api_bodies() -> None:
    with pytest.raises(
        CatalogError, match=r"catalog services/databaseServices\[0\] is invalid: .*Hiv"
    ):
        load_catalog(Store(), {"databaseServices": [{"name": "h", "serviceType": "Hiv"}]})
    with pytest.raises(CatalogError, match=r"unknown catalog collection\(s\) \['topics'\]"):
        load_catalog(Store(), {"topics": []})
    pinned = "0b7d5c3e-2f1a-4c6b-9d8e-7f6a5b4c3d2e"
    store = Store()
    load_catalog(
        store, {"pipelineServices": [{"name": "spark", "serviceType": "Spark", "id": pinned}]}
    )
    assert store.get_by_fqn("pipelineService", "spark")["id"] == pinned


async def test_catalog_from_file_and_reset_restores_it(client: aiohttp.ClientSession) -> None:
    async with MockOpenMetadata(catalog=CATALOG_FILE) as mock:
        orders = mock.entity("table", ORDERS)
        assert orders is not None
        async with client.put(
            f"{mock.url}/v1/services/pipelineServices",
            json={"name": "spark", "serviceType": "Spark"},
        ) as resp:
            assert resp.status == 201
        async with client.post(f"{mock.control_url}/mock/reset") as resp:
            state = await resp.json()
        assert state["entities"]["pipelineService"] == 1  # the seeded "openlineage" only
        assert state["entities"]["table"] == 3
        assert mock.entity("pipelineService", "spark") is None
        reseeded = mock.entity("table", ORDERS)
        assert reseeded is not None


async def test_https_with_a_private_ca() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with MockOpenMetadata(tokens=["t"]) as plain:
        assert plain.url.startswith("http://")
    mock = MockOpenMetadata(tokens=["t"])
    await mock.start(ssl_context=server_context)
    try:
        assert mock.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{mock.url}/v1/system/version", ssl=client_context) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{mock.url}/v1/system/version")  # system CAs: refused
            await mock.set_faults({"mode": "down"})
            await mock.clear_faults()  # the port comes back with TLS
            async with session.get(f"{mock.url}/v1/system/version", ssl=client_context) as resp:
                assert resp.status == 200
    finally:
        await mock.aclose()
