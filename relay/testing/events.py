"""Synthetic OpenLineage run events for tests and demos: START/COMPLETE pairs of new runs."""

from __future__ import annotations

import uuid

import orjson

__all__ = ["run_event_pairs"]

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://github.com/lineage-relay/lineage-relay/tests"


def run_event_pairs(runs: int, *, namespace: str = "tests", job: str = "job") -> list[bytes]:
    """`runs` runs (new run ids), each a START then a COMPLETE, as compact JSON bytes: one
    line each, what the Spark plugin posts and spills. Jobs are named `<job>_<i>`."""
    out: list[bytes] = []
    for i in range(runs):
        run_id = str(uuid.uuid4())
        for second, kind in enumerate(("START", "COMPLETE")):
            event = {
                "eventType": kind,
                "eventTime": f"2026-12-03T08:{i % 60:02d}:{second:02d}.000Z",
                "producer": PRODUCER,
                "schemaURL": SCHEMA_URL,
                "run": {"runId": run_id},
                "job": {"namespace": namespace, "name": f"{job}_{i}"},
                "inputs": [],
                "outputs": [],
            }
            out.append(orjson.dumps(event))
    return out
