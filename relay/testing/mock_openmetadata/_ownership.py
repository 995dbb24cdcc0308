"""Pipeline owners from an OpenLineage job's ``ownership`` facet (OpenMetadata 2.0).

Each owner's ``name`` is ``team:<name>``, ``user:<name>`` or a bare name (a team of type
Group first, then a user), matched without regard to case against the users and teams the
catalog declares; a name that matches nothing is skipped. ``replace`` (the default
``ownershipUpdateMode``) makes the resolved owners the pipeline's owners; ``append`` adds them
to the owners it already has. When nothing resolves, the owners stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Principals = Mapping[tuple[str, str], dict[str, Any]]


def facet_owners(event: Mapping[str, Any]) -> list[Any]:
    """The owners listed by the event's job ``ownership`` facet (empty when there is none)."""
    facets = (event.get("job") or {}).get("facets") or {}
    owners = (facets.get("ownership") or {}).get("owners")
    return owners if isinstance(owners, list) else []


def _resolve(owner: Any, principals: Principals) -> dict[str, Any] | None:
    raw = owner.get("name") if isinstance(owner, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        return None
    kind, colon, name = raw.partition(":")
    if not colon:
        kind, name = "", raw
    key = name.strip().lower()
    if kind.lower() in ("team", "user"):
        return principals.get((kind.lower(), key))
    return principals.get(("team", key)) or principals.get(("user", key))


def new_owners(
    owners: list[Any], current: list[dict[str, Any]], principals: Principals, mode: str
) -> list[dict[str, Any]] | None:
    """The pipeline's owners after the facet, or None when they do not change."""
    resolved: list[dict[str, Any]] = []
    for owner in owners:
        ref = _resolve(owner, principals)
        if ref is not None and all(ref["id"] != seen["id"] for seen in resolved):
            resolved.append(ref)
    if not resolved:
        return None
    merged = list(current) if mode == "append" else []
    for ref in resolved:
        if all(ref["id"] != seen.get("id") for seen in merged):
            merged.append(ref)
    return None if merged == current else merged
