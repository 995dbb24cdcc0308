"""Vault KV v2 against a stand-in on 127.0.0.1: request shape, errors, rotation, refresh storms."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from secrets_fixtures import MakeJwt, VaultStandIn, revealed

from relay._config import OpenMetadataConfig, VaultConfig
from relay._exceptions import AuthError, ConfigError
from relay._secrets import TokenProvider, make_token_provider
from relay.testing.fakes import FakeClock

URL = "https://om.example.com/api"
API_PATH = "secret/data/lineage/openmetadata"


def _provider(
    vault: VaultStandIn,
    clock: FakeClock,
    environ: dict[str, str] | None = None,
    **vault_keys: str,
) -> TokenProvider:
    keys: dict[str, Any] = {"address": vault.address, "path": "lineage/openmetadata", **vault_keys}
    config = OpenMetadataConfig(host_port=URL, vault=VaultConfig(**keys))
    env = {"VAULT_TOKEN": vault.vault_token} if environ is None else environ
    return make_token_provider(config, clock=clock, environ=env)


async def test_reads_the_field_with_token_and_namespace(
    vault: VaultStandIn, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    jwt = make_jwt(clock.time() + 3600)
    vault.namespace = "data-platform"
    vault.secrets[API_PATH] = {"token": jwt, "note": "bot for the relay"}
    async with _provider(vault, clock, namespace="data-platform") as provider:
        assert revealed(await provider.token()) == jwt
        assert revealed(await provider.token()) == jwt  # cached
    assert len(vault.requests) == 1
    path, headers = vault.requests[0]
    assert path == f"/v1/{API_PATH}"
    assert headers["X-Vault-Token"] == vault.vault_token
    assert headers["X-Vault-Namespace"] == "data-platform"


async def test_full_api_path_custom_mount_and_field(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets["kv/data/teams/lineage"] = {"jwt": "kv.mount.token"}
    config_path = "kv/data/teams/lineage"
    async with _provider(vault, clock, path=config_path, mount="kv", field="jwt") as provider:
        assert revealed(await provider.token()) == "kv.mount.token"
    assert vault.requests[0][0] == "/v1/kv/data/teams/lineage"
    assert "X-Vault-Namespace" not in vault.requests[0][1]


async def test_rotation_is_picked_up_on_refresh(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets[API_PATH] = {"token": "first.jwt.value"}
    async with _provider(vault, clock) as provider:
        sent = await provider.token()
        vault.secrets[API_PATH] = {"token": "second.jwt.value"}
        assert await provider.token() == sent  # no change detection for Vault: cached
        assert revealed(await provider.refresh(rejected=sent)) == "second.jwt.value"
        assert revealed(await provider.token()) == "second.jwt.value"
    assert len(vault.requests) == 2


async def test_a_storm_of_401s_costs_one_fetch(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets[API_PATH] = {"token": "old.jwt.value"}
    async with _provider(vault, clock) as provider:
        sent = await provider.token()
        vault.secrets[API_PATH] = {"token": "new.jwt.value"}
        fresh = await asyncio.gather(*(provider.refresh(rejected=sent) for _ in range(20)))
        assert {revealed(t) for t in fresh} == {"new.jwt.value"}
        # Without saying which token was refused, repeats within the interval are folded too.
        await provider.refresh()
        await provider.refresh()
        assert len(vault.requests) == 2
        clock.advance(1.5)
        await provider.refresh()
        assert len(vault.requests) == 3


async def test_an_expiring_jwt_is_refetched_before_the_server_refuses_it(
    vault: VaultStandIn, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    soon = make_jwt(clock.time() + 10)  # inside the 30 s skew
    later = make_jwt(clock.time() + 3600)
    vault.secrets[API_PATH] = {"token": soon}
    async with _provider(vault, clock) as provider:
        assert revealed(await provider.token()) == soon
        assert revealed(await provider.token()) == soon  # rechecked at most every 30 s
        assert len(vault.requests) == 1
        vault.secrets[API_PATH] = {"token": later}
        clock.advance(31)
        assert revealed(await provider.token()) == later
        clock.advance(600)
        assert revealed(await provider.token()) == later
    assert len(vault.requests) == 2


async def test_vault_token_from_a_file_is_reread_each_fetch(
    vault: VaultStandIn, clock: FakeClock, tmp_path: Path
) -> None:
    vault.secrets[API_PATH] = {"token": "om.jwt.value"}
    token_file = tmp_path / "vault-agent-sink"
    token_file.write_text("s.expired-lease\n")
    async with _provider(vault, clock, environ={}, token_file=str(token_file)) as provider:
        with pytest.raises(AuthError, match=r"403.*vault.token_file .*vault-agent-sink") as info:
            await provider.token()
        assert "s.expired-lease" not in str(info.value)
        token_file.write_text(vault.vault_token)  # the agent renewed it
        clock.advance(1.5)
        assert revealed(await provider.token()) == "om.jwt.value"


async def test_403_names_the_token_source_not_the_token(
    vault: VaultStandIn, clock: FakeClock
) -> None:
    vault.secrets[API_PATH] = {"token": "om.jwt.value"}
    env = {"VAULT_TOKEN": "s.wrong-token"}
    async with _provider(vault, clock, environ=env) as provider:
        with pytest.raises(AuthError) as info:
            await provider.token()
    message = str(info.value)
    assert "403" in message and "$VAULT_TOKEN" in message and API_PATH in message
    assert "s.wrong-token" not in message and "s.wrong-token" not in repr(provider)


async def test_missing_vault_token(vault: VaultStandIn, clock: FakeClock) -> None:
    async with _provider(vault, clock, environ={}) as provider:
        with pytest.raises(AuthError, match=r"no Vault token .*\$VAULT_TOKEN"):
            await provider.token()
    assert vault.requests == []


async def test_404_names_path_and_mount(vault: VaultStandIn, clock: FakeClock) -> None:
    async with _provider(vault, clock) as provider:
        with pytest.raises(
            AuthError, match=r"no secret at 'secret/data/lineage/openmetadata'.*mount"
        ):
            await provider.token()


async def test_missing_field_lists_fields_but_not_values(
    vault: VaultStandIn, clock: FakeClock
) -> None:
    vault.secrets[API_PATH] = {"jwt": "value.that.must.not.show", "owner": "data-team"}
    async with _provider(vault, clock) as provider:
        with pytest.raises(AuthError, match=r"no field 'token' \(fields: jwt, owner\)") as info:
            await provider.token()
    assert "value.that.must.not.show" not in str(info.value)


async def test_deleted_latest_version(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets[API_PATH] = None
    async with _provider(vault, clock) as provider:
        with pytest.raises(AuthError, match="deleted or destroyed"):
            await provider.token()


async def test_sealed_vault(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.status_override = 503
    async with _provider(vault, clock) as provider:
        with pytest.raises(AuthError, match="sealed or unavailable: Vault is sealed"):
            await provider.token()


async def test_unreachable_vault(clock: FakeClock) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"http://127.0.0.1:{port}"
    config = OpenMetadataConfig(host_port=URL, vault=VaultConfig(address=address, path="x"))
    async with make_token_provider(config, clock=clock, environ={"VAULT_TOKEN": "s.t"}) as p:
        with pytest.raises(AuthError, match=rf"cannot reach Vault at {address}"):
            await p.token()


async def test_nothing_logged_carries_a_token(
    vault: VaultStandIn, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    vault.secrets[API_PATH] = {"token": "om.jwt.secret-value"}
    with caplog.at_level(logging.DEBUG):
        async with _provider(vault, clock) as provider:
            sent = await provider.token()
            vault.secrets[API_PATH] = {"token": "om.jwt.rotated-value"}
            await provider.refresh(rejected=sent)
            text = f"{provider!r} {provider!s} {sent!r} {sent!s}"
    for secret in ("secret-value", "rotated-value", vault.vault_token):
        assert secret not in caplog.text
        assert secret not in text


async def test_concurrent_first_calls_share_one_fetch(
    vault: VaultStandIn, clock: FakeClock
) -> None:
    vault.secrets[API_PATH] = {"token": "shared.jwt.value"}
    async with _provider(vault, clock) as provider:
        tokens = await asyncio.gather(*(provider.token() for _ in range(10)))
    assert {revealed(t) for t in tokens} == {"shared.jwt.value"}
    assert len(vault.requests) == 1


async def test_a_cancelled_fetch_leaves_the_provider_usable(
    vault: VaultStandIn, clock: FakeClock
) -> None:
    vault.secrets[API_PATH] = {"token": "after.cancel.value"}
    vault.gate = asyncio.Event()
    async with _provider(vault, clock) as provider:
        pending = asyncio.create_task(provider.token())
        await vault.arrived.wait()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        vault.gate.set()
        assert revealed(await provider.token()) == "after.cancel.value"


async def test_a_hanging_vault_is_cut_by_the_timeout(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets[API_PATH] = {"token": "never.arrives"}
    vault.gate = asyncio.Event()
    config = OpenMetadataConfig(
        host_port=URL,
        read_timeout_ms=200,
        vault=VaultConfig(address=vault.address, path="lineage/openmetadata"),
    )
    env = {"VAULT_TOKEN": vault.vault_token}
    async with make_token_provider(config, clock=clock, environ=env) as provider:
        with pytest.raises(
            AuthError, match=r"Vault at http://127.0.0.1:\d+ did not answer in time"
        ):
            await provider.token()


@pytest.mark.parametrize("vault", ["https"], indirect=True)
async def test_https_vault_with_a_private_ca(vault: VaultStandIn, clock: FakeClock) -> None:
    vault.secrets[API_PATH] = {"token": "over.tls.value"}
    async with _provider(vault, clock, ca_bundle=vault.ca_bundle) as provider:
        assert revealed(await provider.token()) == "over.tls.value"
    async with _provider(vault, clock) as untrusting:
        with pytest.raises(AuthError, match=r"not trusted .*openmetadata.vault.ca_bundle"):
            await untrusting.token()


def test_unusable_vault_ca_bundle_is_a_config_error(clock: FakeClock, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    vault = VaultConfig(address="https://vault:8200", path="x", ca_bundle=str(bogus))
    config = OpenMetadataConfig(host_port=URL, vault=vault)
    with pytest.raises(ConfigError, match=r"openmetadata.vault.ca_bundle = .*bogus.pem"):
        make_token_provider(config, clock=clock, environ={})
