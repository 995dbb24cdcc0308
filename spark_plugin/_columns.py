"""Column-level lineage over plain plan nodes, the way the OpenLineage Spark integration reports it.

Pure: the nodes come from the JVM digest (`_plan_digest.java`), already flattened in post-order
(children and subquery plans before their parent), so one forward pass sees every attribute
before it is used. Lineage follows expression ids: an attribute keeps its id through pass-through
nodes (Filter, Sort, Limit, SubqueryAlias, View, Join...), an `Alias` creates a new id whose
sources are the ids it references, a Union maps output i to each child's output i, a CTE
reference maps to its definition.

Each reference carries a one-letter code computed in the JVM:

- direct (field level): ``I`` identity, ``T`` transformation, ``A`` aggregation;
- indirect, field level: ``C`` conditional (CASE/IF predicates), ``W`` window partition/order;
- indirect, dataset level: ``F`` filter, ``J`` join, ``G`` group by, ``S`` sort;
- a trailing ``M`` marks masking functions (sha2, md5, hash, mask...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spark_plugin._model import ColumnSource, Transformation

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "ColumnLineage",
    "PlanNode",
    "column_lineage",
]

DEFAULT_MAX_COLUMNS = 1000

_DIRECT = {"I": "IDENTITY", "T": "TRANSFORMATION", "A": "AGGREGATION"}
_INDIRECT = {
    "C": "CONDITIONAL",
    "W": "WINDOW",
    "F": "FILTER",
    "J": "JOIN",
    "G": "GROUP_BY",
    "S": "SORT",
}
_FIELD_INDIRECT = frozenset("CW")
_STRENGTH = {"I": 0, "T": 1, "A": 2}
# stable order of transformations inside one input field, as the integration lists them
_ORDER = "ITACWGJFS"

# (input dataset index, field name)
_Source = tuple[int, str]
# codes of one source: letters from _DIRECT / _INDIRECT, plus "M" for masking
_Codes = frozenset[str]


@dataclass(frozen=True, slots=True)
class PlanNode:
    """One logical plan node, as much of it as lineage needs."""

    kind: str
    children: tuple[int, ...] = ()
    # output attributes: (name, exprId)
    output: tuple[tuple[str, int], ...] = ()
    # (defined exprId or -1, name, ((referenced exprId, code), ...))
    exprs: tuple[tuple[int, str, tuple[tuple[int, str], ...]], ...] = ()
    subqueries: tuple[int, ...] = ()
    cte_id: int | None = None


@dataclass(frozen=True, slots=True)
class ColumnLineage:
    fields: dict[str, tuple[ColumnSource, ...]]
    dataset: tuple[ColumnSource, ...]


def _compose(codes: _Codes, code: str) -> _Codes:
    """The codes of a source seen through one more expression with `code`."""
    base = code[0]
    out: set[str] = {c for c in codes if c in _FIELD_INDIRECT}
    if "M" in codes or code.endswith("M"):
        out.add("M")
    if base in _DIRECT:
        direct = [c for c in codes if c in _DIRECT]
        if direct:
            strongest = max([*direct, base], key=_STRENGTH.__getitem__)
            out.add(strongest)
    else:
        out.add(base)
    return frozenset(out)


def _merge(into: dict[_Source, _Codes], more: Mapping[_Source, _Codes]) -> None:
    for src, codes in more.items():
        have = into.get(src)
        if have is None:
            into[src] = codes
            continue
        merged = set(have | codes)
        direct = [c for c in merged if c in _DIRECT]
        if len(direct) > 1:
            strongest = max(direct, key=_STRENGTH.__getitem__)
            merged.difference_update(direct)
            merged.add(strongest)
        into[src] = frozenset(merged)


def _through(lineage: Mapping[_Source, _Codes], code: str) -> dict[_Source, _Codes]:
    return {src: _compose(codes, code) for src, codes in lineage.items()}


def _transformations(codes: _Codes) -> tuple[Transformation, ...]:
    masking = "M" in codes
    out: list[Transformation] = []
    for letter in _ORDER:
        if letter not in codes:
            continue
        if letter in _DIRECT:
            out.append(Transformation("DIRECT", _DIRECT[letter], masking))
        else:
            out.append(Transformation("INDIRECT", _INDIRECT[letter], masking))
    return tuple(out)


def column_lineage(
    nodes: Sequence[PlanNode],
    query_root: int,
    output_columns: Sequence[str],
    leaf_sources: Mapping[int, Sequence[int]],
    inputs: Sequence[tuple[str, str]],
    *,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> ColumnLineage:
    """Lineage of the written columns.

    `query_root` is the node whose output is written; output attribute i is written as
    `output_columns[i]` (positional, as `insertInto` does). `leaf_sources` maps a relation node to
    the input dataset indices it reads; `inputs` are the (namespace, name) of those datasets.
    Only the first `max_columns` output columns get lineage (wide schemas blow events up).
    """
    by_id: dict[int, dict[_Source, _Codes]] = {}
    dataset: dict[_Source, set[str]] = {}
    cte_outputs: dict[int, tuple[tuple[str, int], ...]] = {}

    for index, node in enumerate(nodes):
        sources = leaf_sources.get(index)
        if sources:
            for name, expr_id in node.output:
                by_id[expr_id] = {(src, name): frozenset("I") for src in sources}
            continue
        if node.kind == "CTERelationDef" and node.cte_id is not None:
            cte_outputs[node.cte_id] = node.output
        elif node.kind == "CTERelationRef" and node.cte_id is not None:
            definition = cte_outputs.get(node.cte_id, ())
            for (_, expr_id), (_, def_id) in zip(node.output, definition, strict=False):
                if expr_id != def_id and def_id in by_id:
                    _merge(by_id.setdefault(expr_id, {}), by_id[def_id])
        elif node.kind == "Union" and node.children:
            for position, (_, expr_id) in enumerate(node.output):
                target: dict[_Source, _Codes] = {}
                for child in node.children:
                    child_output = nodes[child].output
                    if position < len(child_output):
                        child_id = child_output[position][1]
                        _merge(target, _through(by_id.get(child_id, {}), "I"))
                _merge(by_id.setdefault(expr_id, {}), target)
        for defined, _name, refs in node.exprs:
            if defined >= 0:
                target = {}
                for ref_id, code in refs:
                    _merge(target, _through(by_id.get(ref_id, {}), code))
                by_id[defined] = target
            else:
                for ref_id, code in refs:
                    letter = code[0]
                    if letter in _DIRECT or letter in _FIELD_INDIRECT:
                        continue
                    for src in by_id.get(ref_id, {}):
                        dataset.setdefault(src, set()).add(letter)

    root_output = nodes[query_root].output if 0 <= query_root < len(nodes) else ()
    fields: dict[str, tuple[ColumnSource, ...]] = {}
    for position, column in enumerate(output_columns[:max_columns]):
        if position >= len(root_output):
            break
        found = by_id.get(root_output[position][1], {})
        column_sources = [
            ColumnSource(inputs[src][0], inputs[src][1], field, _transformations(codes))
            for (src, field), codes in found.items()
            if 0 <= src < len(inputs)
        ]
        column_sources.sort(key=lambda s: (s.namespace, s.name, s.field))
        fields[column] = tuple(column_sources)
    indirect = [
        ColumnSource(inputs[src][0], inputs[src][1], field, _transformations(frozenset(codes)))
        for (src, field), codes in dataset.items()
        if 0 <= src < len(inputs)
    ]
    indirect.sort(key=lambda s: (s.namespace, s.name, s.field))
    return ColumnLineage(fields=fields, dataset=tuple(indirect))
