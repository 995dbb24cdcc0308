"""Imports run one way (ingest -> spool -> forward -> sinks; the app on top; the plugin alone),
every module imports alone, and the public surfaces are what they say."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from import_graph_support import REPO, import_graph, modules

import relay
import spark_plugin

# Modules that run something when imported (`python -m ...`).
_ENTRY_POINTS = {"relay.__main__", "relay.testing.mock_openmetadata.__main__"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Each module is imported with none of the project's modules loaded before it, so an import
    cycle or a missing import shows whichever module comes first."""
    names = sorted(set(modules()) - _ENTRY_POINTS)
    result = _run(f"""
        import importlib, sys, traceback
        failed = []
        for name in {names!r}:
            for loaded in [m for m in sys.modules if m.split(".")[0] in ("relay", "spark_plugin")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failed.append(name + ": " + traceback.format_exc(limit=3))
        print("\\n".join(failed))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_spark_plugin_imports_with_relay_unimportable() -> None:
    """The plugin runs inside a Spark driver that may have no relay installed."""
    plugin_modules = sorted(name for name in modules() if name.startswith("spark_plugin"))
    result = _run(f"""
        import importlib, sys
        sys.modules["relay"] = None  # any `import relay...` now raises ImportError
        for name in {plugin_modules!r}:
            importlib.import_module(name)
        import spark_plugin
        print(sorted(spark_plugin.__all__))
    """)
    assert result.returncode == 0, result.stderr
    assert "enable" in result.stdout


def _importers(predicate_target: str, graph: dict[str, set[str]]) -> set[str]:
    return {
        name
        for name, targets in graph.items()
        if any(t == predicate_target or t.startswith(predicate_target + ".") for t in targets)
    }


def test_sinks_never_import_the_forwarder() -> None:
    graph = import_graph()
    sinks = {name for name in graph if name.startswith("relay._sinks")}
    assert sinks, "no relay._sinks module found"
    assert _importers("relay._forward", graph) & sinks == set()


def test_only_the_cli_and_the_package_import_the_app() -> None:
    graph = import_graph()
    assert "relay._app" in graph
    assert _importers("relay._app", graph) <= {"relay._cli", "relay"}


def test_spark_plugin_never_imports_relay() -> None:
    graph = import_graph()
    plugin = {name for name in graph if name.split(".")[0] == "spark_plugin"}
    assert plugin
    assert _importers("relay", graph) & plugin == set()


def test_the_graph_reads_function_level_and_relative_imports() -> None:
    """The checks above would pass on an empty graph: show it sees what they look for."""
    graph = import_graph()
    assert "relay._forward.forwarder" in graph["relay._parts"]  # relative, module level
    assert "relay._app" in graph["relay._cli"]
    assert "relay._sinks.status" in graph["relay._sinks.client"]


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (
            relay,
            {
                "AuthError", "Config", "ConfigError", "IngestError",
                "PermanentSinkError", "RelayError", "RetriableSinkError", "Secret", "SinkError",
                "SinkTimeout", "SpoolError", "SpoolFailure", "SpoolFull", "__version__",
                "load_config",
            },
        ),
        (
            spark_plugin,
            {
                "CallbackChannel", "ConfigError", "Lineage", "PluginConfig", "PluginError",
                "UnsupportedSessionError", "enable",
            },
        ),
    ],
    ids=["relay", "spark_plugin"],
)  # fmt: skip
def test_exported_members(package: object, expected: set[str]) -> None:
    """`__all__` is sorted, is exactly the documented surface, and each name is the package's
    own (defined in one of its modules); nothing public is left out of it."""
    exported: list[str] = package.__all__  # type: ignore[attr-defined]
    assert exported == sorted(exported)
    assert set(exported) == expected
    root = package.__name__  # type: ignore[attr-defined]
    for name in exported:
        member = getattr(package, name)
        if name != "__version__":
            assert member.__module__.split(".")[0] == root, name
    public = {
        name
        for name in vars(package)
        if not name.startswith("_") and type(vars(package)[name]).__name__ != "module"
    }
    assert public <= set(exported)
