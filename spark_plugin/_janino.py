"""The JVM helpers the plugin ships as Java source beside its modules (`*.java`), compiled with
the Janino compiler Spark already ships: once per JVM and class, whoever asks first."""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["compiled_class"]

_compiled: dict[tuple[int, str], tuple[Any, Any]] = {}  # (id(gateway), class) -> (gateway, class)
_lock = threading.Lock()


def _source(file_name: str) -> str:
    try:
        return resources.files("spark_plugin").joinpath(file_name).read_text("utf-8")
    except (OSError, TypeError, ValueError):
        # a source checkout used as a namespace package has no resource reader
        return Path(__file__).with_name(file_name).read_text("utf-8")


def compiled_class(gateway: Any, file_name: str, class_name: str) -> Any:
    """The JVM class `class_name` compiled from `file_name`, cached for this gateway's JVM.

    Janino takes ~0.3 s the first time; a failure (py4j's Py4JJavaError, a missing Janino)
    propagates to the caller, which knows what to fall back to.
    """
    with _lock:
        cached = _compiled.get((id(gateway), class_name))
        if cached is not None and cached[0] is gateway:
            return cached[1]
        jvm = gateway.jvm
        compiler = jvm.org.codehaus.janino.SimpleCompiler()
        compiler.setParentClassLoader(
            jvm.org.apache.spark.util.Utils.getContextOrSparkClassLoader()
        )
        compiler.cook(_source(file_name))
        cls = compiler.getClassLoader().loadClass(class_name)
        _compiled[(id(gateway), class_name)] = (gateway, cls)
        return cls
