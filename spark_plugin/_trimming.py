"""Dataset name trimmers: partition and date directories cut from file dataset names.

Since OpenLineage 1.39 the Spark integration names a dataset read from `.../sales/country=DE` or
written to `.../daily/2024/03/16` after its base directory (`.../sales`, `.../daily`), so that
a daily job or a partition read does not make a new dataset per day or per partition. The full
name is kept in the `subset` dataset facet (a `location` condition listing the original names),
and datasets of one event that trim to the same name with the same facets become one.

The four default trimmers (OpenLineage's class names in brackets) look at the last segment(s)
of a name with at least two segments, and are applied again and again until none trims:

- date (`DateTrimmer`): the last segment holds a valid date (`yyyy-MM-dd`, `dd.MM.yyyy`,
  `yyyyMMdd`) and, once the date, one `T`, one `Z`, blanks, `:`, `.`, `-` and digits are
  removed, nothing is left: `20250901`, `2025-09-01`, `20250722T0901Z`;
- key=value (`KeyValueTrimmer`): the last segment has exactly one `=`: `dt=2025-09-01`;
- multi-directory date (`MultiDirDateTrimmer`): `.../2025/09/01` and `.../2025/09` (the last
  three or two segments read together as `yyyyMMdd` / `yyyyMM`);
- year-month (`YearMonthTrimmer`): the last segment is `yyyyMM` or `yyyy-MM`: `202509`.

Dates are checked the way java.time's default (SMART) resolver does: month 1-12, day 1-31.

`spark.openlineage.dataset.disabledTrimmers` (semicolon-separated class names, full or simple)
turns trimmers off; `spark.openlineage.dataset.removePath.pattern` is a regex whose named group
`remove` (Java `(?<remove>...)` or Python `(?P<remove>...)`) is cut from every dataset name
first. Unknown trimmer names and bad patterns are logged, never raised.

Catalog tables (datasets with a TABLE symlink) keep their location: the symlink names the
table. Only the trimmers' change is recorded in `subset`; `removePath` renames silently, as in
the integration.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._model import ColumnSource, DatasetRef, ExecutionLineage

__all__ = ["DEFAULT_TRIMMERS", "NameTrimming", "trim_name"]

log = logging.getLogger(__name__)

_PACKAGE = "io.openlineage.client.dataset.partition.trimmer."
_MAX_CACHED = 4096

Trimmer = Callable[[str], str | None]  # the trimmed name, or None when it does not apply


def _segments(name: str) -> list[str]:
    """Segments as Java's `split("/")` gives them after a leading "/": trailing empties gone."""
    parts = (name[1:] if name.startswith("/") else name).split("/")
    while parts and not parts[-1]:
        parts.pop()
    return parts


def _several_segments(name: str) -> bool:
    return "/" in name and len(_segments(name)) > 1


def _last(name: str) -> str:
    return name[name.rfind("/") + 1 :]


def _cut_last(name: str) -> str:
    return name[: name.rfind("/")]


def _valid_date(year: str, month: str, day: str | None = None) -> bool:
    if int(year) < 1 or not 1 <= int(month) <= 12:
        return False
    return day is None or 1 <= int(day) <= 31


_DATE_FORMATS = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), (1, 2, 3)),
    (re.compile(r"(\d{2})\.(\d{2})\.(\d{4})"), (3, 2, 1)),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), (1, 2, 3)),
)
_DATE_LEFTOVERS = re.compile(r"[\s:.\-\d]")


def _date(name: str) -> str | None:
    if not _several_segments(name):
        return None
    last = _last(name)
    for pattern, (y, m, d) in _DATE_FORMATS:
        for match in pattern.finditer(last):
            if not _valid_date(match.group(y), match.group(m), match.group(d)):
                continue
            rest = last.replace(match.group(0), "", 1).replace("T", "", 1).replace("Z", "", 1)
            return _cut_last(name) if not _DATE_LEFTOVERS.sub("", rest) else None
    return None


def _key_value(name: str) -> str | None:
    if _several_segments(name) and _last(name).count("=") == 1:
        return _cut_last(name)
    return None


_YEAR_MONTH = re.compile(r"(\d{4})-?(\d{2})")
_YYYYMM = re.compile(r"(\d{4})(\d{2})")
_YYYYMMDD = re.compile(r"(\d{4})(\d{2})(\d{2})")


def _multi_dir_date(name: str) -> str | None:
    parts = _segments(name)
    if len(parts) >= 3:
        match = _YYYYMM.fullmatch(parts[-2] + parts[-1])
        if match and _valid_date(match.group(1), match.group(2)):
            return _cut_last(_cut_last(name))
    if len(parts) >= 4:
        match = _YYYYMMDD.fullmatch(parts[-3] + parts[-2] + parts[-1])
        if match and _valid_date(match.group(1), match.group(2), match.group(3)):
            return _cut_last(_cut_last(_cut_last(name)))
    return None


def _year_month(name: str) -> str | None:
    if not _several_segments(name):
        return None
    match = _YEAR_MONTH.fullmatch(_last(name))
    if match and _valid_date(match.group(1), match.group(2)):
        return _cut_last(name)
    return None


# OpenLineage's class names, in its order
DEFAULT_TRIMMERS: Mapping[str, Trimmer] = {
    "DateTrimmer": _date,
    "KeyValueTrimmer": _key_value,
    "MultiDirDateTrimmer": _multi_dir_date,
    "YearMonthTrimmer": _year_month,
}
# the documentation's older name for the multi-directory date trimmer
_ALIASES = {"MultiDirTrimmer": "MultiDirDateTrimmer"}
_warned: set[str] = set()


def trim_name(name: str, trimmers: Iterable[Trimmer] = DEFAULT_TRIMMERS.values()) -> str:
    """`name` with every trailing segment the trimmers recognise removed."""
    chosen = tuple(trimmers)
    trimming = True
    while trimming:
        trimming = False
        for trimmer in chosen:
            shorter = trimmer(name)
            if shorter is not None and shorter != name and shorter:
                name, trimming = shorter, True
    return name


def _enabled(disabled: Iterable[str]) -> tuple[Trimmer, ...]:
    off: set[str] = set()
    for raw in disabled:
        entry = raw.strip()
        if not entry:
            continue
        simple = entry[len(_PACKAGE) :] if entry.startswith(_PACKAGE) else entry
        simple = _ALIASES.get(simple, simple)
        if simple in DEFAULT_TRIMMERS:
            off.add(simple)
        elif entry not in _warned:
            _warned.add(entry)
            log.warning(
                "lineage-relay: unknown dataset name trimmer %r in "
                "spark.openlineage.dataset.disabledTrimmers (ignored); known: %s",
                entry,
                "; ".join(_PACKAGE + n for n in DEFAULT_TRIMMERS),
            )
    return tuple(t for n, t in DEFAULT_TRIMMERS.items() if n not in off)


def _remove_pattern(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    # Java's named group syntax (?<name>...) is (?P<name>...) in Python; lookbehinds stay
    python = re.sub(r"(?<!\\)\(\?<(?![=!])", "(?P<", pattern)
    try:
        compiled = re.compile(python)
    except re.error as exc:
        log.warning(
            "lineage-relay: spark.openlineage.dataset.removePath.pattern %r is not a valid "
            "regular expression (%s); dataset names are left as they are",
            pattern,
            exc,
        )
        return None
    if "remove" not in compiled.groupindex:
        log.warning(
            "lineage-relay: spark.openlineage.dataset.removePath.pattern %r has no named group "
            "'remove', so it removes nothing; write e.g. '(.*)(?<remove>/tmp.*)'",
            pattern,
        )
        return None
    return compiled


class NameTrimming:
    """Renames the datasets of an `ExecutionLineage`: `removePath.pattern`, then the trimmers."""

    def __init__(
        self, disabled_trimmers: Iterable[str] = (), remove_path_pattern: str = ""
    ) -> None:
        self._trimmers = _enabled(disabled_trimmers)
        self._remove = _remove_pattern(remove_path_pattern)
        self._cache: dict[tuple[str, bool], tuple[str, str]] = {}

    @property
    def active(self) -> bool:
        return bool(self._trimmers) or self._remove is not None

    def names(self, name: str, *, table: bool = False) -> tuple[str, str]:
        """(name after removePath, final name); a catalog table's name is never trimmed."""
        key = (name, table)
        found = self._cache.get(key)
        if found is not None:
            return found
        removed = name
        if self._remove is not None:
            match = self._remove.search(name)
            if match is not None and match.group("remove"):
                removed = name[: match.start("remove")] + name[match.end("remove") :]
        final = removed if table else trim_name(removed, self._trimmers)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (removed, final)
        return removed, final

    def apply(self, lineage: ExecutionLineage) -> ExecutionLineage:
        """The lineage with its datasets renamed and those that became one merged."""
        if not self.active:
            return lineage
        renames: dict[tuple[str, str], str] = {}
        inputs = self._rename_all(lineage.inputs, renames)
        outputs = self._rename_all(lineage.outputs, renames)
        if not renames:
            return lineage
        outputs = [_rename_sources(ref, renames) for ref in outputs]
        return dataclasses.replace(lineage, inputs=_reduce(inputs), outputs=_reduce(outputs))

    def _rename_all(
        self, refs: tuple[DatasetRef, ...], renames: dict[tuple[str, str], str]
    ) -> list[DatasetRef]:
        out = []
        for ref in refs:
            removed, final = self.names(ref.name, table=bool(ref.symlinks))
            if final == ref.name:
                out.append(ref)
                continue
            renames[(ref.namespace, ref.name)] = final
            trimmed = removed != final
            locations = ref.locations or ((removed,) if trimmed else ())
            out.append(dataclasses.replace(ref, name=final, locations=locations))
        return out


def _rename_source(source: ColumnSource, renames: Mapping[tuple[str, str], str]) -> ColumnSource:
    new = renames.get((source.namespace, source.name))
    return source if new is None else dataclasses.replace(source, name=new)


def _rename_sources(ref: DatasetRef, renames: Mapping[tuple[str, str], str]) -> DatasetRef:
    if not ref.column_lineage and not ref.dataset_lineage:
        return ref
    columns = {
        column: tuple(dict.fromkeys(_rename_source(s, renames) for s in sources))
        for column, sources in ref.column_lineage.items()
    }
    dataset = tuple(dict.fromkeys(_rename_source(s, renames) for s in ref.dataset_lineage))
    return dataclasses.replace(ref, column_lineage=columns, dataset_lineage=dataset)


def _facets(ref: DatasetRef) -> Any:
    """What must be equal for two datasets of one trimmed name to become one."""
    return dataclasses.replace(ref, locations=())


def _reduce(refs: list[DatasetRef]) -> tuple[DatasetRef, ...]:
    merged: list[DatasetRef] = []
    for ref in refs:
        for i, known in enumerate(merged):
            if _facets(known) == _facets(ref):
                locations = tuple(dict.fromkeys((*known.locations, *ref.locations)))
                merged[i] = dataclasses.replace(known, locations=locations)
                break
        else:
            merged.append(ref)
    return tuple(merged)
