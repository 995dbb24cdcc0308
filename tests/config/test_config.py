"""relay/_config.py on its own: every refusal names the key (or variable) and what to do, and
what is accepted lands where it should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay._config import Config, Secret, load_config
from relay._exceptions import ConfigError


def _load(**overrides: Any) -> Config:
    return load_config(None, environ={}, overrides=overrides)


# (dotted key -> value, words the refusal must contain)
REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"relay.listen": "localhost"}, r"relay\.listen = 'localhost': expected HOST:PORT"),
    ({"relay.listen": "127.0.0.1:70000"}, "port must be between 0 and 65535"),
    ({"relay.log_level": "loud"}, r"relay\.log_level = 'loud': must be one of"),
    ({"relay.shutdown_timeout_s": 0}, r"relay\.shutdown_timeout_s = 0\.0: must be > 0"),
    ({"relay.drain_timeout_s": -1}, r"relay\.drain_timeout_s = -1\.0: must be >= 0"),
    ({"ingest.spill_interval_s": 0}, r"ingest\.spill_interval_s"),
    ({"ingest.max_body_bytes": 0}, r"ingest\.max_body_bytes = 0"),
    ({"ingest.max_compressed_bytes": -1}, r"ingest\.max_compressed_bytes"),
    ({"ingest.max_concurrent_requests": 0}, r"ingest\.max_concurrent_requests"),
    ({"ingest.read_timeout_s": 0}, r"ingest\.read_timeout_s"),
    ({"ingest.header_timeout_s": 0}, r"ingest\.header_timeout_s"),
    ({"ingest.min_body_bytes_per_s": -1}, r"ingest\.min_body_bytes_per_s"),
    ({"ingest.body_grace_s": -1}, r"ingest\.body_grace_s"),
    ({"ingest.idle_timeout_s": 0}, r"ingest\.idle_timeout_s"),
    (
        {"ingest.max_body_bytes": 100, "ingest.max_body_bytes_in_flight": 99},
        "raise max_body_bytes_in_flight",
    ),
    ({"ingest.token": "a", "ingest.token_file": "/t"}, "both set: keep one"),
    ({"spool.max_bytes": 0}, r"spool\.max_bytes"),
    ({"spool.when_full": "wait"}, r"spool\.when_full = 'wait': must be one of"),
    ({"spool.max_age_s": -1}, r"spool\.max_age_s"),
    ({"openmetadata.vault.address": "http://v:8200"}, r"vault\.path is empty"),
    (
        {"openmetadata.vault.address": "v:8200", "openmetadata.vault.path": "p"},
        r"vault\.address = 'v:8200': must start with http",
    ),
    ({"openmetadata.vault.ca_bundle": "/no/such.pem"}, r"vault\.ca_bundle = '/no/such\.pem'"),
    ({"openmetadata.aws_secret.secret_id": "s"}, r"aws_secret\.region is empty"),
    ({"openmetadata.mapping": [{"namespace": "", "service": "s"}]}, "needs `namespace`"),
    (
        {"openmetadata.mapping": [{"namespace": "n", "service": "s", "entity": "view"}]},
        r"mapping\.entity = 'view'",
    ),
    ({"openmetadata.mapping": [{"namespace": "n"}]}, "openmetadata.mapping"),
    ({"openmetadata.mapping": {"namespace": "n"}}, r"must be a list of tables"),
    ({"openmetadata.host_port": "om:8585"}, r"host_port = 'om:8585': must start with http"),
    ({"openmetadata.sink": "kafka"}, r"openmetadata\.sink = 'kafka'"),
    ({"openmetadata.unresolved_retention_s": 0}, r"unresolved_retention_s"),
    (
        {"openmetadata.jwt_token": "t", "openmetadata.jwt_token_file": "/f"},
        r"several token sources are set \(jwt_token, jwt_token_file\): keep one",
    ),
    ({"openmetadata.connection_pool_size": 0}, r"connection_pool_size"),
    ({"openmetadata.connection_timeout_ms": 0}, r"connection_timeout_ms"),
    ({"openmetadata.read_timeout_ms": 0}, r"read_timeout_ms"),
    ({"openmetadata.retry_attempts": -1}, r"retry_attempts"),
    ({"openmetadata.retry_delay_ms": 0}, r"retry_delay_ms"),
    ({"openmetadata.retry_max_delay_ms": 10}, r"retry_max_delay_ms must be >="),
    ({"openmetadata.ca_bundle": "/no/such.pem"}, r"openmetadata\.ca_bundle"),
    ({"forwarder.retry_budget_ratio": 1.5}, r"retry_budget_ratio = 1\.5: must be in \[0, 1\]"),
    ({"forwarder.max_batch_events": 0}, r"forwarder\.max_batch_events"),
    ({"forwarder.max_batch_bytes": 0}, r"forwarder\.max_batch_bytes"),
    ({"forwarder.linger_ms": -1}, r"forwarder\.linger_ms"),
    ({"forwarder.max_lag_s": 0}, r"forwarder\.max_lag_s"),
    ({"forwarder.lease_s": 0}, r"forwarder\.lease_s"),
    ({"breaker.failure_threshold": 0}, r"breaker\.failure_threshold"),
    ({"breaker.failure_rate": 0}, r"breaker\.failure_rate = 0\.0: must be in \(0, 1\]"),
    ({"breaker.window": 0}, r"breaker\.window"),
    ({"breaker.recovery_timeout_s": 0}, r"breaker\.recovery_timeout_s"),
    ({"breaker.max_recovery_timeout_s": 1}, r"max_recovery_timeout_s must be >="),
    ({"audit.max_bytes": 0}, r"audit\.max_bytes"),
    ({"audit.backup_count": 0}, r"audit\.backup_count"),
    ({"offload.s3_uri": "s3://"}, r"expected s3://BUCKET\[/PREFIX\]"),
    ({"offload.s3_uri": "bucket/x"}, r"offload\.s3_uri = 'bucket/x'"),
    ({"offload.endpoint_url": "minio:9000"}, r"offload\.endpoint_url = 'minio:9000'"),
    ({"offload.timeout_s": 0}, r"offload\.timeout_s"),
    ({"offload.max_object_bytes": 0}, r"offload\.max_object_bytes"),
    # Types, from TOML or flags.
    ({"spool.max_bytes": "big"}, r"spool\.max_bytes = 'big': must be an integer"),
    ({"spool.max_bytes": True}, r"must be an integer"),
    ({"relay.shutdown_timeout_s": "soon"}, r"must be a number"),
    ({"openmetadata.ssl_verify": "yes"}, r"ssl_verify = 'yes': must be true or false"),
    ({"relay.listen": 5055}, r"relay\.listen = 5055: must be a string"),
    ({"openmetadata.jwt_token": 1}, r"openmetadata\.jwt_token: must be a string"),
    ({"spool.dir": 3}, r"spool\.dir = 3: must be a path string"),
    ({"spool.when_full": 1}, r"spool\.when_full = 1: must be a string"),
    ({"spool": 3}, r"spool: must be a table"),
    # Unknown keys: named, the closest known key suggested.
    ({"spool.max_byte": 1}, r"unknown key spool\.max_byte in spool; did you mean 'max_bytes'\?"),
    ({"spoll.dir": "/x"}, r"unknown key spoll in top level; did you mean 'spool'\?"),
    ({"relay.zzz": 1}, r"unknown key relay\.zzz in relay; known keys: "),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSALS, ids=lambda v: str(v)[:60])
def test_each_wrong_value_is_refused_naming_the_key(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(**overrides)


def test_the_defaults_load_and_equal_the_dataclass_defaults() -> None:
    assert _load() == Config()


# -- the environment ------------------------------------------------------------------------


def test_an_unknown_variable_is_refused_with_the_closest_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"LINEAGE_RELAY_SPOOL_MAXBYTES": "10"})
    message = str(info.value)
    assert "$LINEAGE_RELAY_SPOOL_MAXBYTES names no configuration key" in message
    assert "did you mean $LINEAGE_RELAY_SPOOL_MAX_BYTES, spool.max_bytes?" in message
    assert "rename or unset it" in message


def test_an_unknown_variable_far_from_any_key_gets_no_guess() -> None:
    with pytest.raises(ConfigError, match=r"\$LINEAGE_RELAY_XYZZY names no configuration key; "):
        load_config(None, environ={"LINEAGE_RELAY_XYZZY": "1"})


def test_a_section_name_alone_is_not_a_key() -> None:
    with pytest.raises(ConfigError, match=r"\$LINEAGE_RELAY_SPOOL names no configuration key"):
        load_config(None, environ={"LINEAGE_RELAY_SPOOL": "1"})


def test_variables_of_others_and_without_the_prefix_are_left_alone() -> None:
    config = load_config(
        None,
        environ={
            "LINEAGE_RELAY_URL": "http://127.0.0.1:5055",  # the Spark plugin's
            "LINEAGE_RELAY_SHARED_DIR": "/elsewhere",  # the test suite's
            "LINEAGE_RELAYX": "1",
            "PATH": "/bin",
        },
    )
    assert config == Config()


def test_every_key_has_its_variable_nested_tables_joined_with_underscores(tmp_path: Path) -> None:
    config = load_config(
        None,
        environ={
            "LINEAGE_RELAY_SPOOL_MAX_BYTES": "1000",
            "LINEAGE_RELAY_SPOOL_DIR": str(tmp_path),
            "LINEAGE_RELAY_OPENMETADATA_SSL_VERIFY": "off",
            "LINEAGE_RELAY_OPENMETADATA_JWT_TOKEN": "tok",
            "LINEAGE_RELAY_OPENMETADATA_AWS_SECRET_REGION": "eu-west-1",
            "LINEAGE_RELAY_FORWARDER_RETRY_BUDGET_RATIO": "0.5",
            "LINEAGE_RELAY_OPENMETADATA_MAPPING": '[{"namespace": "hive://*", "service": "h"}]',
        },
    )
    assert config.spool.max_bytes == 1000
    assert config.spool.dir == tmp_path
    assert config.openmetadata.ssl_verify is False
    assert config.openmetadata.jwt_token == Secret("tok")
    assert config.openmetadata.aws_secret.region == "eu-west-1"
    assert config.forwarder.retry_budget_ratio == 0.5
    assert config.openmetadata.mapping[0].service == "h"


@pytest.mark.parametrize(
    ("var", "text", "message"),
    [
        ("LINEAGE_RELAY_OPENMETADATA_SSL_VERIFY", "maybe", "expected true or false"),
        ("LINEAGE_RELAY_SPOOL_MAX_BYTES", "10GB", "expected an integer"),
        ("LINEAGE_RELAY_RELAY_SHUTDOWN_TIMEOUT_S", "ten", "expected a number"),
        ("LINEAGE_RELAY_OPENMETADATA_MAPPING", "[{", "expected a JSON list of tables"),
    ],
)
def test_a_variable_of_the_wrong_type_is_refused_naming_it(
    var: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"\(from \${var}\)") as info:
        load_config(None, environ={var: text})
    assert message in str(info.value)


def test_a_secret_never_shows_in_its_repr() -> None:
    config = _load(**{"openmetadata.jwt_token": "eyJ.secret.value"})
    assert "eyJ" not in repr(config)
    assert config.openmetadata.jwt_token.reveal() == "eyJ.secret.value"


# -- the file and the precedence --------------------------------------------------------------


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", environ={})


def test_a_file_that_is_not_toml_is_refused_with_the_parser_s_words(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[spool\nmax_bytes = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(path, environ={})


def test_a_wrong_key_in_the_file_is_refused_like_a_wrong_variable(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[forwarder]\nlinger_msec = 5\n")
    with pytest.raises(ConfigError, match=r"forwarder\.linger_msec .* did you mean 'linger_ms'"):
        load_config(path, environ={})


def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('spool = "x"\n')
    with pytest.raises(ConfigError, match="spool: must be a table"):
        load_config(path, environ={})


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[forwarder]\nlinger_ms = 1\nmax_lag_s = 9.0\nlease_s = 7.0\n")
    config = load_config(
        path,
        environ={"LINEAGE_RELAY_FORWARDER_MAX_LAG_S": "8", "LINEAGE_RELAY_FORWARDER_LEASE_S": "6"},
        overrides={"forwarder.lease_s": 5.0},
    )
    assert (config.forwarder.linger_ms, config.forwarder.max_lag_s) == (1, 8.0)
    assert config.forwarder.lease_s == 5.0
