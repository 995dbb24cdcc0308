"""enable() on the shared real SparkSession: events per run, parents, names, FAIL, close, no-ops."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_support import SpecValidator, receiving

import spark_plugin
from spark_plugin import UnsupportedSessionError, _state, enable
from spark_plugin._registration import DirectBridge

pytestmark = pytest.mark.spark

AIRFLOW_RUN = "0191f3c2-8d6e-7a52-b3a5-7f6a54b2c9d1"
CTAS = "CREATE TABLE enable_ctas USING parquet AS SELECT k, count AS n FROM enable_counts"


def drain_listener_bus(spark: Any) -> None:
    """Wait until Spark delivered every posted listener event (all queues)."""
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(30_000)


def runs(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event)
    return by_run


@pytest.fixture(scope="module")
def recorded(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One enabled handle, a handful of real jobs, everything the receiver got."""
    _state.reset()  # no handle left open by another module on the shared session
    base = tmp_path_factory.mktemp("enable")
    with receiving() as receiver:
        handle = enable(
            spark,
            url=receiver.url,
            namespace="tests",
            parent_job_namespace="airflow",
            parent_job_name="dag.load",
            parent_run_id=AIRFLOW_RUN,
            pipeline_service_name="spark_tests",
        )
        assert handle.enabled
        hooked_while_open = "stop" in spark.sparkContext.__dict__
        spark.range(50).selectExpr("id", "id % 5 AS k").write.mode("overwrite").parquet(
            str(base / "numbers")
        )
        numbers = spark.read.parquet(str(base / "numbers"))
        numbers.groupBy("k").count().write.mode("overwrite").saveAsTable("enable_counts")
        spark.sql(CTAS)
        failing = spark.range(3).selectExpr("assert_true(id < 0) AS boom")
        with pytest.raises(Exception, match=r"USER_RAISED_EXCEPTION|is not true"):
            failing.write.mode("overwrite").parquet(str(base / "never"))
        with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND"):
            spark.sql("SELECT * FROM no_such_table_anywhere").collect()  # reports nothing
        assert enable(spark, url="http://127.0.0.1:1") is handle  # twice: same handle
        assert handle.flush(30)
        closed_cleanly = handle.close()
        yield {
            "events": receiver.events(),
            "handle": handle,
            "base": base,
            "hooked_while_open": hooked_while_open,
            "closed_cleanly": closed_cleanly,
        }
    spark.sql("DROP TABLE IF EXISTS enable_counts")
    spark.sql("DROP TABLE IF EXISTS enable_ctas")


def test_application_start_first_and_complete_last(recorded: dict[str, Any]) -> None:
    events, handle = recorded["events"], recorded["handle"]
    first, last = events[0], events[-1]
    assert (first["eventType"], last["eventType"]) == ("START", "COMPLETE")
    assert first["run"]["runId"] == last["run"]["runId"] == handle.app_run_id
    assert first["job"] == last["job"]
    assert first["job"]["namespace"] == "tests"
    assert first["job"]["name"] == "lineage_relay_tests"
    assert first["job"]["facets"]["jobType"]["jobType"] == "APPLICATION"
    assert first["job"]["facets"]["openmetadata"] == {
        "_producer": first["producer"],
        "_schemaURL": first["job"]["facets"]["openmetadata"]["_schemaURL"],
        "pipelineServiceName": "spark_tests",
    }
    # the application run's parent is the configured (Airflow) run
    assert first["run"]["facets"]["parent"]["run"]["runId"] == AIRFLOW_RUN
    details = first["run"]["facets"]["spark_applicationDetails"]
    assert details["appName"] == "lineage relay tests" and details["master"] == "local[2]"
    assert recorded["closed_cleanly"]
    assert (handle.emitted, handle.dropped, handle.failed_posts) == (len(events), 0, 0)
    assert handle.stats()["listener_errors"] == 0


def test_each_root_execution_is_one_run_start_then_complete_or_fail(
    recorded: dict[str, Any],
) -> None:
    events, handle = recorded["events"], recorded["handle"]
    action_runs = {
        run_id: evs for run_id, evs in runs(events).items() if run_id != handle.app_run_id
    }
    # parquet write, saveAsTable (3 nested executions merged), CTAS (2 merged), failing write
    assert len(action_runs) == 4
    for evs in action_runs.values():
        assert len(evs) == 2 and evs[0]["eventType"] == "START"
        assert evs[0]["job"]["name"] == evs[1]["job"]["name"]
        assert evs[0]["eventTime"] <= evs[1]["eventTime"]
        for e in evs:
            parent = e["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == handle.app_run_id
            assert parent["job"] == {"namespace": "tests", "name": "lineage_relay_tests"}
            assert parent["root"]["run"]["runId"] == AIRFLOW_RUN
            assert e["job"]["facets"]["jobType"]["jobType"] == "SQL_JOB"
            assert e["job"]["facets"]["jobType"]["integration"] == "SPARK"
            assert e["run"]["facets"]["processing_engine"]["name"] == "spark"
            assert (
                e["run"]["facets"]["spark_properties"]["properties"]["spark.master"] == "local[2]"
            )
    ends = sorted(evs[1]["eventType"] for evs in action_runs.values())
    assert ends == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


def test_job_names_and_outputs(recorded: dict[str, Any]) -> None:
    base: Path = recorded["base"]
    completes = {
        e["job"]["name"]: e for e in recorded["events"] if e["eventType"] in ("COMPLETE", "FAIL")
    }
    names = set(completes) - {"lineage_relay_tests"}
    assert all(name.startswith("lineage_relay_tests.") for name in names)
    by_output = {
        (e["outputs"][0]["namespace"], e["outputs"][0]["name"]): e
        for e in completes.values()
        if e["outputs"]
    }
    write = by_output[("file", str(base / "numbers"))]
    assert write["job"]["name"].startswith(
        "lineage_relay_tests.execute_insert_into_hadoop_fs_relation_command."
    )
    table = next(e for e in completes.values() if "enable_counts" in e["job"]["name"])
    outputs = table["outputs"]
    assert len(outputs) == 1  # the nested executions of saveAsTable became one dataset
    symlinks = outputs[0]["facets"]["symlinks"]["identifiers"]
    assert [s["name"] for s in symlinks] == ["default.enable_counts"]
    assert outputs[0]["name"].endswith("/enable_counts")
    assert [i["name"] for i in table["inputs"]] == [str(base / "numbers")]


def test_sql_statements_carry_their_text(recorded: dict[str, Any]) -> None:
    ctas = [e for e in recorded["events"] if "enable_ctas" in e["job"]["name"]]
    assert [e["eventType"] for e in ctas] == ["START", "COMPLETE"]
    assert all(e["job"]["facets"]["sql"]["query"] == CTAS for e in ctas)
    assert [i["name"].rsplit("/", 1)[-1] for i in ctas[1]["inputs"]] == ["enable_counts"]
    # DataFrame actions have no SQL text
    others = [e for e in recorded["events"] if "enable_ctas" not in e["job"]["name"]]
    assert all("sql" not in e["job"]["facets"] for e in others)


def test_failing_write_is_a_fail_with_the_error(recorded: dict[str, Any]) -> None:
    base: Path = recorded["base"]
    fail = next(e for e in recorded["events"] if e["eventType"] == "FAIL")
    assert fail["outputs"][0]["name"] == str(base / "never")
    error = fail["run"]["facets"]["errorMessage"]
    assert "is not true" in error["message"] and error["programmingLanguage"] == "JAVA"
    assert "SparkException" in error["stackTrace"] or "Exception" in error["stackTrace"]
    assert fail["run"]["facets"]["spark.exception"]["message"] == error["message"]


def test_stop_is_hooked_while_open_and_unhooked_after_close(
    recorded: dict[str, Any], spark: Any
) -> None:
    assert recorded["hooked_while_open"]
    assert "stop" not in spark.sparkContext.__dict__


def test_recorded_events_are_valid_openlineage(recorded: dict[str, Any], shared_dir: Path) -> None:
    validator = SpecValidator(shared_dir / "openlineage-samples" / "spec")
    for event in recorded["events"]:
        assert validator.errors(event) == [], event["job"]["name"]


@pytest.mark.parametrize("jvm_filter", [True, False], ids=["jvm-filter", "direct-proxy"])
def test_close_really_removes_the_listener(spark: Any, tmp_path: Path, jvm_filter: bool) -> None:
    spark.range(1).count()  # Spark adds its SQL UI listener lazily, at the first SQL execution
    bus = spark.sparkContext._jsc.sc().listenerBus()
    listeners_before = bus.listeners().size()
    with receiving() as receiver:
        handle = enable(spark, url=receiver.url, jvm_filter=jvm_filter)
        registration = handle._registration
        assert registration is not None and registration.is_registered()
        assert registration.filtered is jvm_filter
        assert "lineage" in str(bus.activeQueues())
        spark.range(5).write.mode("overwrite").parquet(str(tmp_path / "before"))
        assert handle.flush(30)
        # both bridges report the same run: app START, START, COMPLETE
        assert [e["eventType"] for e in receiver.events()] == ["START", "START", "COMPLETE"]
        assert receiver.events()[2]["outputs"][0]["name"] == str(tmp_path / "before")
        assert handle.close()
        assert not registration.is_registered()
        assert bus.listeners().size() == listeners_before
        assert "lineage" not in str(bus.activeQueues())
        seen = len(receiver.events())
        listener = handle._listener
        assert listener is not None
        runs_before, time_before = listener.runs, listener.callback_s
        spark.range(5).write.mode("overwrite").parquet(str(tmp_path / "after"))
        drain_listener_bus(spark)
        assert (listener.runs, listener.callback_s) == (runs_before, time_before)
        assert len(receiver.events()) == seen
        assert handle.close()  # idempotent
    # a new enable after close gets a new handle; the handle is a context manager
    with receiving() as receiver, enable(spark, url=receiver.url) as again:
        assert again is not handle and again.enabled
    assert again.closed
    assert [e["eventType"] for e in receiver.events()] == ["START", "COMPLETE"]


def test_lineage_enabled_false_is_a_logged_no_op(
    spark: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("LINEAGE_ENABLED", "false")
    spark.range(1).count()  # Spark adds its SQL UI listener lazily, at the first SQL execution
    bus = spark.sparkContext._jsc.sc().listenerBus()
    listeners_before = bus.listeners().size()
    with receiving() as receiver, caplog.at_level("INFO", logger="spark_plugin"):
        handle = enable(spark, url=receiver.url)
        assert not handle.enabled
        assert handle.closed
        assert "LINEAGE_ENABLED=false" in caplog.text
        assert bus.listeners().size() == listeners_before
        spark.range(3).write.mode("overwrite").parquet(str(tmp_path / "x"))
        assert handle.flush(1) and handle.close()
        assert (handle.emitted, handle.dropped, handle.failed_posts) == (0, 0, 0)
        assert receiver.requests == 0


def test_disabled_option_and_bad_option(spark: Any) -> None:
    handle = enable(spark, disabled=True)
    assert not handle.enabled
    with pytest.raises(spark_plugin.ConfigError, match="unknown option 'colour'"):
        enable(spark, colour="blue")


class ConnectLikeSession:
    """What a Spark Connect session looks like to us: no `_jsparkSession`, no SparkContext."""

    @property
    def sparkContext(self) -> Any:
        raise AttributeError("[JVM_ATTRIBUTE_NOT_SUPPORTED] sparkContext is not supported")


def test_spark_connect_session_gets_a_clear_error() -> None:
    # Anything without a driver JVM in this process (no _jsparkSession) gets the same error;
    # test_spark_connect.py shows it for a real Spark Connect session, in a child process.
    with pytest.raises(UnsupportedSessionError, match="Spark Connect") as info:
        enable(ConnectLikeSession())
    assert "OpenLineageSparkListener" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_callback_server_is_loopback_only_and_authenticated(spark: Any, tmp_path: Path) -> None:
    """The channel the JVM calls our listener through: 127.0.0.1 only, and with a token both
    sides know when the plugin (or a test, through the same helper) started it."""
    import socket

    from spark_plugin._callback import CallbackChannel, callback_client_token

    with receiving() as receiver:
        handle = enable(spark, url=receiver.url)
        try:
            gateway = spark.sparkContext._gateway
            server = gateway._callback_server
            host, port = server.server_socket.getsockname()[:2]
            assert host == "127.0.0.1" and port > 0
            # started by the first enable() (or a fixture, with the same helper) on this session
            assert handle.callback_channel in (
                CallbackChannel.AUTHENTICATED,
                CallbackChannel.PREEXISTING,
            )
            token = gateway.callback_server_parameters.auth_token
            assert token and len(token) == 64
            assert callback_client_token(gateway) == token  # what the JVM sends
            # a local process without the token is refused: the server closes the connection
            # instead of running the call (probe: "c\np0\nsecret\ne\n" once got "!ys...")
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(b"c\np0\nsecret\ne\n")
                try:
                    answer = sock.recv(100)
                except ConnectionResetError:
                    answer = b""
            assert not answer.startswith(b"!y"), answer
            # and the JVM, which has the token, still reaches the listener
            spark.range(2).write.mode("overwrite").parquet(str(tmp_path / "authenticated"))
            assert handle.flush(30)
            assert [e["eventType"] for e in receiver.events()] == ["START", "START", "COMPLETE"]
        finally:
            handle.close()


def test_public_api() -> None:
    assert spark_plugin.__all__ == sorted(spark_plugin.__all__)
    assert {"enable", "Lineage", "UnsupportedSessionError"} <= set(spark_plugin.__all__)


def test_early_start_is_sent_while_the_execution_runs(spark: Any, tmp_path: Path) -> None:
    # The action sleeps in its task; it is only cancelled once its START has arrived, so the
    # START was necessarily sent while the execution ran.
    sleeping = spark.range(1).selectExpr(
        "reflect('java.lang.Thread', 'sleep', CAST(120000 AS BIGINT)) AS slept"
    )
    outcome: list[BaseException] = []

    def run_action() -> None:
        spark.sparkContext.setJobGroup("early-start", "held until cancelled", True)
        try:
            sleeping.write.mode("overwrite").parquet(str(tmp_path / "held"))
        except BaseException as exc:
            outcome.append(exc)

    with receiving() as receiver:
        handle = enable(spark, url=receiver.url, early_start=True)
        worker = threading.Thread(target=run_action)
        try:

            def action_events() -> list[dict[str, Any]]:
                return [e for e in receiver.events() if e["run"]["runId"] != handle.app_run_id]

            worker.start()
            assert receiver.wait_for(lambda _: len(action_events()) >= 1, 60)
            (start,) = action_events()
            assert start["eventType"] == "START"
            assert start["outputs"][0]["name"] == str(tmp_path / "held")
        finally:
            # the SQL execution starts before its Spark job: cancel until the action has ended
            for _ in range(240):
                spark.sparkContext.cancelJobGroup("early-start")
                worker.join(0.25)
                if not worker.is_alive():
                    break
        assert outcome  # the cancelled action failed
        assert handle.flush(30)
        start, end = action_events()
        assert end["eventType"] == "FAIL"
        assert start["run"]["runId"] == end["run"]["runId"]
        assert start["job"]["name"] == end["job"]["name"]
        assert "cancel" in end["run"]["facets"]["errorMessage"]["message"].lower()
        handle.close()


@pytest.fixture
def spark_conf(spark: Any) -> Iterator[Callable[[dict[str, str]], None]]:
    """set(keys): put keys into the running SparkContext's conf (what `enable` reads), removed
    again after the test."""
    live = spark.sparkContext._conf  # wraps the JVM SparkContext's own SparkConf
    added: list[str] = []

    def put(values: dict[str, str]) -> None:
        for key, value in values.items():
            assert not live.contains(key), f"{key} is already set on the shared session"
            live.set(key, value)
            added.append(key)

    yield put
    for key in added:
        live._jconf.remove(key)


def test_defaults_come_from_spark_conf(
    spark: Any, spark_conf: Callable[[dict[str, str]], None], tmp_path: Path
) -> None:
    with receiving() as receiver:
        spark_conf(
            {
                "spark.openlineage.transport.url": receiver.url,
                "spark.openlineage.transport.endpoint": "/api/v1/openlineage/lineage",
                "spark.openlineage.transport.auth.apiKey": "conf-token",
                "spark.openlineage.transport.timeoutInMillis": "1500",
                "spark.openlineage.namespace": "from_conf",
                "spark.openlineage.parentJobNamespace": "airflow",
                "spark.openlineage.parentJobName": "dag.conf_task",
                "spark.openlineage.parentRunId": AIRFLOW_RUN,
                "spark.openmetadata.transport.pipelineServiceName": "spark_from_conf",
            }
        )
        with enable(spark) as handle:  # no argument: everything from SparkConf
            assert handle.config.timeout_s == 1.5
            spark.range(3).write.mode("overwrite").parquet(str(tmp_path / "conf"))
            assert handle.flush(30)
        assert receiver.received, "nothing was posted to the SparkConf URL"
        assert {r.path for r in receiver.received} == {"/api/v1/openlineage/lineage"}
        assert {r.headers["Authorization"] for r in receiver.received} == {"Bearer conf-token"}
        app_start, start, complete, app_complete = receiver.events()
        assert {e["job"]["namespace"] for e in receiver.events()} == {"from_conf"}
        parent = app_start["run"]["facets"]["parent"]
        assert parent["run"] == {"runId": AIRFLOW_RUN}
        assert parent["job"] == {"namespace": "airflow", "name": "dag.conf_task"}
        # the action's parent is the application run, whose own parent is the Airflow task
        assert complete["run"]["facets"]["parent"]["run"] == {"runId": handle.app_run_id}
        assert complete["run"]["facets"]["parent"]["root"]["run"] == {"runId": AIRFLOW_RUN}
        openmetadata = app_start["job"]["facets"]["openmetadata"]
        assert openmetadata["pipelineServiceName"] == "spark_from_conf"
        assert complete["job"]["facets"]["openmetadata"] == openmetadata
        assert (start["eventType"], app_complete["eventType"]) == ("START", "COMPLETE")


def test_lineage_relay_url_when_spark_conf_has_none(
    spark: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with receiving() as receiver:
        monkeypatch.setenv("LINEAGE_RELAY_URL", receiver.url)
        with enable(spark) as handle:
            assert handle.config.post_url == f"{receiver.url}/api/v1/lineage"
            spark.range(3).write.mode("overwrite").parquet(str(tmp_path / "env"))
            assert handle.flush(30)
        assert [e["eventType"] for e in receiver.events()] == [
            "START", "START", "COMPLETE", "COMPLETE",
        ]  # fmt: skip
        assert {r.path for r in receiver.received} == {"/api/v1/lineage"}


def test_spark_openlineage_disabled_is_a_logged_no_op(
    spark: Any,
    spark_conf: Callable[[dict[str, str]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spark.range(1).count()  # Spark adds its SQL UI listener lazily, at the first SQL execution
    bus = spark.sparkContext._jsc.sc().listenerBus()
    listeners_before = bus.listeners().size()
    with receiving() as receiver, caplog.at_level("INFO", logger="spark_plugin"):
        spark_conf({"spark.openlineage.disabled": "true"})
        handle = enable(spark, url=receiver.url)
        assert not handle.enabled and handle.closed
        assert "spark.openlineage.disabled=true" in caplog.text
        assert bus.listeners().size() == listeners_before
        spark.range(3).count()
        assert handle.close() and receiver.requests == 0


@pytest.mark.parametrize("jvm_filter", [True, False], ids=["jvm-filter", "direct-proxy"])
def test_application_end_from_spark_completes_the_application_once(
    spark: Any, jvm_filter: bool
) -> None:
    """A SparkContext stopped from the JVM (not through the hooked `stop()`) still ends the
    application run: the listener's onApplicationEnd posts its COMPLETE, and close() does not
    post a second one. The event is handed to our listener itself, not posted on the shared
    session's bus, where Spark's own listeners would take the session for ended."""
    jvm = spark._jvm
    with receiving() as receiver:
        handle = enable(spark, url=receiver.url, jvm_filter=jvm_filter)
        registration = handle._registration
        assert registration is not None and registration.filtered is jvm_filter
        end = jvm.org.apache.spark.scheduler.SparkListenerApplicationEnd(
            1_700_000_000_000, jvm.scala.Option.apply(None)
        )
        if jvm_filter:
            registration._filter.onApplicationEnd(end)  # the JVM filter, then the py4j bridge
        else:
            bridge = registration.bridge
            assert isinstance(bridge, DirectBridge)  # no filter: Python is the JVM's listener
            bridge.onApplicationEnd(end)
        assert handle.flush(30)
        assert [e["eventType"] for e in receiver.events()] == ["START", "COMPLETE"]
        complete = receiver.events()[1]
        assert complete["run"]["runId"] == handle.app_run_id
        assert complete["eventTime"] == "2023-11-14T22:13:20.000Z"
        assert handle.close()
        assert len(receiver.events()) == 2  # no second COMPLETE at close
