"""`enable()` given a real Spark Connect session: a clear error, and the session keeps working.

Runs in a child process (`connect_job.py`): the Connect server needs its own driver JVM, and this
pytest process already holds the suite's one classic SparkSession.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CHILD = Path(__file__).with_name("connect_job.py")
CHILD_TIMEOUT_S = 50.0  # only catches a hang (JVM start plus one query take ~10 s)


@pytest.fixture(scope="module")
def child() -> dict[str, Any]:
    # No import of pyspark.sql.connect here: only the child needs it (from the `dev` extra's
    # pyspark[connect]); a missing client dependency fails the child with its ImportError.
    proc = subprocess.run(
        [sys.executable, str(CHILD)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]  # clean: nothing failed on the way
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(lines[0].removeprefix("RESULT "))
    return result


def test_the_child_has_a_real_spark_connect_session(child: dict[str, Any]) -> None:
    assert child["session_type"] == "pyspark.sql.connect.session.SparkSession"


def test_enable_raises_the_unsupported_session_error(child: dict[str, Any]) -> None:
    assert child["error_type"] == "spark_plugin._errors.UnsupportedSessionError"
    assert child["error_is_unsupported_session"]


def test_the_message_names_spark_connect_and_what_to_do(child: dict[str, Any]) -> None:
    message = child["error_message"]
    assert "got a Spark Connect session (pyspark.sql.connect.session.SparkSession)" in message
    # what to do: the listener on the Connect server, pointed at the relay, or a classic session
    assert "spark.extraListeners=io.openlineage.spark.agent.OpenLineageSparkListener" in message
    assert "spark.openlineage.transport.url=<relay URL>" in message
    assert "spark.api.mode=classic" in message


def test_the_connect_session_still_works_afterwards(child: dict[str, Any]) -> None:
    assert child["query_total"] == sum(range(5))
