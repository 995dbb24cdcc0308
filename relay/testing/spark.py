"""A local SparkSession for the tests, the demo's job and the Spark child jobs of the tests.

    spark = local_session("orders daily", base=work_dir, log_level="OFF")

Loopback only (driver host and bind address, `SPARK_LOCAL_IP`), no UI, as many shuffle
partitions as cores. With `base`, the session has Hive support, its warehouse and its Derby
metastore under that folder (Derby's home too: its log and relative database names), so two
sessions never share a catalog. pyspark is imported when called: it is the `spark` extra, not
a dependency of the relay.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["local_session"]


def local_session(
    app: str,
    *,
    base: Path | None = None,
    cores: int = 2,
    log_level: str = "ERROR",
    conf: Mapping[str, str] | None = None,
) -> Any:
    """Get or create the session named `app` on `local[cores]`; `conf` adds Spark settings."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the JVM reads it at start
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(cores))
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    if base is not None:
        builder = (
            builder.config("spark.sql.warehouse.dir", str(base / "warehouse"))
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={base}")
            .config(
                "spark.hadoop.javax.jdo.option.ConnectionURL",
                f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true",
            )
            .enableHiveSupport()
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(log_level)
    return session
