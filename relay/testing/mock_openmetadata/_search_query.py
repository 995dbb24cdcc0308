"""The queries OpenMetadata hands to Elasticsearch, as predicates on the mock's documents.

- ``q`` of ``/v1/search/query`` is a Lucene query string; the forms real clients send are
  understood: ``*``, ``field:value`` with ``*``/``?`` wildcards and backslash escapes,
  ``field:"exact"``, bare terms (matched against name and FQN), ``NOT``, ``AND``/``OR``.
- ``query_filter`` is Elasticsearch query DSL (``{"query": {...}}``): ``bool``, ``term``,
  ``terms``, ``match``, ``match_phrase``, ``wildcard``, ``prefix``, ``exists``, ``range``,
  ``query_string``, ``nested``, ``match_all``.
- ``fieldQuery`` is one ``wildcard`` query: quotes in its value are literal characters.

A field path may go through objects and arrays (``columns.name``, ``service.name``); a
``.keyword`` subfield is the field itself. Keyword matching is case-insensitive, like
OpenMetadata's lower-case normalised keyword fields.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ApiError

Matcher = Callable[[Mapping[str, Any]], bool]
_KEYWORD = ".keyword"


def field_values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Every scalar under a dotted path (arrays are flattened, ``.keyword`` dropped)."""
    if path.endswith(_KEYWORD):
        path = path[: -len(_KEYWORD)]
    if path in doc:
        nodes: list[Any] = [doc[path]]
    else:
        nodes = [doc]
        for part in path.split("."):
            found: list[Any] = []
            for node in _flat(nodes):
                if isinstance(node, Mapping) and part in node:
                    found.append(node[part])
            nodes = found
    return [value for value in _flat(nodes) if value is not None]


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(_flat(value))
        else:
            out.append(value)
    return out


def keyword(value: Any) -> str:
    """A value as a lower-case keyword (booleans as ``true``/``false``, like JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _wildcard(pattern: str) -> Callable[[str], bool]:
    # Lucene escapes become literal characters; fnmatch needs [] around them.
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(
                f"[{pattern[index + 1]}]" if pattern[index + 1] in "*?[]" else pattern[index + 1]
            )
            index += 2
            continue
        parts.append("[[]" if char == "[" else char)
        index += 1
    compiled = re.compile(fnmatch.translate("".join(parts).lower()))
    return lambda value: compiled.match(value) is not None


def wildcard_field(field: str, pattern: str) -> Matcher:
    """An Elasticsearch ``wildcard`` query (what ``/v1/search/fieldQuery`` runs)."""
    match = _wildcard(pattern)
    return lambda doc: any(match(keyword(value)) for value in field_values(doc, field))


def _equals(field: str, wanted: Any) -> Matcher:
    target = keyword(wanted)
    return lambda doc: any(keyword(value) == target for value in field_values(doc, field))


# -- query strings ----------------------------------------------------------------------------


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _unescaped_colon(term: str) -> int | None:
    index = 0
    while index < len(term):
        if term[index] == "\\":
            index += 2
            continue
        if term[index] == ":":
            return index
        if term[index] == '"':
            return None
        index += 1
    return None


def _term_matcher(term: str) -> Matcher:
    if term.startswith("NOT "):
        inner = _term_matcher(term[4:].strip())
        return lambda doc: not inner(doc)
    if term in ("*", ""):
        return lambda doc: True
    colon = _unescaped_colon(term)
    if colon is not None:
        field, value = term[:colon], term[colon + 1 :]
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            return _equals(field, _unescape(value[1:-1]))
        return wildcard_field(field, value)
    match = _wildcard(term if any(char in term for char in "*?") else f"*{term}*")
    return lambda doc: any(
        match(keyword(value))
        for field in ("name", "fullyQualifiedName")
        for value in field_values(doc, field)
    )


def parse_query(query: str) -> Matcher:
    """A Lucene query string (the subset clients use) as a predicate on documents."""
    query = query.strip()
    alternatives = [part for part in re.split(r"\s+OR\s+", query) if part.strip()] or ["*"]
    groups = [
        [_term_matcher(term.strip()) for term in re.split(r"\s+AND\s+", alternative)]
        for alternative in alternatives
    ]
    return lambda doc: any(all(match(doc) for match in group) for group in groups)


# -- query DSL --------------------------------------------------------------------------------


def parse_dsl(query: Any) -> Matcher:
    """One Elasticsearch query clause (``{"bool": {...}}``, ``{"term": {...}}``, ...)."""
    if not isinstance(query, Mapping) or len(query) != 1:
        raise ApiError(400, f"Failed to parse query_filter: expected one query clause, got {query}")
    ((kind, body),) = query.items()
    builder = _CLAUSES.get(kind)
    if builder is None:
        raise ApiError(400, f"Failed to parse query_filter: unknown query [{kind}]")
    return builder(body)


def _field_and_value(body: Any, key: str) -> tuple[str, Any]:
    if not isinstance(body, Mapping) or len(body) != 1:
        raise ApiError(400, f"Failed to parse query_filter: expected one field in {body}")
    ((field, value),) = body.items()
    if isinstance(value, Mapping):
        value = value.get(key, value.get("value"))
    return str(field), value


def _clauses(body: Mapping[str, Any], occur: str) -> list[Matcher]:
    value = body.get(occur) or []
    return [parse_dsl(item) for item in (value if isinstance(value, list) else [value])]


def _bool(body: Any) -> Matcher:
    if not isinstance(body, Mapping):
        raise ApiError(400, "Failed to parse query_filter: [bool] takes an object")
    must = _clauses(body, "must") + _clauses(body, "filter")
    should, must_not = _clauses(body, "should"), _clauses(body, "must_not")
    minimum = int(body.get("minimum_should_match", 0 if must else 1)) if should else 0

    def match(doc: Mapping[str, Any]) -> bool:
        return (
            all(clause(doc) for clause in must)
            and not any(clause(doc) for clause in must_not)
            and sum(1 for clause in should if clause(doc)) >= minimum
        )

    return match


def _term(body: Any) -> Matcher:
    return _equals(*_field_and_value(body, "value"))


def _terms(body: Any) -> Matcher:
    field, values = _field_and_value(body, "value")
    wanted = {keyword(value) for value in (values if isinstance(values, list) else [values])}
    return lambda doc: any(keyword(value) in wanted for value in field_values(doc, field))


def _match(body: Any) -> Matcher:
    field, text = _field_and_value(body, "query")
    needle = keyword(text)
    return lambda doc: any(needle in keyword(value) for value in field_values(doc, field))


def _wildcard_clause(body: Any) -> Matcher:
    field, pattern = _field_and_value(body, "wildcard")
    return wildcard_field(field, str(pattern))


def _prefix(body: Any) -> Matcher:
    field, prefix = _field_and_value(body, "value")
    start = keyword(prefix)
    return lambda doc: any(keyword(value).startswith(start) for value in field_values(doc, field))


def _exists(body: Any) -> Matcher:
    field = str((body or {}).get("field", "")) if isinstance(body, Mapping) else ""
    return lambda doc: bool(field_values(doc, field))


def _range(body: Any) -> Matcher:
    if not isinstance(body, Mapping) or len(body) != 1:
        raise ApiError(400, "Failed to parse query_filter: [range] takes one field")
    ((field, bounds),) = body.items()
    checks: dict[str, Callable[[float, float], bool]] = {
        "gt": float.__gt__,
        "gte": float.__ge__,
        "lt": float.__lt__,
        "lte": float.__le__,
    }
    wanted = [(checks[name], bound) for name, bound in bounds.items() if name in checks]

    def match(doc: Mapping[str, Any]) -> bool:
        for value in field_values(doc, field):
            try:
                if all(check(float(value), float(bound)) for check, bound in wanted):
                    return True
            except (TypeError, ValueError):
                continue
        return False

    return match


def _query_string(body: Any) -> Matcher:
    return parse_query(str((body or {}).get("query", "*")) if isinstance(body, Mapping) else "*")


def _nested(body: Any) -> Matcher:
    return parse_dsl((body or {}).get("query")) if isinstance(body, Mapping) else parse_dsl(None)


_CLAUSES: dict[str, Callable[[Any], Matcher]] = {
    "bool": _bool,
    "term": _term,
    "terms": _terms,
    "match": _match,
    "match_phrase": _match,
    "wildcard": _wildcard_clause,
    "prefix": _prefix,
    "exists": _exists,
    "range": _range,
    "query_string": _query_string,
    "nested": _nested,
    "match_all": lambda body: lambda doc: True,
}
