"""Child process for test_plugin_streaming: `spark.stop()` with a streaming query still running
and the relay down (a closed port) must return promptly.

Usage: python streaming_stop_job.py
Prints one JSON line on stdout: how long stop() took, whether the query was active, the counters.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugin_support import closed_port_url

from relay.testing.spark import local_session
from spark_plugin import enable

FLUSH_TIMEOUT_S = 1.0
FIRST_BATCH_S = 90.0  # bound on waiting for the first micro-batch


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="streaming-stop-") as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        (base / "in" / "a.json").write_text('{"id": 1}\n{"id": 2}\n')
        spark = local_session("streaming stop", log_level="OFF")
        # spilling off: the undelivered events are dropped and counted, no file is left behind
        lineage = enable(
            spark, url=closed_port_url(), flush_timeout_s=FLUSH_TIMEOUT_S, spill_max_bytes=0
        )
        query = (
            spark.readStream.schema("id int")
            .json(str(base / "in"))
            .writeStream.format("parquet")
            .option("checkpointLocation", str(base / "ck"))
            .trigger(processingTime="200 milliseconds")
            .start(str(base / "out"))
        )
        deadline = time.monotonic() + FIRST_BATCH_S
        while query.lastProgress is None and time.monotonic() < deadline:
            time.sleep(0.1)
        active = query.isActive
        began = time.monotonic()
        spark.stop()
        stop_s = time.monotonic() - began
        stats = lineage.stats()
        record = {"stop_s": stop_s, "active": active, "batches": query.lastProgress is not None}
        record.update({k: stats[k] for k in ("submitted", "emitted", "pending", "listener_errors")})
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
