"""Helpers for the mock OpenMetadata tests: JWTs, OpenLineage events, the seeded catalog."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CATALOG_FILE = FIXTURES / "mock_catalog.json"
TOKEN = "mock-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ORDERS = "hive_prod.warehouse.sales.orders"
REVENUE = "hive_prod.warehouse.sales.daily_revenue"
CUSTOMERS = '"pg.analytics".reporting.public."customers.v2"'


def catalog() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return data


def catalog_with_tables(tables_per_schema: dict[str, int]) -> dict[str, Any]:
    """The test catalog plus many one-column tables (``t000``, ``t001``, ...) per schema of
    ``hive_prod.warehouse``; a schema not in the catalog is added."""
    data = catalog()
    known = {item["name"] for item in data["databaseSchemas"]}
    columns = [{"name": "id", "dataType": "BIGINT"}]
    for schema, count in tables_per_schema.items():
        name = schema.rsplit(".", 1)[1]
        if name not in known:
            data["databaseSchemas"].append({"name": name, "database": "hive_prod.warehouse"})
        data["tables"].extend(
            {"name": f"t{index:03d}", "databaseSchema": schema, "columns": columns}
            for index in range(count)
        )
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    """An (unsigned-looking) JWT with the given claims, as bot tokens are shaped."""
    header = _b64(orjson.dumps({"alg": "RS256", "typ": "JWT", "kid": "test"}))
    return f"{header}.{_b64(orjson.dumps(claims))}.{_b64(b'signature')}"


def run_event(
    *,
    event_type: str = "COMPLETE",
    job: str = "nightly_etl.execute_insert_into_hive_table.sales_daily_revenue",
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
    parent_job: str | None = None,
) -> dict[str, Any]:
    """A RunEvent shaped like the OpenLineage Spark integration's."""
    run: dict[str, Any] = {"runId": run_id or str(uuid.uuid4())}
    if parent_job is not None:
        run["facets"] = {
            "parent": {
                "_producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json",
                "run": {"runId": str(uuid.uuid4())},
                "job": {"namespace": "default", "name": parent_job},
            }
        }
    return {
        "eventTime": "2026-11-26T10:15:30.123Z",
        "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "eventType": event_type,
        "run": run,
        "job": {"namespace": "default", "name": job},
        "inputs": inputs if inputs is not None else [hive_dataset("sales", "orders")],
        "outputs": outputs if outputs is not None else [revenue_output()],
    }


def hive_dataset(schema: str, table: str) -> dict[str, Any]:
    """A catalog table as Spark names it: the location, plus a symlink to ``db.table``."""
    return {
        "namespace": "hdfs://namenode:8020",
        "name": f"/warehouse/{schema}.db/{table}",
        "facets": {
            "symlinks": {
                "_producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/SymlinksDatasetFacet.json",
                "identifiers": [
                    {
                        "namespace": "hive://metastore:9083",
                        "name": f"{schema}.{table}",
                        "type": "TABLE",
                    }
                ],
            }
        },
    }


def revenue_output() -> dict[str, Any]:
    output = hive_dataset("sales", "daily_revenue")
    output["facets"]["columnLineage"] = {
        "_producer": "https://github.com/OpenLineage/OpenLineage/tree/1.20.0/integration/spark",
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
        "fields": {
            "revenue": {
                "inputFields": [
                    {
                        "namespace": "hdfs://namenode:8020",
                        "name": "/warehouse/sales.db/orders",
                        "field": "amount",
                    }
                ],
                "transformationDescription": "SUM",
            }
        },
    }
    return output
