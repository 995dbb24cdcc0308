"""`benchmarks/_runner.py --only`: every name given runs, and a name that is no benchmark is
refused before anything runs (a typo used to run nothing and write an empty report)."""

from __future__ import annotations

from pathlib import Path

import _runner
import pytest


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the benchmarks and the machine probe: records which scripts would run."""
    names: list[str] = []

    def fake_run(script: Path, *, quick: bool, results_dir: Path) -> _runner.Outcome:
        names.append(script.stem)
        return _runner.Outcome(script, 0.0, 0, f"RESULT {script.stem}_x=1\n", "")

    monkeypatch.setattr(_runner, "run", fake_run)
    monkeypatch.setattr(_runner, "machine", lambda results_dir: [("cores", "2")])
    return names


def main_with(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr("sys.argv", ["_runner.py", *args])
    return _runner.main()


def test_only_given_twice_runs_both(
    ran: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = main_with(
        monkeypatch, "--only", "ingest", "--only", "backlog", "--results", str(tmp_path)
    )
    assert code == 0
    assert sorted(ran) == ["backlog", "ingest"]
    assert "backlog_x" in (tmp_path / "REPORT.md").read_text()


def test_only_lists_several_names(
    ran: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert main_with(monkeypatch, "--only", "drain", "soak", "--results", str(tmp_path)) == 0
    assert sorted(ran) == ["drain", "soak"]


def test_unknown_name_is_refused_before_anything_runs(
    ran: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main_with(monkeypatch, "--only", "ingest", "ingset", "--results", str(tmp_path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no benchmark named ingset" in err and "ingest" in err.split("known:")[1]
    assert ran == [] and not (tmp_path / "REPORT.md").exists()
