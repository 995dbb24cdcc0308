"""One finding of `lineage-relay doctor`: a named check, its level, what was seen, the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Level"]

Level = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""  # what to do, for a warning or a failure
