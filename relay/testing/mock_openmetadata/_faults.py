"""Fault rules: how the mock misbehaves on command.

A rule is ``{"mode": ..., "latency_ms", "jitter_ms", "status", "retry_after_s", "rate", "path",
"method", "times"}``. Rules are tried in order; the first whose ``path`` glob and ``method``
match and whose ``rate`` roll succeeds applies to the request. Modes:

- ``healthy``  answer normally (useful as a carve-out before broader rules);
- ``slow``     wait ``latency_ms`` (+- ``jitter_ms``), then answer normally;
- ``error``    wait ``latency_ms``, then answer ``status`` (default 503) with OpenMetadata's
               error body and ``Retry-After: retry_after_s`` when given;
- ``hang``     never answer (the connection stays open until the client gives up);
- ``reset``    drop the TCP connection with a RST, no response;
- ``down``     the API port stops listening (connections are refused) while the control port
               stays up; it applies to the whole port, so it takes no path, method, rate or times.

``times`` limits a rule to its first N matching requests (then it no longer matches), which
makes "fail three times, then recover" tests deterministic.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

FaultMode = Literal["healthy", "slow", "error", "hang", "reset", "down"]
FAULT_MODES: tuple[FaultMode, ...] = ("healthy", "slow", "error", "hang", "reset", "down")
_FIELDS = (
    "mode",
    "latency_ms",
    "jitter_ms",
    "status",
    "retry_after_s",
    "rate",
    "path",
    "method",
    "times",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRule:
    """One fault rule; build from JSON with ``FaultRule.from_json``."""

    mode: FaultMode = "healthy"
    latency_ms: int = 0
    jitter_ms: int = 0
    status: int = 503
    retry_after_s: float | None = None
    rate: float = 1.0
    path: str | None = None
    method: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"fault mode {self.mode!r} is unknown; use one of {list(FAULT_MODES)}")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("fault latency_ms and jitter_ms must be >= 0")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status (100-599)")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate {self.rate} must be between 0 and 1")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("fault retry_after_s must be >= 0")
        if self.times is not None and self.times < 1:
            raise ValueError("fault times must be >= 1 (omit it for 'always')")
        if self.mode == "down" and (
            self.path is not None or self.method is not None or self.rate != 1.0 or self.times
        ):
            raise ValueError(
                "a 'down' rule closes the whole API port: drop path, method, rate and times "
                "(use 'reset' or 'error' to fail only some requests)"
            )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from its JSON form, naming the offending key on error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault rule key(s) {unknown}; known keys: {list(_FIELDS)}")
        kwargs: dict[str, Any] = {}
        for key in ("latency_ms", "jitter_ms", "status", "times"):
            if data.get(key) is not None:
                kwargs[key] = _number(data, key, int)
        for key in ("retry_after_s", "rate"):
            if data.get(key) is not None:
                kwargs[key] = _number(data, key, float)
        for key in ("path", "method"):
            if data.get(key) is not None:
                if not isinstance(data[key], str):
                    raise ValueError(f"fault {key} must be a string")
                kwargs[key] = data[key]
        if "method" in kwargs:
            kwargs["method"] = kwargs["method"].upper()
        mode = data.get("mode", "healthy")
        return cls(mode=cast(FaultMode, mode), **kwargs)

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule's method and path glob select this request (ignores rate)."""
        if self.method is not None and self.method != method:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


def _number(data: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"fault {key} must be a number, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise ValueError(f"fault {key} must be a whole number, got {value!r}")
    return kind(value)


def parse_rules(data: Any) -> list[FaultRule]:
    """One rule (an object) or a list of rules, from JSON."""
    if isinstance(data, FaultRule):
        return [data]
    if isinstance(data, Mapping):
        return [FaultRule.from_json(data)]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return [rule if isinstance(rule, FaultRule) else FaultRule.from_json(rule) for rule in data]
    raise ValueError("faults must be a rule object or a list of rule objects")


class FaultPlan:
    """The active rules plus their ``times`` counters; picks the rule for each request."""

    def __init__(self, rules: Sequence[FaultRule] = (), seed: int | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - fault rolls, not cryptography
        self.replace(rules)

    def replace(self, rules: Sequence[FaultRule]) -> None:
        self.rules = list(rules)
        self._used = [0] * len(self.rules)

    @property
    def down(self) -> bool:
        return any(rule.mode == "down" for rule in self.rules)

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that applies to this request, or None."""
        for index, rule in enumerate(self.rules):
            if rule.mode == "down" or not rule.matches(method, path):
                continue
            if rule.times is not None and self._used[index] >= rule.times:
                continue
            if rule.rate < 1.0 and self._random.random() >= rule.rate:
                continue
            self._used[index] += 1
            return rule
        return None

    def delay_s(self, rule: FaultRule) -> float:
        jitter = self._random.uniform(-rule.jitter_ms, rule.jitter_ms) if rule.jitter_ms else 0.0
        return max(0.0, rule.latency_ms + jitter) / 1000.0

    def roll(self, rate: float) -> bool:
        return rate > 0.0 and self._random.random() < rate
