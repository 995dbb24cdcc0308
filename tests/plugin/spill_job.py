"""Child process for test_spill_job: a small PySpark job with the relay stopped.

Usage: python spill_job.py <relay_url_nobody_listens_on> <spill_dir> <work_dir>
Prints one JSON line: the handle's counters, how long spark.stop() took, the application id.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout

from relay.testing.spark import local_session
from spark_plugin import enable

FLUSH_TIMEOUT_S = 1.0


def main() -> None:
    url, spill_dir, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    spark = local_session(
        "spill job",
        cores=1,
        log_level="OFF",
        conf={"spark.lineageRelay.spill.dir": spill_dir},  # the SparkConf key, as users set it
    )
    handle = enable(spark, url=url, flush_timeout_s=FLUSH_TIMEOUT_S, timeout_s=2.0)
    spark.range(20).selectExpr("id", "id * 2 AS doubled").write.parquet(str(work / "out"))
    rows = spark.read.parquet(str(work / "out")).filter("id > 4").count()
    application_id = spark.sparkContext.applicationId
    began = time.monotonic()
    spark.stop()
    stop_s = time.monotonic() - began
    print(
        json.dumps(
            {
                "rows": rows,
                "stop_s": stop_s,
                "application_id": application_id,
                "app_run_id": handle.app_run_id,
                **handle.stats(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
