"""Child process for test_never_block: issue 2's jobs (`show_jobs`) with the relay dead, hanging,
then at interpreter exit.

Usage: python never_block_job.py <receiver_url_for_the_exit_case>
Prints one JSON line per case on stdout.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugin_support import Receiver, closed_port_url
from show_jobs import ShowData, jobs_for, prepare, show_data, verify

from relay.testing.spark import local_session
from spark_plugin import enable

FLUSH_TIMEOUT_S = 1.0


def run_jobs(spark: Any, data: ShowData) -> dict[str, Any]:
    """Every job kind; what ran and the rows each wrote, so the parent can check they ran."""
    ran = []
    for kind, job in jobs_for(data).items():
        job(spark, data)
        ran.append(kind)
    return {"ran": ran, "rows": verify(spark, data)}


def case(name: str, url: str, base: Path) -> dict[str, Any]:
    data = show_data(base, name)
    spark = local_session(f"never block {name}", base=data.base, log_level="OFF")
    prepare(spark, data)
    # spilling off: these cases check that what cannot be sent is dropped and counted
    # (test_spill_job checks what a job leaves in the spill directory instead)
    handle = enable(
        spark, url=url, flush_timeout_s=FLUSH_TIMEOUT_S, timeout_s=2.0, spill_max_bytes=0
    )
    outcome = run_jobs(spark, data)
    began = time.monotonic()
    spark.stop()
    stop_s = time.monotonic() - began
    sender = handle._sender
    assert sender is not None
    joined = sender.join(5.0)  # the in-flight POST ends on its own timeout
    return {"case": name, **outcome, "stop_s": stop_s, "joined": joined, **handle.stats()}


def main() -> None:
    exit_url = sys.argv[1]
    base = Path(tempfile.mkdtemp(prefix="never_block_"))
    print(json.dumps(case("closed_port", closed_port_url(), base)), flush=True)
    hanging = Receiver(hang=True)
    try:
        print(json.dumps(case("hanging", hanging.url, base)), flush=True)
    finally:
        hanging.close()
    # exit without spark.stop(): the interpreter's exit hook flushes within the deadline
    data = show_data(base, "exit")
    spark = local_session("never block exit", base=data.base, log_level="OFF")
    prepare(spark, data)
    enable(spark, url=exit_url, flush_timeout_s=FLUSH_TIMEOUT_S)
    print(json.dumps({"case": "exit", **run_jobs(spark, data)}), flush=True)


if __name__ == "__main__":
    main()
