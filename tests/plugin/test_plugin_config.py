"""PluginConfig: SparkConf keys, environment, options, defaults and validation."""

from __future__ import annotations

import pytest

from spark_plugin import ConfigError
from spark_plugin._config import PluginConfig, load_plugin_config

PARENT_RUN = "0191f3c2-8d6e-7a52-b3a5-7f6a54b2c9d1"
CAPTURED = "spark.executor.memory;spark.sql.shuffle.partitions"


def test_defaults_post_to_the_local_relay() -> None:
    config = load_plugin_config({}, {})
    assert config.post_url == "http://127.0.0.1:5055/api/v1/lineage"
    assert config.timeout_s == 2.0 and config.flush_timeout_s == 2.0
    assert config.namespace == "default" and not config.disabled
    assert config.dedicated_queue


def test_spark_conf_keys_map_like_the_openlineage_integration() -> None:
    conf = {
        "spark.openlineage.transport.url": "http://relay.local:6000",
        "spark.openlineage.transport.endpoint": "/api/v1/openlineage/lineage",
        "spark.openlineage.transport.auth.apiKey": "s3cret",
        "spark.openlineage.transport.timeoutInMillis": "750",
        "spark.openlineage.transport.compression": "gzip",
        "spark.openlineage.transport.headers.X-Team": "payments",
        "spark.openlineage.namespace": "prod",
        "spark.openlineage.parentJobNamespace": "airflow",
        "spark.openlineage.parentJobName": "dag.task",
        "spark.openlineage.parentRunId": PARENT_RUN,
        "spark.openlineage.capturedProperties": CAPTURED,
        "spark.openmetadata.transport.pipelineServiceName": "spark_prod",
        "spark.openmetadata.transport.pipelineName": "nightly",
        "spark.openmetadata.transport.jwtToken": "never-copied",
    }
    config = load_plugin_config(conf, {"LINEAGE_RELAY_URL": "http://ignored:1"})
    assert config.post_url == "http://relay.local:6000/api/v1/openlineage/lineage"
    assert config.api_key.reveal() == "s3cret"
    assert config.timeout_s == pytest.approx(0.75)
    assert config.compression == "gzip"
    assert config.headers == {"X-Team": "payments"}
    assert config.namespace == "prod"
    assert (config.parent_job_namespace, config.parent_job_name, config.parent_run_id) == (
        "airflow",
        "dag.task",
        PARENT_RUN,
    )
    assert config.captured_properties == (
        "spark.master",
        "spark.app.name",
        "spark.executor.memory",
        "spark.sql.shuffle.partitions",
    )
    assert config.openmetadata == {"pipelineServiceName": "spark_prod", "pipelineName": "nightly"}
    assert "s3cret" not in repr(config) and "never-copied" not in repr(config)


def test_environment_url_when_spark_conf_has_none_and_options_win_over_both() -> None:
    env = {"LINEAGE_RELAY_URL": "http://10.0.0.7:5055"}
    assert load_plugin_config({}, env).post_url == "http://10.0.0.7:5055/api/v1/lineage"
    conf = {"spark.openlineage.transport.url": "http://conf:1", "spark.openlineage.namespace": "c"}
    config = load_plugin_config(
        conf, env, {"url": "http://option:2", "namespace": "o", "pipeline_service_name": "svc"}
    )
    assert config.url == "http://option:2" and config.namespace == "o"
    assert config.openmetadata == {"pipelineServiceName": "svc"}
    # None means "not given": the SparkConf value stays
    assert load_plugin_config(conf, env, {"url": None}).url == "http://conf:1"


def test_url_with_a_path_is_used_verbatim() -> None:
    config = load_plugin_config(
        {"spark.openlineage.transport.url": "http://h:1/custom/lineage"}, {}
    )
    assert config.post_url == "http://h:1/custom/lineage"
    with pytest.raises(ConfigError, match="keep one"):
        load_plugin_config({}, {}, {"url": "http://h:1/custom", "endpoint": "/api/v1/lineage"})


@pytest.mark.parametrize(
    ("conf", "environ"),
    [
        ({"spark.openlineage.disabled": "true"}, {}),
        ({}, {"LINEAGE_ENABLED": "false"}),
        ({"spark.openlineage.disabled": "false"}, {"LINEAGE_ENABLED": "0"}),
    ],
)
def test_disabled_by_conf_or_environment(conf: dict[str, str], environ: dict[str, str]) -> None:
    assert load_plugin_config(conf, environ).disabled


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, "unknown option 'bogus'"),
        ({"url": "ftp://x"}, "expected http"),
        ({"compression": "zstd"}, "compression"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"queue_size": 0}, "queue_size"),
        ({"parent_run_id": PARENT_RUN}, "go together"),
        ({"parent_run_id": "not-a-uuid", "parent_job_name": "x"}, "UUID"),
    ],
)
def test_bad_values_name_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plugin_config({}, {}, options)


def test_bad_spark_conf_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="timeoutInMillis"):
        load_plugin_config({"spark.openlineage.transport.timeoutInMillis": "soon"}, {})
    with pytest.raises(ConfigError, match=r"spark\.openlineage\.disabled"):
        load_plugin_config({"spark.openlineage.disabled": "maybe"}, {})


def test_config_is_frozen() -> None:
    config = PluginConfig()
    with pytest.raises(AttributeError):
        config.url = "http://x:1"  # type: ignore[misc]


def test_kill_switch_values() -> None:
    from spark_plugin._config import disabled_by_environment

    assert disabled_by_environment({"LINEAGE_ENABLED": "off"})
    assert not disabled_by_environment({"LINEAGE_ENABLED": "true"})
    assert not disabled_by_environment({})
    with pytest.raises(ConfigError, match="LINEAGE_ENABLED"):
        disabled_by_environment({"LINEAGE_ENABLED": "perhaps"})


def test_runtime_options() -> None:
    config = load_plugin_config({}, {}, {"early_start": True, "jvm_filter": False, "retries": 0})
    assert config.early_start and not config.jvm_filter and config.retries == 0
