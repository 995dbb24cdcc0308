"""Pure: the JVM digest of an RDD API job -> `ExecutionLineage`.

An RDD job (`sc.textFile(...)...saveAsTextFile(...)`, `saveAsHadoopFile`,
`saveAsNewAPIHadoopFile`, a `collect`) runs outside any SQL execution, so it has no plan: the
JVM helper (`_plan_digest.java`, `rddDigest`) walks the final RDD's dependency graph instead and
returns the Hadoop input paths it found, the output directory of the write and a job name built
from the RDD classes. Named as the OpenLineage Spark integration does: inputs and outputs by its
file naming rules, jobType RDD_JOB; a glob input is named after the directory above its first
wildcard segment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._model import DatasetRef, ExecutionLineage
from ._naming import path_dataset

__all__ = ["glob_base", "rdd_lineage"]

_GLOB = re.compile(r"[*?\[{]")


def glob_base(path: str) -> str:
    """`/data/in/*.txt` -> `/data/in`; `/data/2024-*/x` -> `/data`; other paths unchanged."""
    if not _GLOB.search(path):
        return path
    scheme, sep, rest = path.partition("://")
    if sep:  # scheme://authority/path: the authority is no segment
        authority, _, tail = rest.partition("/")
        return f"{scheme}://{authority}/{_before_glob(tail).lstrip('/')}"
    return _before_glob(path)


def _before_glob(path: str) -> str:
    kept: list[str] = []
    for segment in path.split("/"):
        if _GLOB.search(segment):
            break
        kept.append(segment)
    return "/".join(kept) or "/"


def rdd_lineage(
    digest: Mapping[str, Any], *, records: int = 0, size_bytes: int = 0
) -> ExecutionLineage | None:
    """Inputs, output and job node name of an RDD job; None when it touched no file."""
    inputs: list[DatasetRef] = []
    for raw in digest.get("inputs") or ():
        namespace, name = path_dataset(glob_base(str(raw)))
        if all((i.namespace, i.name) != (namespace, name) for i in inputs):
            inputs.append(DatasetRef(namespace=namespace, name=name))
    outputs: tuple[DatasetRef, ...] = ()
    if digest.get("output"):
        namespace, name = path_dataset(str(digest["output"]))
        outputs = (
            DatasetRef(
                namespace=namespace,
                name=name,
                row_count=records if records or size_bytes else None,
                size_bytes=size_bytes if records or size_bytes else None,
            ),
        )
    if not inputs and not outputs:
        return None
    return ExecutionLineage(
        node_name=str(digest.get("name") or "rdd"),
        inputs=tuple(inputs),
        outputs=outputs,
        job_type="RDD_JOB",
    )
