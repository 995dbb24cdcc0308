"""Fixtures shared by every stage's tests."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from openmetadata_support import MOCK_CATALOG, MOCK_TOKEN
from relay_support import RelayStarter, forwarding_settings, relay_settings

from relay._observe.metrics import Metrics
from relay.testing.fakes import FakeClock
from relay.testing.mock_openmetadata import MockOpenMetadata
from relay.testing.spark import local_session

REPO = Path(__file__).resolve().parent.parent
# Reference material beside the checkout; never needed at run time, only by some tests.
SHARED = Path(os.environ.get("LINEAGE_RELAY_SHARED_DIR", REPO.parent / "shared"))
_PLUGIN_VARIABLES = ("LINEAGE_ENABLED", "OPENMETADATA_JWT_TOKEN")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests are hermetic: no LINEAGE_RELAY_* or plugin variable leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith("LINEAGE_RELAY_") or name in _PLUGIN_VARIABLES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """A test that configures logging (the CLI in-process, say) must not leave the root
    logger at DEBUG for the rest of the session: later tests would log every botocore
    and aiohttp detail, slowly, and capture records that are not theirs."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def metrics() -> Metrics:
    """A fresh metrics registry per test (a stage's counters start at zero)."""
    return Metrics()


@pytest.fixture
def clock() -> FakeClock:
    """The time of what a test builds on it (spool, forwarder, breaker, token sources): it
    moves only when the test advances it, so every wait is decided by the test."""
    return FakeClock()


@pytest.fixture
def mock_catalog() -> Path | dict[str, Any]:
    """What `mock` is seeded with: MOCK_CATALOG, unless a test parametrizes `mock_catalog`."""
    return MOCK_CATALOG


@pytest.fixture
async def mock(mock_catalog: Path | dict[str, Any]) -> AsyncIterator[MockOpenMetadata]:
    """The mock OpenMetadata on loopback, seeded with `mock_catalog`, accepting MOCK_TOKEN (a
    folder or file needing another token or server defines its own `mock`)."""
    async with MockOpenMetadata(tokens=[MOCK_TOKEN], catalog=mock_catalog) as server:
        yield server


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[RelayStarter]:
    """`await start_relay(**{"section.key": value})` -> a started in-process relay with a spool
    of its own and no delivery (`delivery=True`: forwarding towards a port where nothing
    listens); every one closed at teardown."""
    starter = RelayStarter(lambda n: relay_settings(tmp_path / f"spool{n}"), delivery=False)
    yield starter
    await starter.aclose()


@pytest.fixture
async def start_forwarding_relay(
    tmp_path: Path, mock: MockOpenMetadata
) -> AsyncIterator[RelayStarter]:
    """`await start_forwarding_relay(**{"section.key": value})` -> a started in-process relay
    forwarding to `mock` (relay_support.forwarding_settings), a spool of its own each; every
    one closed at teardown."""
    starter = RelayStarter(lambda n: forwarding_settings(tmp_path / f"relay{n}", mock.url))
    yield starter
    await starter.aclose()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder; tests that need it skip when it is absent (one reason,
    so `-ra` sums them up in one line), and fail under CI (`CI=true`), where it must be there:
    a CI run must never lose the schema-oracle tests silently."""
    if not (SHARED / "DESIGN.md").is_file():
        reason = f"reference folder {SHARED} is absent (set LINEAGE_RELAY_SHARED_DIR)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{reason}; CI=true: it must be present beside the checkout")
        pytest.skip(reason)
    return SHARED


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local SparkSession (Hive support, embedded Derby metastore) for every Spark test."""
    pytest.importorskip("pyspark.sql")
    session = local_session("lineage relay tests", base=tmp_path_factory.mktemp("spark"))
    try:
        yield session
    finally:
        session.stop()


# -- AWS: fake credentials and a moto server (token sources, the S3 offload) -------------------

AWS_REGION = "eu-west-1"
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": AWS_REGION,
    # No instance-metadata lookups (there is no network) and no developer profile leaking in.
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(proc: subprocess.Popen[bytes], url: str, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- loopback http
                return True
        except urllib.error.HTTPError:
            return True  # it answered: it is up
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """AWS in a subprocess (moto server mode) on a free loopback port; its endpoint URL."""
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, **_FAKE_AWS}
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            if _wait_ready(proc, f"{url}/moto-api/", deadline_s=30):
                yield url
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    pytest.fail(f"moto server did not start; its log: {Path(log_path).read_text()[-2000:]}")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through the standard AWS chain, nothing from the developer's ~/.aws."""
    for name, value in _FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
