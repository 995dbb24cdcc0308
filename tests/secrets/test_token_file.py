"""Token files: cached, re-read on change, including the Kubernetes `..data` symlink swap."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from secrets_fixtures import MakeJwt, revealed

from relay._config import OpenMetadataConfig
from relay._exceptions import AuthError
from relay._observe.metrics import Metrics
from relay._secrets import TokenProvider, make_token_provider
from relay.testing.fakes import FakeClock

URL = "https://om.example.com/api"


def _provider(path: Path, clock: FakeClock, metrics: Metrics | None = None) -> TokenProvider:
    config = OpenMetadataConfig(host_port=URL, jwt_token_file=str(path))
    return make_token_provider(config, clock=clock, metrics=metrics)


def _fetches(metrics: Metrics, result: str = "ok") -> float:
    value: float = metrics.token_fetches.labels(source="jwt_token_file", result=result)._value.get()
    return value


async def test_file_token_is_read_once_while_unchanged(
    tmp_path: Path, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    path = tmp_path / "token"
    path.write_text(make_jwt(clock.time() + 3600) + "\n")
    metrics = Metrics()
    async with _provider(path, clock, metrics) as provider:
        first = await provider.token()
        for _ in range(5):
            assert await provider.token() is first
    assert _fetches(metrics) == 1


async def test_rewritten_file_is_picked_up(
    tmp_path: Path, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    path = tmp_path / "token"
    old, new = make_jwt(clock.time() + 60, "old-bot"), make_jwt(clock.time() + 3600, "new-bot")
    path.write_text(old)
    async with _provider(path, clock) as provider:
        assert revealed(await provider.token()) == old
        path.write_text(new)  # in place: new size and mtime
        assert revealed(await provider.token()) == new


async def test_atomic_rename_of_same_size_is_picked_up(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa.bbbb.cccc")
    async with _provider(path, clock) as provider:
        assert revealed(await provider.token()) == "aaaa.bbbb.cccc"
        staged = tmp_path / ".token.tmp"
        staged.write_text("dddd.eeee.ffff")
        # Keep the same mtime too: only the inode tells the files apart.
        st = path.stat()
        os.utime(staged, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(staged, path)
        assert revealed(await provider.token()) == "dddd.eeee.ffff"


async def test_kubernetes_secret_volume_symlink_swap(
    tmp_path: Path, clock: FakeClock, make_jwt: MakeJwt
) -> None:
    # The layout kubelet's atomic writer keeps: token -> ..data/token, ..data -> ..<timestamp>
    mount = tmp_path / "openmetadata-bot"
    mount.mkdir()
    old, new = make_jwt(clock.time() + 60, "bot-v1"), make_jwt(clock.time() + 3600, "bot-v2")
    (mount / "..2026_11_26_10_00_00.1").mkdir()
    (mount / "..2026_11_26_10_00_00.1" / "token").write_text(old)
    (mount / "..data").symlink_to("..2026_11_26_10_00_00.1")
    (mount / "token").symlink_to("..data/token")
    async with _provider(mount / "token", clock) as provider:
        assert revealed(await provider.token()) == old
        (mount / "..2026_11_26_11_00_00.2").mkdir()
        (mount / "..2026_11_26_11_00_00.2" / "token").write_text(new)
        (mount / "..data_tmp").symlink_to("..2026_11_26_11_00_00.2")
        os.replace(mount / "..data_tmp", mount / "..data")
        assert revealed(await provider.token()) == new


async def test_missing_file_names_the_path_and_is_not_hammered(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "absent"
    metrics = Metrics()
    async with _provider(path, clock, metrics) as provider:
        for _ in range(3):
            with pytest.raises(AuthError, match=r"openmetadata.jwt_token_file .*absent.* does not"):
                await provider.token()
        assert _fetches(metrics, "error") == 1  # failures are rate-limited too
        clock.advance(1.5)
        path.write_text("abc.def.ghi")
        assert revealed(await provider.token()) == "abc.def.ghi"


async def test_empty_file_is_refused_with_the_fix(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    async with _provider(path, clock) as provider:
        with pytest.raises(AuthError, match=r"jwt_token_file .* is empty: put the OpenMetadata"):
            await provider.token()


async def test_a_broken_rotation_keeps_the_last_good_token(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("good.token.value")
    metrics = Metrics()
    async with _provider(path, clock, metrics) as provider:
        good = await provider.token()
        path.unlink()
        with caplog.at_level(logging.WARNING):
            assert await provider.token() == good
            assert await provider.token() == good
        assert _fetches(metrics, "error") == 1  # warned once per change, not per call
        assert "keeping the previous OpenMetadata token" in caplog.text
        # After a 401 the old token is no use: refresh says what is wrong.
        with pytest.raises(AuthError, match="does not exist"):
            await provider.refresh(rejected=good)
        path.write_text("next.token.value")
        assert revealed(await provider.token()) == "next.token.value"
    assert "good.token.value" not in caplog.text


async def test_refresh_rereads_the_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "token"
    path.write_text("one.two.three")
    metrics = Metrics()
    async with _provider(path, clock, metrics) as provider:
        sent = await provider.token()
        assert await provider.refresh(rejected=sent) == sent
        assert _fetches(metrics) == 2


async def test_same_size_rewrite_with_restored_mtime_is_picked_up(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa.bbbb.cccc")
    async with _provider(path, clock) as provider:
        assert revealed(await provider.token()) == "aaaa.bbbb.cccc"
        st = path.stat()
        with open(path, "r+") as f:  # same inode, same size
            f.write("zzzz.yyyy.xxxx")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
        assert revealed(await provider.token()) == "zzzz.yyyy.xxxx"
