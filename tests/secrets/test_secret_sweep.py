"""A sweep for leaked secrets across everything a relay says, under traffic built to tempt it.

The relay and the mock OpenMetadata run as real processes. Distinctive tokens (an ingest
token and two OpenMetadata JWTs, fresh per run) go through every path that could echo
them: right and wrong ingest tokens, a token inside a malformed header and inside a 100 KB
header line (the HTTP parser quotes what it refuses), a token in the query string, the
ingest token file and the JWT file rotated, OpenMetadata answering 401 to the old JWT.
Then every log line, every answer (status line, headers, body) the clients got, /health,
/metrics, and the output of `doctor` and `status` are searched for each token, its base64
forms, and each JWT segment: none may appear.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from relay_support import RelayProcess

from relay.testing.processes import MockProcess

REPO = Path(__file__).resolve().parent.parent.parent
EVENTS = REPO / "tests" / "fixtures" / "events"
COMPLETE = json.loads((EVENTS / "spark" / "04_COMPLETE_insert_revenue_by_country.json").read_text())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(tag: str) -> str:
    header = _b64url(b'{"alg":"RS256","typ":"JWT","kid":"sweep-' + tag.encode() + b'"}')
    claims = {"iss": "open-metadata.org", "sub": f"sweep-bot-{tag}", "isBot": True,
              "exp": int(time.time()) + 3600}  # fmt: skip
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(64))}"


def _needles(token: str) -> set[str]:
    """The token and what it looks like encoded: base64 (both alphabets), JWT segments."""
    raw = token.encode()
    found = {token}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        found |= {text, text.rstrip("=")}
    found |= {part for part in token.split(".") if len(part) >= 8}
    return found


def _event() -> bytes:
    return json.dumps({**COMPLETE, "run": {**COMPLETE["run"], "runId": str(uuid.uuid4())}}).encode()


def _call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> str:
    """The whole answer as text (status, headers, body), whatever the status."""
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            return f"{resp.status} {resp.headers}\n{resp.read().decode()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.headers}\n{exc.read().decode()}"


def _raw(url: str, data: bytes) -> str:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks).decode("latin-1")


def _wait(condition: object, timeout_s: float = 60.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True, text=True, timeout=90, cwd=REPO, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("LINEAGE_RELAY_")},
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.mark.slow
def test_no_token_appears_in_any_output(tmp_path: Path) -> None:
    tag = secrets.token_hex(6)
    ingest_old = f"ingest-sweep-{tag}-{secrets.token_hex(16)}"
    ingest_new = f"ingest-sweep-{tag}-{secrets.token_hex(16)}"
    jwt_old, jwt_new = _jwt(tag + "a"), _jwt(tag + "b")
    ingest_file = tmp_path / "ingest-token"
    ingest_file.write_text(ingest_old)
    jwt_file = tmp_path / "om-token"
    jwt_file.write_text(jwt_old)  # the mock only takes the new one: 401 until it rotates
    said: list[str] = []

    with MockProcess(tmp_path, token=jwt_new) as mock:
        settings = {
            "ingest.token_file": str(ingest_file),
            "openmetadata.host_port": mock.url,
            "openmetadata.jwt_token_file": str(jwt_file),
            "openmetadata.retry_delay_ms": 100,
            "openmetadata.retry_max_delay_ms": 200,
            "relay.log_level": "debug",
            "breaker.recovery_timeout_s": 0.5,
            "forwarder.linger_ms": 20,
        }
        config = tmp_path / "relay.toml"
        config.write_text(
            f'[ingest]\ntoken_file = "{ingest_file}"\n'
            f'[openmetadata]\nhost_port = "{mock.url}"\njwt_token_file = "{jwt_file}"\n'
        )
        with RelayProcess(tmp_path, tmp_path / "spool", settings=settings) as relay:
            url = relay.url + "/api/v1/lineage"
            good = {"Authorization": f"Bearer {ingest_old}", "Content-Type": "application/json"}
            said.append(_call(url, _event(), good))
            said.append(_call(url, _event(), {"Authorization": f"Bearer {ingest_old}x"}))
            said.append(_call(url, _event(), {"Authorization": f"Basic {ingest_old}"}))
            said.append(_call(url + f"?api_key={ingest_old}", b"{", good))
            head = f"POST /api/v1/lineage HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer {ingest_old}"
            said.append(_raw(relay.url, (head + "\x01\r\n\r\n").encode()))
            said.append(_raw(relay.url, (head + "x" * 100_000 + "\r\n\r\n").encode()))
            said.append(_raw(relay.url, (head + "\r\nContent-Length: -1\r\n\r\n").encode()))
            # OpenMetadata refuses the old JWT: the event waits; the rotated file delivers it.
            _wait(lambda: any(r["status"] == 401 for r in mock.control("/mock/requests")))
            jwt_file.write_text(jwt_new)
            ingest_file.write_text(ingest_new)
            rotated = {**good, "Authorization": f"Bearer {ingest_new}"}
            _wait(lambda: _call(url, _event(), rotated).startswith("201"))
            said.append(_call(url, _event(), good))  # the old ingest token: 401 now
            _wait(lambda: relay.metrics().get("lineage_relay_spool_events") == 0)  # delivered
            said.append(_call(relay.url + "/health"))
            said.append(_call(relay.url + "/metrics"))
            said.append(_cli("status", "--url", relay.url, "--interval", "0.2"))
            said.append(_cli("doctor", "--config", str(config), "--timeout", "5"))
        logs = relay.log_path.read_text()

    assert "refused connection" in logs and '"status":401' in logs
    haystack = {"relay log": logs, **{f"answer {i}": text for i, text in enumerate(said)}}
    needles = set().union(*(_needles(t) for t in (ingest_old, ingest_new, jwt_old, jwt_new)))
    assert _leaks({"probe": "a" + jwt_new.split(".")[1] + "b"}, needles)  # the sweep can see
    leaks = _leaks(haystack, needles)
    assert not leaks, leaks[:5]


def _leaks(haystack: dict[str, str], needles: set[str]) -> list[tuple[str, str]]:
    return [(where, n) for where, text in haystack.items() for n in needles if n in text]
