"""AWS Secrets Manager through aiobotocore against moto in server mode on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from secrets_fixtures import MakeJwt, revealed

from relay._config import AwsSecretConfig, OpenMetadataConfig
from relay._exceptions import AuthError
from relay._observe.metrics import Metrics
from relay._secrets import TokenProvider, make_token_provider
from relay.testing.fakes import FakeClock

URL = "https://om.example.com/api"
AWS_REGION = "eu-west-1"  # as the aws_env fixture sets

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
async def secrets_client(moto_server: str) -> AsyncIterator[Any]:
    """The test's own client, to create and rotate secrets."""
    async with get_session().create_client(
        "secretsmanager", region_name=AWS_REGION, endpoint_url=moto_server
    ) as client:
        yield client


def _provider(
    moto_server: str, clock: FakeClock, secret_id: str, field: str = "", **kw: Any
) -> TokenProvider:
    aws = AwsSecretConfig(
        secret_id=secret_id, region=AWS_REGION, field=field, endpoint_url=moto_server
    )
    return make_token_provider(OpenMetadataConfig(host_port=URL, aws_secret=aws), clock=clock, **kw)


def _name() -> str:
    return f"lineage-relay/test/{uuid.uuid4().hex[:8]}"


async def test_plain_string_secret_fetched_cached_and_rotated(
    moto_server: str, secrets_client: Any, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    name = _name()
    first, second = make_jwt(clock.time() + 60, "v1"), make_jwt(clock.time() + 3600, "v2")
    await secrets_client.create_secret(Name=name, SecretString=first)
    metrics = Metrics()
    async with _provider(moto_server, clock, name, metrics=metrics) as provider:
        assert revealed(await provider.token()) == first
        assert revealed(await provider.token()) == first
        assert metrics.token_fetches.labels(source="aws_secret", result="ok")._value.get() == 1
        await secrets_client.put_secret_value(SecretId=name, SecretString=second)
        sent = await provider.token()
        assert revealed(sent) == first  # cached until a 401 (or the JWT nears expiry)
        assert revealed(await provider.refresh(rejected=sent)) == second


async def test_json_secret_with_field(
    moto_server: str, secrets_client: Any, clock: FakeClock
) -> None:
    name = _name()
    doc = {"jwt": "json.field.token", "host": "om.example.com"}
    await secrets_client.create_secret(Name=name, SecretString=json.dumps(doc))
    async with _provider(moto_server, clock, name, field="jwt") as provider:
        assert revealed(await provider.token()) == "json.field.token"
        await secrets_client.put_secret_value(
            SecretId=name, SecretString=json.dumps({**doc, "jwt": "json.field.rotated"})
        )
        assert revealed(await provider.refresh()) == "json.field.rotated"


async def test_binary_secret(moto_server: str, secrets_client: Any, clock: FakeClock) -> None:
    name = _name()
    await secrets_client.create_secret(Name=name, SecretBinary=b"binary.held.token")
    async with _provider(moto_server, clock, name) as provider:
        assert revealed(await provider.token()) == "binary.held.token"


async def test_unknown_secret_names_id_and_region(moto_server: str, clock: FakeClock) -> None:
    async with _provider(moto_server, clock, "lineage-relay/absent") as provider:
        with pytest.raises(
            AuthError, match=rf"no AWS secret 'lineage-relay/absent' in {AWS_REGION}"
        ):
            await provider.token()


async def test_json_without_field_is_refused_without_echoing(
    moto_server: str, secrets_client: Any, clock: FakeClock
) -> None:
    name = _name()
    await secrets_client.create_secret(Name=name, SecretString='{"jwt": "never.shown.value"}')
    async with _provider(moto_server, clock, name) as provider:
        with pytest.raises(AuthError, match=r"holds JSON: set openmetadata.aws_secret.field") as e:
            await provider.token()
    assert "never.shown.value" not in str(e.value)


async def test_wrong_field_lists_keys_only(
    moto_server: str, secrets_client: Any, clock: FakeClock
) -> None:
    name = _name()
    await secrets_client.create_secret(Name=name, SecretString='{"jwt": "never.shown.value"}')
    async with _provider(moto_server, clock, name, field="token") as provider:
        with pytest.raises(AuthError, match=r"no key 'token' \(keys: jwt\)") as e:
            await provider.token()
    assert "never.shown.value" not in str(e.value)


async def test_field_set_on_a_plain_secret(
    moto_server: str, secrets_client: Any, clock: FakeClock
) -> None:
    name = _name()
    await secrets_client.create_secret(Name=name, SecretString="plain.never.shown")
    async with _provider(moto_server, clock, name, field="jwt") as provider:
        with pytest.raises(AuthError, match=r"is not JSON but .*field = 'jwt'") as e:
            await provider.token()
    assert "plain.never.shown" not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


async def test_no_credentials(
    moto_server: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    async with _provider(moto_server, clock, "lineage-relay/any") as provider:
        with pytest.raises(AuthError, match=r"no usable AWS credentials .*standard chain"):
            await provider.token()


async def test_debug_logging_never_shows_the_secret(
    moto_server: str, secrets_client: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = _name()
    await secrets_client.create_secret(Name=name, SecretString="debug.log.secret")
    # The test's own CreateSecret call is logged by botocore with its body (the secret);
    # only what the relay's provider logs is under test.
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        async with _provider(moto_server, clock, name) as provider:
            token = await provider.token()
            assert revealed(token) == "debug.log.secret"
            await provider.refresh(rejected=token)
    assert "debug.log.secret" not in caplog.text
