"""`lineage-relay doctor`: each broken item reported with its fix and the right exit code.

The checks run against the mock OpenMetadata on loopback: in-process (`diagnose`, `render`,
`exit_status`, what the command runs) for each broken item, and as the real command in a
child process for its exit status. No output, printed or logged, may carry a token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ops_support import CATALOG, REPO

from relay._doctor import diagnose, exit_status, render
from relay.testing.mock_openmetadata import MockOpenMetadata

SPARK_CONF = """\
spark.extraListeners                        io.openlineage.spark.agent.OpenLineageSparkListener
spark.openlineage.transport.type            http
spark.openlineage.transport.url             http://127.0.0.1:{port}
spark.openlineage.transport.timeoutInMillis 2000
"""


def jwt(expires_in_s: float) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    claims = {"sub": "lineage-relay-bot", "exp": int(time.time() + expires_in_s)}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


TOKEN = jwt(30 * 86400)


class Doctor:
    """Writes a config for the mock, runs `lineage-relay doctor`, reads its table."""

    def __init__(
        self, tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.caplog = caplog
        self.more_secrets: list[str] = []
        self.tmp_path = tmp_path
        self.mock = mock
        self.token_file = tmp_path / "om-token"
        self.token_file.write_text(TOKEN + "\n")
        (tmp_path / "spool").mkdir()
        self.settings: dict[str, dict[str, Any]] = {
            "relay": {"listen": "127.0.0.1:5055"},
            "spool": {"dir": str(tmp_path / "spool"), "max_bytes": 1024**2},
            "openmetadata": {
                "host_port": mock.url,
                "sink": "openlineage",
                "jwt_token_file": str(self.token_file),
            },
        }

    def write_config(self) -> Path:
        lines: list[str] = []
        for section, values in self.settings.items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        path = self.tmp_path / "relay.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def run(
        self, spark_conf: Path | None = None
    ) -> tuple[int, dict[str, tuple[str, str, str]], str]:
        """The doctor in-process: (exit status, table rows, printed text)."""
        config = str(self.write_config())
        checks = await diagnose(
            config, None if spark_conf is None else str(spark_conf), timeout_s=5
        )
        text = render(checks, config)
        self.assert_no_token(text + self.caplog.text)
        return exit_status(checks), rows(text), text

    def assert_no_token(self, text: str) -> None:
        for secret in (TOKEN, TOKEN.split(".")[1], "ingest-secret-value", *self.more_secrets):
            assert secret not in text  # no token text in any output

    async def run_command(self, *extra: str) -> tuple[int, dict[str, tuple[str, str, str]], str]:
        """`lineage-relay doctor` as a child process."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", "doctor", "--config", str(self.write_config()),
            "--timeout", "5", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        text = out.decode() + err.decode()
        self.assert_no_token(text)
        assert proc.returncode is not None
        return proc.returncode, rows(out.decode()), text


def rows(text: str) -> dict[str, tuple[str, str, str]]:
    """{check name: (level, detail, fix)} from the printed table."""
    found: dict[str, tuple[str, str, str]] = {}
    last = ""
    for line in text.splitlines()[1:]:
        level = line[2:6].strip()
        if level in ("PASS", "WARN", "FAIL"):
            name, _, detail = line[8:].partition("  ")
            last = name.strip()
            found[last] = (level, detail.strip(), "")
        elif line.strip().startswith("fix: ") and last:
            level, detail, _ = found[last]
            found[last] = (level, detail, line.strip().removeprefix("fix: "))
    return found


@pytest.fixture
async def mock() -> AsyncIterator[MockOpenMetadata]:
    async with MockOpenMetadata(tokens=[TOKEN], catalog=CATALOG) as server:
        yield server


async def test_a_healthy_setup_passes_every_check_and_exits_0(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    spark_conf = tmp_path / "spark-defaults.conf"
    spark_conf.write_text(SPARK_CONF.format(port=5055))
    code, table, text = await doctor.run_command("--spark-conf", str(spark_conf))
    assert code == 0, text
    assert {level for level, _, _ in table.values()} == {"PASS"}
    assert re.fullmatch(
        rf"version \d+\.\d+\.\d+ at {re.escape(mock.url)}", table["OpenMetadata"][1]
    )
    assert table["native endpoint"][1].startswith("present")
    assert "expires in 30 days" in table["token"][1]
    assert str(doctor.token_file) in table["token source"][1]  # where, never what
    assert "is this relay" in table["spark target"][1]
    assert "0 warnings, 0 failures (exit status 0)" in text


async def test_a_wrong_token_fails_with_its_fix(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    wrong = jwt(30 * 86400).replace("c2ln", "d3Jv")  # not one the mock accepts
    doctor.token_file.write_text(wrong)
    doctor.more_secrets.append(wrong)
    code, table, text = await doctor.run_command()
    assert code == 2, text
    level, detail, fix = table["token accepted"]
    assert level == "FAIL" and "401" in detail and "Invalid Token" in detail
    assert "valid bot token" in fix


@pytest.mark.parametrize(
    ("settings", "status", "check", "level", "seen", "fix"),
    [
        pytest.param(
            {"openmetadata": {"host_port": "http://127.0.0.1:9/api"}},
            2, "OpenMetadata", "FAIL", ("cannot connect", "127.0.0.1:9"), "host_port",
            id="unreachable server",
        ),
        pytest.param(
            {"spool": {"dir": "{tmp}/a-file/spool"}},  # under a file: never creatable
            2, "spool directory", "FAIL", ("is not a directory",), "spool.dir",
            id="unwritable spool",
        ),
        pytest.param(
            {"audit": {"path": "{tmp}/a-file/audit.jsonl"}},
            2, "audit log", "FAIL", ("is not a directory",), "audit.path",
            id="unwritable audit log",
        ),
        pytest.param(
            {"audit": {"path": "{tmp}/logs/audit.jsonl"}},
            0, "audit log", "PASS", ("logs/audit.jsonl can be written",), "",
            id="audit log in a directory to create",
        ),
        pytest.param(
            {"spool": {"max_bytes": 1024**5}},  # a PiB
            1, "spool disk", "WARN", ("less than spool.max_bytes",), "lower",
            id="spool larger than the free disk",
        ),
        pytest.param(
            {"spool": {"when_full": "explode"}},
            2, "configuration", "FAIL", ("spool.when_full",), "examples/relay.toml",
            id="refused configuration",
        ),
    ],
)  # fmt: skip
async def test_a_broken_item_is_reported_with_its_fix_and_exit_status(
    tmp_path: Path,
    mock: MockOpenMetadata,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, dict[str, Any]],
    status: int,
    check: str,
    level: str,
    seen: tuple[str, ...],
    fix: str,
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    (tmp_path / "a-file").write_text("")
    for section, values in settings.items():
        for key, value in values.items():
            value = value.format(tmp=tmp_path) if isinstance(value, str) else value
            doctor.settings.setdefault(section, {})[key] = value
    code, table, text = await doctor.run()
    assert code == status, text
    assert table[check][0] == level
    assert all(part in table[check][1] for part in seen), table[check]
    assert fix in table[check][2]
    if check == "OpenMetadata":
        assert "token accepted" not in table  # nothing more to ask an absent server


async def test_a_network_listen_needs_an_ingest_token(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    doctor.settings["relay"]["listen"] = "0.0.0.0:5055"
    code, table, text = await doctor.run()
    assert code == 2, text
    level, detail, fix = table["listen address"]
    assert level == "FAIL" and "no ingest token" in detail and "ingest.token_file" in fix

    ingest_token = tmp_path / "ingest-token"
    ingest_token.write_text("ingest-secret-value\n")
    doctor.settings["ingest"] = {"token_file": str(ingest_token)}
    code, table, text = await doctor.run()
    assert code == 1, text  # reachable from the network: a warning once a token guards it
    assert table["listen address"][0] == "WARN"
    assert {level for name, (level, _, _) in table.items() if name != "listen address"} == {"PASS"}


async def test_a_spark_conf_pointing_elsewhere_fails(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    spark_conf = tmp_path / "spark-defaults.conf"
    spark_conf.write_text(SPARK_CONF.format(port=6000).replace("2000", "30000"))
    code, table, text = await doctor.run(spark_conf)
    assert code == 2, text
    level, detail, fix = table["spark target"]
    assert level == "FAIL" and "http://127.0.0.1:6000" in detail and "127.0.0.1:5055" in detail
    assert "transport.url=http://127.0.0.1:5055" in fix
    assert table["spark timeout"][0] == "WARN"

    spark_conf.write_text("spark.app.name etl\n")
    code, table, _ = await doctor.run(spark_conf)
    assert code == 2 and table["spark listener"][0] == "FAIL"
    assert "spark.extraListeners" in table["spark listener"][2]


async def test_spark_must_send_the_ingest_token_the_relay_requires(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    ingest_token = tmp_path / "ingest-token"
    ingest_token.write_text("ingest-secret-value\n")
    doctor.settings["ingest"] = {"token_file": str(ingest_token)}
    spark_conf = tmp_path / "spark-defaults.conf"
    base = SPARK_CONF.format(port=5055) + "spark.openlineage.transport.auth.type api_key\n"
    spark_conf.write_text(base + "spark.openlineage.transport.auth.apiKey another-value\n")
    code, table, text = await doctor.run(spark_conf)
    assert code == 2, text
    assert table["spark ingest token"][0] == "FAIL" and "another-value" not in text
    spark_conf.write_text(base + "spark.openlineage.transport.auth.apiKey ingest-secret-value\n")
    code, table, text = await doctor.run(spark_conf)
    assert code == 0, text


async def test_token_expiry_warns_under_seven_days_and_fails_when_past(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soon, past = jwt(2 * 86400), jwt(-3600)
    async with MockOpenMetadata(tokens=[soon], catalog=CATALOG) as server:
        doctor = Doctor(tmp_path, server, caplog)
        doctor.token_file.write_text(soon)
        doctor.more_secrets += [soon, past]
        code, table, text = await doctor.run()
        assert code == 1, text
        assert table["token"][0] == "WARN" and "expires in 2.0 days" in table["token"][1]
        assert soon not in text
        doctor.token_file.write_text(past)
        code, table, text = await doctor.run()
        assert code == 2, text
        assert table["token"][0] == "FAIL" and "expired" in table["token"][1]
        assert past not in text


async def test_an_inline_token_warns_and_is_never_printed(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = Doctor(tmp_path, mock, caplog)
    del doctor.settings["openmetadata"]["jwt_token_file"]
    doctor.settings["openmetadata"]["jwt_token"] = TOKEN
    code, table, text = await doctor.run()  # run() asserts the token is absent
    assert code == 1, text
    level, detail, fix = table["token source"]
    assert level == "WARN" and "inline" in detail and "jwt_token_file" in fix
    assert table["token accepted"][0] == "PASS"


async def test_the_openlineage_sink_on_a_server_without_the_native_endpoint_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with MockOpenMetadata(tokens=[TOKEN], openlineage_endpoints=False) as server:
        doctor = Doctor(tmp_path, server, caplog)
        code, table, text = await doctor.run()
        assert code == 2, text
        level, _, fix = table["native endpoint"]
        assert level == "FAIL" and 'sink = "rest"' in fix
        doctor.settings["openmetadata"]["sink"] = "rest"
        code, table, text = await doctor.run()
        assert table["native endpoint"][0] == "PASS" and "absent" in table["native endpoint"][1]


@pytest.mark.usefixtures("aws_env")
async def test_the_offload_bucket_is_checked_when_configured(
    tmp_path: Path, mock: MockOpenMetadata, caplog: pytest.LogCaptureFixture, moto_server: str
) -> None:
    from aiobotocore.session import get_session

    doctor = Doctor(tmp_path, mock, caplog)
    doctor.settings["offload"] = {
        "s3_uri": "s3://relay-offload/driver-1",
        "region": "eu-west-1",
        "endpoint_url": moto_server,
    }
    code, table, text = await doctor.run()
    assert code == 2, text  # no such bucket yet
    level, detail, fix = table["offload bucket"]
    assert level == "FAIL" and "NoSuchBucket" in detail and "s3:PutObject" in fix

    async with get_session().create_client(
        "s3", region_name="eu-west-1", endpoint_url=moto_server
    ) as s3:
        await s3.create_bucket(
            Bucket="relay-offload", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        try:
            code, table, text = await doctor.run()
            assert code == 0, text
            assert table["offload bucket"] == (
                "PASS",
                "s3://relay-offload/driver-1 takes objects",
                "",
            )
            listed = await s3.list_objects_v2(Bucket="relay-offload")
            assert listed.get("KeyCount", 0) == 0  # the test object is gone again
        finally:
            await s3.delete_bucket(Bucket="relay-offload")


async def test_tls_is_verified_against_the_configured_ca(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import ssl

    import trustme

    ca = trustme.CA(organization_name="lineage-relay doctor test CA")
    bundle = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    mock = MockOpenMetadata(tokens=[TOKEN], catalog=CATALOG)
    await mock.start(ssl_context=server_ctx, control_port=None)
    try:
        assert mock.url.startswith("https://")
        doctor = Doctor(tmp_path, mock, caplog)
        code, table, text = await doctor.run()  # the system CAs do not know the private CA
        assert code == 2, text
        level, detail, fix = table["OpenMetadata"]
        assert level == "FAIL" and "TLS certificate not trusted" in detail
        assert "openmetadata.ca_bundle" in fix

        doctor.settings["openmetadata"]["ca_bundle"] = str(bundle)
        code, table, text = await doctor.run()
        assert code == 0, text
        assert table["TLS"] == (
            "PASS",
            f"https with certificate verification, CA bundle {bundle}",
            "",
        )

        del doctor.settings["openmetadata"]["ca_bundle"]
        doctor.settings["openmetadata"]["ssl_verify"] = False
        code, table, text = await doctor.run()
        assert code == 1, text  # works, but warned about
        level, detail, fix = table["TLS"]
        assert level == "WARN" and "verification is OFF" in detail and "ca_bundle" in fix
    finally:
        await mock.aclose()
