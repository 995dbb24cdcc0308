"""The mock OpenMetadata most stages' tests deliver to (the `mock` fixture in conftest.py): the
bot token it accepts and the catalog it is seeded with."""

from __future__ import annotations

from pathlib import Path

MOCK_TOKEN = "relay-bot-token"
MOCK_CATALOG = Path(__file__).resolve().parent / "fixtures" / "openmetadata" / "catalog_spark.json"
