"""aiobotocore is the `aws` extra: imported only when an AWS key is set, and asked for at start
(a missing extra stops the relay with a message naming it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from relay_support import relay_config

from relay._app import Relay
from relay._aws import AWS_EXTRA, aws_keys_in_use
from relay._cli import main
from relay._exceptions import ConfigError
from relay._secrets import make_token_provider
from relay.testing.fakes import FakeClock

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def without_aiobotocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the extra were not installed: importing aiobotocore raises ImportError."""
    for name in ("aiobotocore", "aiobotocore.session", "aiobotocore.config"):
        monkeypatch.setitem(sys.modules, name, None)


def test_only_aws_keys_need_aws(tmp_path: Path) -> None:
    assert aws_keys_in_use(relay_config(tmp_path / "spool")) == []
    config = relay_config(
        tmp_path / "spool",
        **{
            "offload.s3_uri": "s3://bucket/relay",
            "openmetadata.aws_secret.secret_id": "om/jwt",
            "openmetadata.aws_secret.region": "eu-west-1",
        },
    )
    assert aws_keys_in_use(config) == ["openmetadata.aws_secret.secret_id", "offload.s3_uri"]


@pytest.mark.usefixtures("without_aiobotocore")
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"offload.s3_uri": "s3://bucket/relay"}, "offload.s3_uri"),
        (
            {"openmetadata.aws_secret.secret_id": "om/jwt", "openmetadata.aws_secret.region": "r"},
            "openmetadata.aws_secret.secret_id",
        ),
    ],
)
def test_an_aws_key_without_the_extra_is_refused_at_start(
    tmp_path: Path, overrides: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{key} needs AWS support") as info:
        Relay(relay_config(tmp_path / "spool", **overrides))
    assert f"pip install '{AWS_EXTRA}'" in str(info.value)


@pytest.mark.usefixtures("without_aiobotocore")
def test_the_token_source_asks_for_the_extra_too(tmp_path: Path) -> None:
    """The doctor and the delivery part build token providers without a Relay."""
    config = relay_config(
        tmp_path / "spool",
        **{"openmetadata.aws_secret.secret_id": "om/jwt", "openmetadata.aws_secret.region": "r"},
    )
    with pytest.raises(ConfigError, match=r"lineage-relay\[aws\]"):
        make_token_provider(config.openmetadata, clock=FakeClock())


@pytest.mark.usefixtures("without_aiobotocore")
def test_replay_from_s3_without_the_extra_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["replay", "--spool-dir", str(tmp_path / "spool"), "--s3", "s3://bucket/relay"])
    assert code != 0
    err = capsys.readouterr().err
    assert "replay --s3 needs AWS support" in err
    assert AWS_EXTRA in err


def test_a_relay_without_aws_keys_never_imports_botocore(tmp_path: Path) -> None:
    """Started and stopped in a fresh interpreter, delivery on (to a closed port)."""
    code = f"""
        import asyncio, sys
        from relay._app import Relay
        from relay._config import load_config

        async def main() -> None:
            config = load_config(None, environ={{}}, overrides={{
                "relay.listen": "127.0.0.1:0", "spool.dir": {str(tmp_path / "spool")!r},
                "openmetadata.host_port": "http://127.0.0.1:9/api",
                "relay.drain_timeout_s": 0,
            }})
            async with Relay(config):
                pass

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("aiobotocore", "botocore")))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
