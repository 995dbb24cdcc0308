"""The native OpenLineage endpoints' settings, and the mock's event failures.

``OpenLineageSettings`` mirrors the server's ``configuration/openLineageSettings.json``
(camelCase in JSON). *Event failures* are the mock's own: rules that make chosen events fail
(by job name glob, run id or event type) with a chosen ``retriable`` flag, to test a client's
partial-success handling.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._models import OPENLINEAGE_EVENT_TYPES

OWNERSHIP_UPDATE_MODES = ("replace", "append")
SETTINGS_SINCE_V2 = frozenset({"ownershipUpdateMode"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenLineageSettings:
    """The server's OpenLineage settings (``configuration/openLineageSettings.json``)."""

    enabled: bool = True
    auto_create_entities: bool = True
    event_type_filter: tuple[str, ...] = ("COMPLETE",)
    default_pipeline_service: str = "openlineage"
    namespace_to_service: Mapping[str, str] = field(default_factory=dict)
    # 2.0: how owners from a job's ``ownership`` facet update the pipeline's owners.
    ownership_update_mode: str = "replace"

    def __post_init__(self) -> None:
        if self.ownership_update_mode not in OWNERSHIP_UPDATE_MODES:
            raise ValueError(
                f"ownershipUpdateMode {self.ownership_update_mode!r} is not one of "
                f"{list(OWNERSHIP_UPDATE_MODES)}"
            )
        bad = [kind for kind in self.event_type_filter if kind not in OPENLINEAGE_EVENT_TYPES]
        if bad:
            raise ValueError(
                f"eventTypeFilter has unknown event type(s) {bad}; "
                f"use {list(OPENLINEAGE_EVENT_TYPES)}"
            )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenLineageSettings:
        """From OpenMetadata's camelCase settings JSON."""
        known = {
            "enabled",
            "autoCreateEntities",
            "eventTypeFilter",
            "defaultPipelineService",
            "namespaceToServiceMapping",
            "ownershipUpdateMode",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown OpenLineage setting(s) {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        if "enabled" in data:
            kwargs["enabled"] = bool(data["enabled"])
        if "autoCreateEntities" in data:
            kwargs["auto_create_entities"] = bool(data["autoCreateEntities"])
        if data.get("eventTypeFilter"):
            kwargs["event_type_filter"] = tuple(data["eventTypeFilter"])
        if data.get("defaultPipelineService"):
            kwargs["default_pipeline_service"] = str(data["defaultPipelineService"])
        if "namespaceToServiceMapping" in data:
            kwargs["namespace_to_service"] = dict(data["namespaceToServiceMapping"] or {})
        if data.get("ownershipUpdateMode") is not None:
            kwargs["ownership_update_mode"] = str(data["ownershipUpdateMode"])
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "autoCreateEntities": self.auto_create_entities,
            "eventTypeFilter": list(self.event_type_filter),
            "defaultPipelineService": self.default_pipeline_service,
            "namespaceToServiceMapping": dict(self.namespace_to_service),
            "ownershipUpdateMode": self.ownership_update_mode,
        }


def check_settings_version(data: Mapping[str, Any], server_v2: bool) -> None:
    """Refuse a setting the version the mock answers as does not have."""
    newer = sorted(SETTINGS_SINCE_V2 & set(data))
    if newer and not server_v2:
        raise ValueError(
            f"OpenLineage setting(s) {newer} came with OpenMetadata 2.0; this mock answers as "
            "1.13 (set another --server-version or PUT /mock/version)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFailure:
    """Make matching events fail: ``{"job_name": glob, "run_id", "event_type", "reason",
    "retriable", "times"}``; every given selector must match."""

    job_name: str | None = None
    run_id: str | None = None
    event_type: str | None = None
    reason: str = "injected failure"
    retriable: bool = True
    times: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventFailure:
        known = {"job_name", "run_id", "event_type", "reason", "retriable", "times"}
        if not isinstance(data, Mapping):
            raise ValueError("an event failure rule must be a JSON object")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown event failure key(s) {unknown}; known: {sorted(known)}")
        return cls(**{key: value for key, value in data.items() if value is not None})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "retriable": self.retriable}
        for key in ("job_name", "run_id", "event_type", "times"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def matches(self, event: Mapping[str, Any]) -> bool:
        job = event.get("job") or {}
        run = event.get("run") or {}
        if self.job_name is not None and not fnmatch.fnmatchcase(
            str(job.get("name", "")), self.job_name
        ):
            return False
        if self.run_id is not None and run.get("runId") != self.run_id:
            return False
        return self.event_type is None or event.get("eventType", "COMPLETE") == self.event_type


def parse_failures(data: Any) -> list[EventFailure]:
    if isinstance(data, Mapping):
        return [EventFailure.from_json(data)]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return [
            item if isinstance(item, EventFailure) else EventFailure.from_json(item)
            for item in data
        ]
    raise ValueError("event failures must be a rule object or a list of rule objects")
