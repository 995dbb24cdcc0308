"""The documented sample configuration, and flags winning over the environment."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import tomllib
import typing
from pathlib import Path
from typing import Any

import aiohttp
from app_support import REPO
from relay_support import RelayProcess

from relay._config import Config, load_config

SAMPLE = REPO / "examples" / "relay.toml"


def leaf_keys(cls: type, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys |= leaf_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.add(f"{prefix}{f.name}")
    return keys


def flatten(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in table.items():
        if isinstance(value, dict):
            keys |= flatten(value, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_sample_config_documents_every_key_at_its_default() -> None:
    assert load_config(SAMPLE, environ={}) == Config()
    documented = flatten(tomllib.loads(SAMPLE.read_text()))
    # The mapping rules are a list of tables, shown commented out (no rule by default).
    assert leaf_keys(Config) - documented == {"openmetadata.mapping"}
    assert "[[openmetadata.mapping]]" in SAMPLE.read_text()


async def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    relay = RelayProcess(
        tmp_path,
        tmp_path / "spool",
        env={
            "LINEAGE_RELAY_RELAY_LISTEN": "not-an-address",
            "LINEAGE_RELAY_SPOOL_DIR": str(tmp_path / "not-this-one"),
            "LINEAGE_RELAY_INGEST_MAX_CONCURRENT_REQUESTS": "7",
        },
    )
    try:
        url = (await asyncio.to_thread(relay.start)).url
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as resp:
            ingest = (await resp.json())["components"]["ingest"]
        assert ingest["max_concurrent_requests"] == 7  # the environment still applies
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(relay.wait) == 0
    assert (tmp_path / "spool").is_dir() and not (tmp_path / "not-this-one").exists()
