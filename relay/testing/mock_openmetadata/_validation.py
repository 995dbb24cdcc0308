"""A small declarative type system that checks request bodies the way OpenMetadata does.

OpenMetadata does not run JSON Schema at run time: it deserialises bodies into Java classes
generated from its schemas (Jackson + bean validation). The observable rules are: an unknown
field on a closed object is refused, a required field that is missing (or ``null``) is refused,
a value of the wrong JSON kind or outside an enum is refused, string patterns and lengths are
enforced, and an explicit ``null`` on an optional field means "absent". The first violation
wins and is reported as a 400 whose message names the field, in Jackson's wording.

The mock's request models (``_models.py``) are written with these types from the facts in the
schemas; nothing is loaded from the schema files at run time.

Checks run on every event of every batch, so the success path does no string work: a failure
raises ``_Violation`` with a message template, each enclosing object or array adds its key on
the way out, and ``validate`` renders the field path once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Invalid(ValueError):
    """A body that OpenMetadata would refuse with 400; the message is the 400's message."""


class _Violation(Exception):
    """A failed check on its way up: the message template and the path from the failure up."""

    def __init__(self, template: str) -> None:
        super().__init__(template)
        self.template = template
        self.parts: list[str | int] = []


def _render(parts: list[str | int]) -> str:
    path = ""
    for part in reversed(parts):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return "Null"


def _mismatch(java_type: str, value: Any) -> _Violation:
    kind = _kind(value)
    return _Violation(
        f'Cannot deserialize value of type `{java_type}` from {kind} value (field "{{path}}")'
    )


class Type:
    """Base of every field type; ``check`` raises ``_Violation`` for the first violation."""

    java_type = "java.lang.Object"

    def check(self, value: Any) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Str(Type):
    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None
    fmt: str | None = None  # "uuid" or "date-time": the formats Java parses into typed values
    java_type = "java.lang.String"

    @property
    def plain(self) -> bool:
        """Any string will do: no length, pattern or format to check."""
        return (
            self.min_length == 0
            and self.max_length is None
            and self.pattern is None
            and not self.fmt
        )

    def check(self, value: Any) -> None:
        if not isinstance(value, str):
            raise _mismatch("java.util.UUID" if self.fmt == "uuid" else self.java_type, value)
        if self.plain:
            return
        if len(value) < self.min_length or (
            self.max_length is not None and len(value) > self.max_length
        ):
            upper = self.max_length if self.max_length is not None else 2147483647
            raise _Violation(f"[{{path}} size must be between {self.min_length} and {upper}]")
        if self.pattern is not None and re.search(self.pattern, value) is None:
            raise _Violation(f'[{{path}} must match "{self.pattern}"]')
        if self.fmt == "uuid" and not _is_uuid(value):
            raise _Violation(
                f'Cannot deserialize value of type `java.util.UUID` from String "{value}": '
                'UUID has to be represented by standard 36-char representation (field "{path}")'
            )
        if self.fmt == "date-time" and not _is_date_time(value):
            raise _Violation(
                f'Cannot deserialize value of type `java.util.Date` from String "{value}": '
                'not a valid ISO 8601 date-time (field "{path}")'
            )


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_uuid(value: str) -> bool:
    """The canonical 36-character form Java's ``UUID.fromString`` is given by clients."""
    return _UUID.fullmatch(value) is not None


# What ``java.net.URI`` refuses (RFC 2396): any ASCII character that is not a letter, digit,
# mark, reserved character, "%" or "#", and any space or control character; besides, "%" must
# be followed by two hex digits and "#" may appear once.
_URI_BAD_CHAR = re.compile(r"[^A-Za-z0-9\-_.!~*'();/?:@&=+$,\[\]%#\u0080-\U0010ffff]|\s")
_URI_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@functools.lru_cache(maxsize=1024)
def _uri_violation(value: str) -> int | None:
    """The index of the first character ``java.net.URI`` refuses, or None.

    Cached: every event of a batch tends to carry the same producer and schema URL.
    """
    bad = [match.start() for match in (_URI_BAD_CHAR.search(value),) if match]
    if "%" in value:
        bad.extend(match.start() for match in (_URI_BAD_ESCAPE.search(value),) if match)
    first_hash = value.find("#")
    if first_hash >= 0 and value.find("#", first_hash + 1) >= 0:
        bad.append(value.find("#", first_hash + 1))
    return min(bad) if bad else None


@dataclass(frozen=True, slots=True)
class Uri(Type):
    """A ``java.net.URI`` field: Jackson refuses what ``URI.create`` refuses."""

    java_type = "java.net.URI"

    def check(self, value: Any) -> None:
        if not isinstance(value, str):
            raise _mismatch(self.java_type, value)
        bad = _uri_violation(value)
        if bad is not None:
            raise _Violation(
                f'Cannot deserialize value of type `java.net.URI` from String "{value}": '
                f"not a valid textual representation, problem: Illegal character at index "
                f'{bad}: {value} (field "{{path}}")'
            )


def _is_date_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value or "t" in value


@dataclass(frozen=True, slots=True)
class Int(Type):
    java_type = "java.lang.Long"

    def check(self, value: Any) -> None:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise _mismatch(self.java_type, value)


@dataclass(frozen=True, slots=True)
class Num(Type):
    java_type = "java.lang.Double"

    def check(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _mismatch(self.java_type, value)


@dataclass(frozen=True, slots=True)
class Bool(Type):
    java_type = "java.lang.Boolean"

    def check(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise _mismatch(self.java_type, value)


@dataclass(frozen=True, slots=True)
class Enum(Type):
    java_name: str
    values: tuple[str, ...]

    @property
    def java_type(self) -> str:  # type: ignore[override]
        return self.java_name

    def check(self, value: Any) -> None:
        if not isinstance(value, str):
            raise _mismatch(self.java_name, value)
        if value not in self.values:
            raise _Violation(
                f'Cannot deserialize value of type `{self.java_name}` from String "{value}": '
                f"not one of the values accepted for Enum class: [{', '.join(self.values)}] "
                '(field "{path}")'
            )


@dataclass(frozen=True, slots=True)
class Arr(Type):
    items: Type
    min_items: int = 0
    java_type = "java.util.ArrayList"

    def check(self, value: Any) -> None:
        if not isinstance(value, list):
            raise _mismatch(self.java_type, value)
        if len(value) < self.min_items:
            raise _Violation(f"[{{path}} size must be between {self.min_items} and 2147483647]")
        check = self.items.check
        for index, item in enumerate(value):
            if item is not None:
                try:
                    check(item)
                except _Violation as violation:
                    violation.parts.append(index)
                    raise


@dataclass(frozen=True, slots=True)
class Map(Type):
    """A JSON object whose keys are free and whose values share one type."""

    values: Type
    java_type = "java.util.LinkedHashMap"

    def check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise _mismatch(self.java_type, value)
        check = self.values.check
        for key, item in value.items():
            if item is not None:
                try:
                    check(item)
                except _Violation as violation:
                    violation.parts.append(str(key))
                    raise


@dataclass(frozen=True, slots=True)
class AnyValue(Type):
    """Free-form JSON (``extension``, ``parameters``): anything goes."""

    def check(self, value: Any) -> None:
        return None


@dataclass(frozen=True, slots=True)
class AnyObject(Type):
    """An object whose inside the mock does not model (profiler configs, lifeCycle, ...)."""

    java_type = "java.util.LinkedHashMap"

    def check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise _mismatch(self.java_type, value)


@dataclass(frozen=True, slots=True)
class Obj(Type):
    """A Java class: named fields, some required; closed unless the schema leaves it open."""

    java_name: str
    fields: Mapping[str, Type]
    required: frozenset[str] = field(default_factory=frozenset)
    closed: bool = True
    # Required fields in declaration order, so the first one missing is the one reported.
    required_order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Fields any string satisfies: a string there needs no call at all (most fields are).
    plain_text: frozenset[str] = field(init=False, repr=False, compare=False)

    @property
    def java_type(self) -> str:  # type: ignore[override]
        return self.java_name

    def __post_init__(self) -> None:
        order = tuple(name for name in self.fields if name in self.required)
        object.__setattr__(self, "required_order", order)
        plain = frozenset(
            name for name, kind in self.fields.items() if isinstance(kind, Str) and kind.plain
        )
        object.__setattr__(self, "plain_text", plain)

    def check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise _mismatch(self.java_name, value)
        fields = self.fields
        # A subset test of the key views runs in C; only a refusal walks the keys in order
        # to name the first unknown one, as Jackson does.
        if self.closed and not value.keys() <= fields.keys():
            for key in value:
                if key not in fields:
                    raise _Violation(
                        f'Unrecognized field "{key}" (class {self.java_name}), '
                        "not marked as ignorable"
                    )
        for name in self.required_order:
            if value.get(name) is None:
                violation = _Violation("[{path} must not be null]")
                violation.parts.append(name)
                raise violation
        plain = self.plain_text
        for name, item in value.items():
            if item is None or (item.__class__ is str and name in plain):
                continue
            kind = fields.get(name)
            if kind is not None:
                try:
                    kind.check(item)
                except _Violation as violation:
                    violation.parts.append(name)
                    raise


class Lazy(Type):
    """A forward reference, for recursive types (a column's ``children`` are columns)."""

    def __init__(self, resolve: Callable[[], Type]) -> None:
        self._resolve = resolve

    def check(self, value: Any) -> None:
        self._resolve().check(value)


def validate(model: Type, body: Any) -> None:
    """Check a decoded request body; raise ``Invalid`` with OpenMetadata's 400 message."""
    if body is None:
        raise Invalid("Request body must not be null")
    try:
        model.check(body)
    except _Violation as violation:
        raise Invalid(violation.template.replace("{path}", _render(violation.parts))) from None


def strip_nulls(body: Any) -> Any:
    """Drop explicit ``null`` members: OpenMetadata treats them as absent."""
    if isinstance(body, dict):
        return {key: strip_nulls(value) for key, value in body.items() if value is not None}
    if isinstance(body, list):
        return [strip_nulls(item) for item in body]
    return body
