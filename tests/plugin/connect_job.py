"""Child process for test_spark_connect: `spark_plugin.enable()` given a real Spark Connect session.

A Spark Connect server (Spark's `SparkConnectPlugin`, from the jar pyspark ships) runs in this
process's driver JVM, bound to 127.0.0.1 on a free port with a random token; the session under
test is a Connect *client* session talking to it over gRPC, as a remote notebook's would.
(`SparkSession.builder.remote("local[1]")` does the same but always on port 15002, which a
parallel run or another local server may hold.)

Usage: python connect_job.py
Prints one line `RESULT {json}` on stdout: the session's type, what `enable` raised, and the
result of a query run on the Connect session afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout

import spark_plugin


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    port = free_loopback_port()
    # The server (in the JVM started below, which inherits the environment) and the Connect
    # client both read the token from here; with a token, the client insists on "localhost".
    os.environ["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = secrets.token_hex(16)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    server = (
        SparkSession.builder.master("local[1]")
        .appName("spark-connect-server")
        .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
        .config("spark.connect.grpc.binding.address", "127.0.0.1")
        .config("spark.connect.grpc.binding.port", str(port))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark = ConnectSession.builder.remote(f"sc://localhost:{port}").getOrCreate()
    result: dict[str, Any] = {
        "session_type": f"{type(spark).__module__}.{type(spark).__qualname__}",
    }
    try:
        spark_plugin.enable(spark, url="http://127.0.0.1:9")
    except BaseException as error:  # report whatever it is; the test judges it
        result["error_type"] = f"{type(error).__module__}.{type(error).__qualname__}"
        result["error_is_unsupported_session"] = isinstance(
            error, spark_plugin.UnsupportedSessionError
        )
        result["error_message"] = str(error)
    else:
        result["error_type"] = None
    # the Connect session is untouched: a query still runs through the server
    row = spark.range(5).selectExpr("sum(id) AS total").collect()[0]
    result["query_total"] = int(row["total"])
    spark.stop()
    server.stop()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
