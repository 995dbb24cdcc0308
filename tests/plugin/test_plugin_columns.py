"""Column lineage over hand-built plan nodes (what the JVM digest produces), without Spark."""

from __future__ import annotations

from spark_plugin._columns import PlanNode, column_lineage
from spark_plugin._model import ColumnSource

INPUTS = [("file", "/data/people"), ("file", "/data/depts")]


def _rel(*columns: tuple[str, int]) -> PlanNode:
    return PlanNode(kind="LogicalRelation", output=columns)


def _summary(sources: tuple[ColumnSource, ...]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (s.name, s.field, tuple(f"{t.type[0]}:{t.subtype}" for t in s.transformations))
        for s in sources
    }


def test_project_alias_identity_and_transformation() -> None:
    nodes = [
        _rel(("id", 1), ("name", 2), ("salary", 3)),
        PlanNode(
            kind="Filter",
            children=(0,),
            output=((("id", 1)), ("name", 2), ("salary", 3)),
            exprs=((-1, "", ((3, "F"),)),),
        ),
        PlanNode(
            kind="Project",
            children=(1,),
            output=(("id", 1), ("loud", 10), ("ident", 11)),
            exprs=((10, "loud", ((2, "T"),)), (11, "ident", ((1, "I"),))),
        ),
    ]
    result = column_lineage(nodes, 2, ["id", "loud", "ident"], {0: [0]}, INPUTS)
    assert _summary(result.fields["id"]) == {("/data/people", "id", ("D:IDENTITY",))}
    assert _summary(result.fields["loud"]) == {("/data/people", "name", ("D:TRANSFORMATION",))}
    assert _summary(result.fields["ident"]) == {("/data/people", "id", ("D:IDENTITY",))}
    assert _summary(result.dataset) == {("/data/people", "salary", ("I:FILTER",))}


def test_join_aggregate_group_by_and_composition() -> None:
    nodes = [
        _rel(("id", 1), ("dept_id", 2), ("salary", 3)),
        _rel(("dept_id", 4), ("dept", 5)),
        PlanNode(
            kind="Join",
            children=(0, 1),
            output=(("id", 1), ("dept_id", 2), ("salary", 3), ("dept_id", 4), ("dept", 5)),
            exprs=((-1, "", ((2, "J"), (4, "J"))),),
        ),
        # doubled = salary * 2 (T), then total = sum(doubled) (A): aggregation wins
        PlanNode(
            kind="Project",
            children=(2,),
            output=(("dept", 5), ("doubled", 6)),
            exprs=((6, "doubled", ((3, "T"),)),),
        ),
        PlanNode(
            kind="Aggregate",
            children=(3,),
            output=(("dept", 5), ("total", 7)),
            exprs=((-1, "", ((5, "G"),)), (7, "total", ((6, "A"),))),
        ),
    ]
    result = column_lineage(nodes, 4, ["dept", "total"], {0: [0], 1: [1]}, INPUTS)
    assert _summary(result.fields["dept"]) == {("/data/depts", "dept", ("D:IDENTITY",))}
    assert _summary(result.fields["total"]) == {("/data/people", "salary", ("D:AGGREGATION",))}
    assert _summary(result.dataset) == {
        ("/data/people", "dept_id", ("I:JOIN",)),
        ("/data/depts", "dept_id", ("I:JOIN",)),
        ("/data/depts", "dept", ("I:GROUP_BY",)),
    }


def test_union_maps_positions_and_dedupes_a_self_union() -> None:
    nodes = [
        _rel(("a", 1)),
        _rel(("a", 2)),  # the same dataset read twice (self-union): one input
        PlanNode(kind="Project", children=(1,), output=(("b", 3),), exprs=((3, "b", ((2, "T"),)),)),
        PlanNode(kind="Union", children=(0, 2), output=(("a", 1),)),
    ]
    result = column_lineage(nodes, 3, ["out"], {0: [0], 1: [0]}, INPUTS)
    (only,) = result.fields["out"]
    # identity from one branch, transformation from the other: the stronger one is reported
    assert (only.field, [t.subtype for t in only.transformations]) == ("a", ["TRANSFORMATION"])


def test_cte_reference_with_new_ids_and_subquery() -> None:
    nodes = [
        _rel(("id", 1), ("v", 2)),
        PlanNode(kind="CTERelationDef", children=(0,), output=(("id", 1), ("v", 2)), cte_id=0),
        _rel(("id", 20), ("v", 21)),  # subquery plan over the other input
        PlanNode(kind="CTERelationRef", output=(("id", 30), ("v", 31)), cte_id=0),
        PlanNode(
            kind="Filter",
            children=(3,),
            output=(("id", 30), ("v", 31)),
            exprs=((-1, "", ((30, "F"), (20, "F"))),),
            subqueries=(2,),
        ),
        PlanNode(
            kind="Project",
            children=(4,),
            output=(("id", 30), ("m", 40)),
            exprs=((40, "m", ((31, "TM"),)),),
        ),
        PlanNode(kind="WithCTE", children=(1, 5), output=(("id", 30), ("m", 40))),
    ]
    result = column_lineage(nodes, 6, ["id", "m"], {0: [0], 2: [1]}, INPUTS)
    assert _summary(result.fields["id"]) == {("/data/people", "id", ("D:IDENTITY",))}
    (masked,) = result.fields["m"]
    assert [(t.subtype, t.masking) for t in masked.transformations] == [("TRANSFORMATION", True)]
    assert _summary(result.dataset) == {
        ("/data/people", "id", ("I:FILTER",)),
        ("/data/depts", "id", ("I:FILTER",)),
    }


def test_window_conditional_and_generate() -> None:
    nodes = [
        _rel(("k", 1), ("v", 2), ("arr", 3)),
        PlanNode(
            kind="Window",
            children=(0,),
            output=(("k", 1), ("v", 2), ("arr", 3), ("running", 4)),
            exprs=((4, "running", ((2, "A"), (1, "W"))),),
        ),
        PlanNode(
            kind="Generate",
            children=(1,),
            output=(("k", 1), ("running", 4), ("item", 5)),
            exprs=((5, "item", ((3, "T"),)),),
        ),
        PlanNode(
            kind="Project",
            children=(2,),
            output=(("flag", 6), ("running", 4), ("item", 5)),
            exprs=((6, "flag", ((4, "C"), (1, "T"))),),
        ),
        PlanNode(
            kind="Sort",
            children=(3,),
            output=(("flag", 6), ("running", 4), ("item", 5)),
            exprs=((-1, "", ((5, "S"),)),),
        ),
    ]
    result = column_lineage(nodes, 4, ["flag", "running", "item"], {0: [0]}, INPUTS)
    assert _summary(result.fields["running"]) == {
        ("/data/people", "v", ("D:AGGREGATION",)),
        ("/data/people", "k", ("I:WINDOW",)),
    }
    assert _summary(result.fields["item"]) == {("/data/people", "arr", ("D:TRANSFORMATION",))}
    # k: direct in the CASE value and indirect through the window partition in the condition
    assert _summary(result.fields["flag"]) == {
        ("/data/people", "k", ("D:TRANSFORMATION", "I:CONDITIONAL", "I:WINDOW")),
        ("/data/people", "v", ("I:CONDITIONAL",)),
    }
    assert _summary(result.dataset) == {("/data/people", "arr", ("I:SORT",))}


def test_column_cap_and_missing_sources() -> None:
    nodes = [
        _rel(*[(f"c{i}", i) for i in range(5)]),
        PlanNode(kind="LocalRelation", output=(("lit", 99),)),
        PlanNode(
            kind="Join",
            children=(0, 1),
            output=(*[(f"c{i}", i) for i in range(5)], ("lit", 99)),
        ),
    ]
    names = [f"c{i}" for i in range(5)] + ["lit"]
    capped = column_lineage(nodes, 2, names, {0: [0]}, INPUTS, max_columns=3)
    assert list(capped.fields) == ["c0", "c1", "c2"]
    full = column_lineage(nodes, 2, names, {0: [0]}, INPUTS)
    assert full.fields["lit"] == ()
    assert len(full.fields) == 6
