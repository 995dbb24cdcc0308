"""Dataset name trimmers (issue 16): partition and date directories cut from file dataset names,
the full names kept in the `subset` facet, as the OpenLineage Spark integration does since 1.39.

The rules are unit-tested on names; the behaviour is shown on the shared real SparkSession with
the plugin enabled and its events posted to a local receiver and validated against the spec.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_support import SpecValidator, receiving

from spark_plugin import _state, enable
from spark_plugin._config import load_plugin_config
from spark_plugin._events import AppContext, execution_event, merge_executions, new_run_id
from spark_plugin._model import (
    ColumnSource,
    DatasetRef,
    ExecutionLineage,
    SchemaField,
    Symlink,
    Transformation,
)
from spark_plugin._trimming import DEFAULT_TRIMMERS, NameTrimming, trim_name

PACKAGE = "io.openlineage.client.dataset.partition.trimmer."
IDENTITY = (Transformation("DIRECT", "IDENTITY"),)
Events = list[dict[str, Any]]


# ---------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # date
        ("/tmp/20250721", "/tmp"),
        ("tmp/20250721", "tmp"),
        ("/data/2025-09-01", "/data"),
        ("/data/20250722T0901Z", "/data"),
        ("/data/20250722T901Z", "/data"),
        ("/data/01.09.2025", "/data"),
        ("/data/2025-25-01", "/data/2025-25-01"),  # no month 25
        ("/data/v20250901", "/data/v20250901"),  # a letter is left
        ("/20250901", "/20250901"),  # one segment: nothing to trim to
        # key=value
        ("/sales/country=DE", "/sales"),
        ("/events/dt=2025-09-01/hour=05", "/events"),
        ("/data/a=b=c", "/data/a=b=c"),  # two "=": not a partition
        # multi-directory date
        ("/events/2024/03/15", "/events"),
        ("/events/2025/09", "/events"),
        ("/2025/09/01", "/2025/09/01"),  # nothing before the date
        ("/events/2025/13", "/events/2025/13"),
        # year-month
        ("/data/202509", "/data"),
        ("/data/2025-09", "/data"),
        ("/data/202533", "/data/202533"),
        # again and again
        ("/lake/t/dt=2025-09-01/20250901/region=eu", "/lake/t"),
        ("bucket-key/tbl/2025/09/01/part=3", "bucket-key/tbl"),
        ("/plain/dir/name", "/plain/dir/name"),
    ],
)
def test_default_trimmers(name: str, expected: str) -> None:
    assert trim_name(name) == expected


EXAMPLES = {
    "DateTrimmer": "/data/20250901",
    "KeyValueTrimmer": "/data/dt=1",
    "MultiDirDateTrimmer": "/data/2025/09/01",
    "YearMonthTrimmer": "/data/2025-09",
}


@pytest.mark.parametrize(
    ("disabled", "trimmer"),
    [(name, name) for name in EXAMPLES] + [("MultiDirTrimmer", "MultiDirDateTrimmer")],
)
def test_each_trimmer_disabled_by_its_openlineage_class_name(disabled: str, trimmer: str) -> None:
    for spelled in (PACKAGE + disabled, disabled):
        trimming = NameTrimming([spelled])
        for other, name in EXAMPLES.items():
            assert NameTrimming().names(name)[1] == "/data"
            expected = name if other == trimmer else "/data"
            assert trimming.names(name)[1] == expected, (spelled, name)


def test_disabled_trimmers_from_spark_conf_and_options() -> None:
    conf = {
        "spark.openlineage.dataset.disabledTrimmers": (
            f"{PACKAGE}DateTrimmer;{PACKAGE}KeyValueTrimmer"
        ),
        "spark.openlineage.dataset.removePath.pattern": "(.*)(?<remove>/tmp)",
    }
    config = load_plugin_config(conf, {})
    assert config.disabled_trimmers == (f"{PACKAGE}DateTrimmer", f"{PACKAGE}KeyValueTrimmer")
    assert config.remove_path_pattern == "(.*)(?<remove>/tmp)"
    listed = load_plugin_config({"spark.openlineage.dataset.disabledTrimmers": "[a; b]"}, {})
    assert listed.disabled_trimmers == ("a", "b")
    option = load_plugin_config({}, {}, {"disabled_trimmers": "YearMonthTrimmer;DateTrimmer"})
    assert option.disabled_trimmers == ("YearMonthTrimmer", "DateTrimmer")
    assert load_plugin_config({}, {}).disabled_trimmers == ()


def test_unknown_trimmer_is_logged_once_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="spark_plugin"):
        first = NameTrimming(["org.company.NoSuchTrimmerForTheTest", "KeyValueTrimmer"])
        NameTrimming(["org.company.NoSuchTrimmerForTheTest"])
    warnings = [r for r in caplog.records if "NoSuchTrimmerForTheTest" in r.getMessage()]
    assert len(warnings) == 1
    assert "disabledTrimmers" in warnings[0].getMessage()
    assert first.names("/d/k=v")[1] == "/d/k=v" and first.names("/d/20250901")[1] == "/d"


@pytest.mark.parametrize(
    "pattern",
    ["(.*)(?<remove>/staging)(.*)", "(.*)(?P<remove>/staging)(.*)", "(?<remove>/staging)"],
)
def test_remove_path_pattern(pattern: str) -> None:
    trimming = NameTrimming(remove_path_pattern=pattern)
    assert trimming.names("/lake/staging/orders") == ("/lake/orders", "/lake/orders")
    # removePath first, then the trimmers; only the trimmers' part is a subset location
    assert trimming.names("/lake/staging/orders/dt=1") == ("/lake/orders/dt=1", "/lake/orders")
    assert trimming.names("/lake/orders") == ("/lake/orders", "/lake/orders")


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("(?<remove>[", "not a valid regular expression"), ("(.*)/tmp", "no named group")],
)
def test_bad_remove_path_pattern_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, pattern: str, says: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="spark_plugin"):
        trimming = NameTrimming(remove_path_pattern=pattern)
    assert says in caplog.text and "removePath.pattern" in caplog.text
    assert trimming.names("/a/tmp/dt=1") == ("/a/tmp/dt=1", "/a/tmp")


# ---------------------------------------------------------------------------- merging


def _ref(name: str, *, schema: tuple[str, ...] = ("id",), **kw: Any) -> DatasetRef:
    return DatasetRef(
        namespace="file", name=name, schema=tuple(SchemaField(f, "integer") for f in schema), **kw
    )


def test_trimmed_datasets_with_the_same_facets_become_one() -> None:
    out = _ref(
        "/out/2024/03/16",
        column_lineage={
            "id": (
                ColumnSource("file", "/in/country=DE", "id", IDENTITY),
                ColumnSource("file", "/in/country=FR", "id", IDENTITY),
            )
        },
    )
    lineage = ExecutionLineage(
        node_name="n",
        inputs=(
            _ref("/in/country=DE"),
            _ref("/in/country=FR"),
            _ref("/in/country=IT", schema=("id", "extra")),  # other facets: kept apart
            _ref("/wh/t/20240316", symlinks=(Symlink("file:/wh/t", "default.t"),)),
        ),
        outputs=(out,),
    )
    trimmed = NameTrimming().apply(lineage)
    assert [(i.name, i.locations) for i in trimmed.inputs] == [
        ("/in", ("/in/country=DE", "/in/country=FR")),
        ("/in", ("/in/country=IT",)),
        ("/wh/t/20240316", ()),  # a catalog table keeps its location
    ]
    (dst,) = trimmed.outputs
    assert (dst.name, dst.locations) == ("/out", ("/out/2024/03/16",))
    assert dst.column_lineage["id"] == (ColumnSource("file", "/in", "id", IDENTITY),)
    # nested executions of one action merge their locations
    outer, inner = (
        NameTrimming().apply(ExecutionLineage(node_name="n", inputs=(_ref(f"/in/c={c}"),)))
        for c in ("DE", "FR")
    )
    merged = merge_executions([outer, inner])
    assert [(i.name, i.locations) for i in merged.inputs] == [("/in", ("/in/c=DE", "/in/c=FR"))]
    untouched = ExecutionLineage(node_name="n", inputs=(_ref("/in/plain"),))
    assert NameTrimming().apply(untouched) is untouched


def test_subset_facet_is_valid_openlineage(validator: SpecValidator) -> None:
    lineage = ExecutionLineage(
        node_name="execute_insert_into_hadoop_fs_relation_command",
        inputs=(_ref("/in", locations=("/in/a=1", "/in/a=2")),),
        outputs=(_ref("/out", locations=("/out/20240316",), row_count=3),),
    )
    ctx = AppContext(
        namespace="ns", app_name="a", app_job_name="a", app_run_id=new_run_id(), spark_version="4"
    )
    for kind in ("START", "COMPLETE"):
        event = execution_event(
            ctx,
            "START" if kind == "START" else "COMPLETE",
            1e12,
            run_id=new_run_id(),
            job_name="a.b",
            lineage=lineage,
        )
        assert validator.errors(event) == []
        (src,) = event["inputs"]
        assert src["inputFacets"]["subset"]["inputCondition"] == {
            "type": "location",
            "locations": ["/in/a=1", "/in/a=2"],
        }
        (dst,) = event["outputs"]
        assert dst["outputFacets"]["subset"]["outputCondition"]["locations"] == ["/out/20240316"]


# ---------------------------------------------------------------------------- real jobs


@pytest.fixture(scope="module")
def data(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("trim")
    rows = spark.createDataFrame(
        [(1, "ann", "DE"), (2, "bob", "FR"), (3, "cid", "DE")],
        "id int, name string, country string",
    )
    rows.write.partitionBy("country").parquet(str(base / "sales"))
    rows.write.parquet(str(base / "events" / "2024" / "03" / "15"))
    rows.write.parquet(str(base / "events" / "20240315"))
    yield base
    spark.sql("DROP TABLE IF EXISTS trim_dated")


def _runs(events: Events) -> dict[str, Events]:
    """Run events by job name (application events left out)."""
    runs: dict[str, Events] = {}
    for event in events:
        if "parent" in event["run"]["facets"]:
            runs.setdefault(event["job"]["name"], []).append(event)
    return runs


def _run_jobs(spark: Any, jobs: list[Any], **options: Any) -> Events:
    _state.reset()  # no handle left open by another module on the shared session
    with receiving() as receiver:
        handle = enable(spark, url=receiver.url, **options)
        try:
            for job in jobs:
                job()
                assert handle.flush(30)
        finally:
            assert handle.close(30)
        return receiver.events()


def _ends(events: Events) -> Events:
    return [e for e in events if e["eventType"] in ("COMPLETE", "FAIL") and e["outputs"]]


def _end_writing(events: Events, output_name: str) -> dict[str, Any]:
    found = [e for e in _ends(events) if e["outputs"][0]["name"] == output_name]
    assert len(found) == 1, [e["outputs"][0]["name"] for e in _ends(events)]
    return found[0]


@pytest.fixture(scope="module")
def default_run(spark: Any, data: Path) -> Events:
    base = data

    def one_partition() -> None:
        spark.read.parquet(str(base / "sales" / "country=DE")).selectExpr(
            "id", "upper(name) AS loud"
        ).write.mode("overwrite").parquet(str(base / "out_one"))

    def several_partitions() -> None:
        spark.read.parquet(
            str(base / "sales" / "country=DE"), str(base / "sales" / "country=FR")
        ).write.mode("overwrite").parquet(str(base / "out_several"))

    def dated_dirs() -> None:
        spark.read.parquet(str(base / "events" / "2024" / "03" / "15")).write.mode(
            "overwrite"
        ).parquet(str(base / "daily" / "2024" / "03" / "16"))

    def compact_date() -> None:
        spark.read.parquet(str(base / "events" / "20240315")).write.mode("overwrite").parquet(
            str(base / "daily_compact" / "20240316")
        )

    def partitioned_write() -> None:
        spark.read.parquet(str(base / "sales")).write.mode("overwrite").partitionBy(
            "country"
        ).parquet(str(base / "by_country"))

    def catalog_table() -> None:
        spark.read.parquet(str(base / "events" / "20240315")).write.mode("overwrite").option(
            "path", str(base / "tables" / "20240316")
        ).saveAsTable("trim_dated")

    jobs = [one_partition, several_partitions, dated_dirs, compact_date]
    return _run_jobs(spark, [*jobs, partitioned_write, catalog_table])


def _check_valid(validator: SpecValidator, events: Events) -> None:
    for event in events:
        assert validator.errors(event) == [], (event["eventType"], event["job"]["name"])


@pytest.mark.spark
def test_one_partition_read(default_run: Events, data: Path, validator: SpecValidator) -> None:
    end = _end_writing(default_run, str(data / "out_one"))
    (src,) = end["inputs"]
    assert (src["namespace"], src["name"]) == ("file", str(data / "sales"))
    assert src["inputFacets"]["subset"]["inputCondition"] == {
        "type": "location",
        "locations": [str(data / "sales" / "country=DE")],
    }
    fields = end["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [(f["name"], f["field"]) for f in fields["loud"]["inputFields"]] == [
        (str(data / "sales"), "name")
    ]
    assert "subset" not in end["outputs"][0]["outputFacets"]  # out_one is not trimmed
    _check_valid(validator, default_run)


@pytest.mark.spark
def test_several_partitions_in_one_read_become_one_input(default_run: Events, data: Path) -> None:
    end = _end_writing(default_run, str(data / "out_several"))
    (src,) = end["inputs"]
    assert src["name"] == str(data / "sales")
    assert sorted(src["inputFacets"]["subset"]["inputCondition"]["locations"]) == [
        str(data / "sales" / "country=DE"),
        str(data / "sales" / "country=FR"),
    ]
    fields = end["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [f["name"] for f in fields["id"]["inputFields"]] == [str(data / "sales")]


@pytest.mark.spark
def test_dated_directories_read_and_written(default_run: Events, data: Path) -> None:
    for read, written, trimmed in [
        (
            data / "events" / "2024" / "03" / "15",
            data / "daily" / "2024" / "03" / "16",
            data / "daily",
        ),
        (data / "events" / "20240315", data / "daily_compact" / "20240316", data / "daily_compact"),
    ]:
        end = _end_writing(default_run, str(trimmed))
        (src,) = end["inputs"]
        assert src["name"] == str(data / "events")
        assert src["inputFacets"]["subset"]["inputCondition"]["locations"] == [str(read)]
        (dst,) = end["outputs"]
        assert dst["outputFacets"]["subset"]["outputCondition"] == {
            "type": "location",
            "locations": [str(written)],
        }
        # START carries the trimmed names too, and the job is named after the trimmed output
        (start,) = [
            e
            for e in default_run
            if e["eventType"] == "START" and e["run"]["runId"] == end["run"]["runId"]
        ]
        assert start["outputs"][0]["name"] == dst["name"]
        assert start["job"]["name"].endswith(dst["name"].rsplit("/", 2)[-1].replace(".", "_"))
        assert "2024" not in start["job"]["name"].rsplit(".", 1)[-1]


@pytest.mark.spark
def test_partitioned_write_and_catalog_table_keep_their_names(
    default_run: Events, data: Path
) -> None:
    end = _end_writing(default_run, str(data / "by_country"))
    assert end["inputs"][0]["name"] == str(data / "sales")
    assert "subset" not in end["inputs"][0]["inputFacets"]
    assert "subset" not in end["outputs"][0]["outputFacets"]
    table = _end_writing(default_run, str(data / "tables" / "20240316"))
    (dst,) = table["outputs"]
    assert dst["facets"]["symlinks"]["identifiers"][0]["name"] == "default.trim_dated"
    assert "subset" not in dst["outputFacets"]


@pytest.mark.spark
def test_disabled_trimmer_and_remove_path_on_a_real_job(
    spark: Any, data: Path, validator: SpecValidator
) -> None:
    staged = data / "staging" / "kv_out" / "20240316"

    def job() -> None:
        spark.read.parquet(str(data / "sales" / "country=DE")).write.mode("overwrite").parquet(
            str(staged)
        )

    events = _run_jobs(
        spark,
        [job],
        disabled_trimmers=[PACKAGE + "KeyValueTrimmer"],
        remove_path_pattern="(.*)(?<remove>/staging)(.*)",
    )
    end = _end_writing(events, str(data / "kv_out"))
    (src,) = end["inputs"]
    assert src["name"] == str(data / "sales" / "country=DE")  # KeyValueTrimmer is off
    assert src["inputFacets"] == {}
    (dst,) = end["outputs"]
    # /staging removed, then the date trimmed: the location is the name after removePath
    assert dst["outputFacets"]["subset"]["outputCondition"]["locations"] == [
        str(data / "kv_out" / "20240316")
    ]
    _check_valid(validator, events)


@pytest.mark.spark
def test_bad_pattern_is_logged_and_lineage_still_flows(
    spark: Any, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def job() -> None:
        spark.read.parquet(str(data / "events" / "20240315")).write.mode("overwrite").parquet(
            str(data / "bad_pattern_out")
        )

    with caplog.at_level(logging.WARNING, logger="spark_plugin"):
        events = _run_jobs(spark, [job], remove_path_pattern="(?<remove>[")
    assert "removePath.pattern" in caplog.text
    end = _end_writing(events, str(data / "bad_pattern_out"))
    assert end["inputs"][0]["name"] == str(data / "events")  # default trimmers still apply


def test_default_trimmer_names_are_openlineage_class_names() -> None:
    assert list(DEFAULT_TRIMMERS) == [
        "DateTrimmer",
        "KeyValueTrimmer",
        "MultiDirDateTrimmer",
        "YearMonthTrimmer",
    ]
