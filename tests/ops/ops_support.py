"""Helpers for the operations tests: events, polling, metric names (relays start from the
root fixtures, relay_support)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from openmetadata_support import MOCK_CATALOG, MOCK_TOKEN

REPO = Path(__file__).resolve().parent.parent.parent
CATALOG = MOCK_CATALOG  # the shared `mock` fixture's
TOKEN = MOCK_TOKEN
# Tables of CATALOG the events below read and write.
INPUT_TABLE = "hive_prod.warehouse.sales.orders"
OUTPUT_TABLE = "hive_prod.warehouse.reporting.revenue_by_country"


def run_pair(job: str | None = None, run_id: str | None = None) -> list[bytes]:
    """A START and a COMPLETE of one run reading orders and writing revenue_by_country."""
    job = job or f"ops_test_{uuid.uuid4().hex[:8]}"
    run_id = run_id or str(uuid.uuid4())
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bodies = []
    for event_type in ("START", "COMPLETE"):
        event: dict[str, Any] = {
            "eventType": event_type,
            "eventTime": now,
            "producer": "https://example.com/ops-tests",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id},
            "job": {"namespace": "ops", "name": job},
            "inputs": [{"namespace": "hive://metastore:9083", "name": "warehouse.sales.orders"}],
            "outputs": [
                {
                    "namespace": "hive://metastore:9083",
                    "name": "warehouse.reporting.revenue_by_country",
                }
            ],
        }
        bodies.append(orjson.dumps(event))
    return bodies


def exported_series(exposition: str) -> set[str]:
    """Every series name a /metrics text can carry, labelled children or not.

    A labelled counter with no child yet has only its `# TYPE` line, so names come from the
    families: counter `x` -> `x_total`, histogram `x` -> `x_bucket`, `x_sum`, `x_count`.
    """
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(family.name)
    return names


def queried_metrics(expression: str) -> set[str]:
    """The relay's metric names a PromQL expression reads (ours are prefixed)."""
    import re

    return set(re.findall(r"\b(?:openmetadata|lineage_relay)_[a-z0-9_]+\b", expression))


async def post_events(http: Any, relay_url: str, bodies: list[bytes]) -> None:
    """POST a JSON array of events to the relay; it must answer 201."""
    payload = b"[" + b",".join(bodies) + b"]"
    async with http.post(f"{relay_url}/api/v1/lineage/batch", data=payload) as response:
        assert response.status == 201, await response.text()
