"""Fixtures shared by every stage's tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder; tests that need it skip when it is absent."""
    if not (SHARED / "DESIGN.md").is_file():
        pytest.skip(f"reference folder {SHARED} is absent (set LINEAGE_RELAY_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local SparkSession (Hive support, embedded Derby metastore) for every Spark test."""
    pyspark_sql = pytest.importorskip("pyspark.sql")
    base = tmp_path_factory.mktemp("spark")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("lineage relay tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", str(base / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={base}")
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true",
        )
        .enableHiveSupport()
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
