"""Inline and environment tokens: fixed at start, never shown."""

from __future__ import annotations

import logging

import pytest
from secrets_fixtures import MakeJwt, revealed

from relay._config import OpenMetadataConfig, Secret
from relay._exceptions import AuthError
from relay._observe.metrics import Metrics
from relay._secrets import Source, TokenProvider, make_token_provider
from relay.testing.fakes import FakeClock

URL = "https://om.example.com/api"


async def test_no_source_means_no_token(clock: FakeClock) -> None:
    async with make_token_provider(OpenMetadataConfig(host_port=URL), clock=clock) as provider:
        assert not provider.enabled
        assert await provider.token() is None
        assert await provider.refresh() is None
        assert "no token configured" in provider.source


async def test_inline_token_is_served_and_warned_about_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, make_jwt: MakeJwt
) -> None:
    jwt = make_jwt(clock.time() + 3600)
    config = OpenMetadataConfig(host_port=URL, jwt_token=Secret(jwt))
    with caplog.at_level(logging.DEBUG):
        provider = make_token_provider(config, clock=clock)
        async with provider:
            assert (await provider.token()) == Secret(jwt)
            assert revealed(await provider.token()) == jwt
    warnings = [r for r in caplog.records if "inline" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert jwt not in caplog.text


async def test_env_token_is_read_once_at_creation(clock: FakeClock, make_jwt: MakeJwt) -> None:
    first, second = make_jwt(clock.time() + 60, "a"), make_jwt(clock.time() + 60, "b")
    environ = {"OM_TOKEN": f"  Bearer {first}\n"}
    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    metrics = Metrics()
    async with make_token_provider(config, clock=clock, environ=environ, metrics=metrics) as p:
        environ["OM_TOKEN"] = second  # the process environment cannot change under the relay
        assert revealed(await p.token()) == first  # "Bearer " and whitespace dropped
        assert revealed(await p.token()) == first
        fetches = metrics.token_fetches.labels(source="jwt_token_env", result="ok")
        assert fetches._value.get() == 1  # cached


async def test_env_refresh_after_401_says_the_token_cannot_change(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, make_jwt: MakeJwt
) -> None:
    jwt = make_jwt(clock.time() - 10)  # already expired
    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    with caplog.at_level(logging.INFO):
        async with make_token_provider(config, clock=clock, environ={"OM_TOKEN": jwt}) as p:
            sent = await p.token()
            assert (await p.refresh(rejected=sent)) == sent
    assert caplog.text.count("expired at") == 1  # once per token, not per re-fetch
    assert "$OM_TOKEN" in caplog.text and "restart" in caplog.text
    assert jwt not in caplog.text


async def test_unset_env_variable_names_the_variable(clock: FakeClock) -> None:
    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    async with make_token_provider(config, clock=clock, environ={}) as provider:
        with pytest.raises(
            AuthError, match=r"\$OM_TOKEN \(openmetadata.jwt_token_env\) is not set"
        ):
            await provider.token()


@pytest.mark.parametrize("bad", ["two words", "line1\nline2", "caf\u00e9-token", "Bearer  "])
async def test_a_value_that_is_not_one_token_is_refused_without_echoing_it(
    clock: FakeClock, bad: str
) -> None:
    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    async with make_token_provider(config, clock=clock, environ={"OM_TOKEN": bad}) as provider:
        with pytest.raises(AuthError, match=r"\$OM_TOKEN") as info:
            await provider.token()
    for part in bad.split():
        if part.lower() != "bearer":
            assert part not in str(info.value)


async def test_closed_provider_refuses_use(clock: FakeClock) -> None:
    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    provider = make_token_provider(config, clock=clock, environ={"OM_TOKEN": "abc.def.ghi"})
    await provider.aclose()
    await provider.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await provider.token()


async def test_reprs_of_config_provider_and_token_never_show_the_value(
    clock: FakeClock, make_jwt: MakeJwt
) -> None:
    jwt = make_jwt(clock.time() + 3600)
    config = OpenMetadataConfig(host_port=URL, jwt_token=Secret(jwt))
    async with make_token_provider(config, clock=clock) as provider:
        token = await provider.token()
        shown = " ".join(
            [repr(config), str(config), repr(provider), str(provider), repr(token), str(token)]
        )
        shown += f" {token!r} {token} {[token]} {config.jwt_token}"
    assert jwt not in shown
    assert jwt.split(".")[1] not in shown  # not even the claims
    assert "openmetadata.jwt_token (inline)" in repr(provider)


async def test_fetched_tokens_are_scrubbed_from_any_log_line(clock: FakeClock) -> None:
    from relay._observe.logging import redact

    config = OpenMetadataConfig(host_port=URL, jwt_token_env="OM_TOKEN")
    value = "registered.at.fetch-time"
    async with make_token_provider(config, clock=clock, environ={"OM_TOKEN": value}) as p:
        await p.token()
    assert value not in redact(f"a library echoed {value} by mistake")


class _BrokenSource(Source):
    kind = "broken"

    def __init__(self) -> None:
        super().__init__("a source whose library fails")

    async def fetch(self) -> Secret:
        raise RuntimeError("unforeseen failure inside a client library")


async def test_an_unforeseen_source_failure_becomes_an_auth_error(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with TokenProvider(_BrokenSource(), clock=clock) as provider:
        with pytest.raises(AuthError, match="a source whose library fails failed: RuntimeError"):
            await provider.token()
