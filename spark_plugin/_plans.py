"""JVM QueryExecution -> `ExecutionLineage`.

A py4j round trip costs ~20 µs and walking a 30-node plan node by node takes 20-30 ms, too much
for the listener thread. So the walk happens inside the driver JVM: `_plan_digest.java` (package
data) is compiled once per JVM with the Janino compiler Spark already ships, and one call returns
a compact JSON digest of the analyzed plan (nodes, output attributes, the expression references
lineage needs, relations, the write command, its metrics). Everything after that is pure Python:
`_naming` names the datasets, `_columns` follows the expression ids.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from spark_plugin._columns import DEFAULT_MAX_COLUMNS, PlanNode, column_lineage
from spark_plugin._janino import compiled_class
from spark_plugin._model import DatasetRef, ExecutionLineage, SchemaField, StreamBatch, Symlink
from spark_plugin._naming import hive_symlink, jdbc_dataset, kafka_datasets, path_dataset, snake
from spark_plugin._rdd import rdd_lineage

__all__ = ["PlanDigestError", "PlanWalker", "lineage_from_digest"]

_log = logging.getLogger(__name__)

_CLASS_NAME = "LineageRelayPlanDigest"
_SOURCE = "_plan_digest.java"


class PlanDigestError(RuntimeError):
    """The JVM helper could not be compiled or could not digest a plan."""


def _compile(gateway: Any) -> Any:
    """The helper class, compiled once per JVM (`_janino`)."""
    try:
        return compiled_class(gateway, _SOURCE, _CLASS_NAME)
    except Exception as exc:
        # py4j errors carry the whole Java stack trace; its last "Caused by" says what failed
        lines = [ln for ln in str(exc).splitlines() if ln.startswith("Caused by")]
        reason = lines[-1] if lines else str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise PlanDigestError(
            f"could not compile the plan digest helper with Janino ({reason}); "
            "is this a classic (non-Connect) PySpark session with Spark's own jars?"
        ) from exc


class PlanWalker:
    """Describes what a Spark SQL execution read and wrote. Create once per session."""

    def __init__(
        self,
        jspark_session: Any,
        gateway: Any,
        *,
        column_lineage_max_columns: int = DEFAULT_MAX_COLUMNS,
    ) -> None:
        cls = _compile(gateway)
        args = gateway.new_array(gateway.jvm.java.lang.Object, 1)
        args[0] = jspark_session
        self._helper = cls.getConstructors()[0].newInstance(args)
        self._sql_execution = gateway.jvm.org.apache.spark.sql.execution.SQLExecution
        self._max_columns = column_lineage_max_columns

    def digest(self, qe: Any, *, with_metrics: bool = True) -> dict[str, Any]:
        """The raw JVM digest of a QueryExecution (one py4j call)."""
        raw = self._helper.digest(qe, with_metrics)
        data: dict[str, Any] = orjson.loads(raw)
        if "error" in data and not data.get("analysis"):
            raise PlanDigestError(f"plan digest failed in the JVM: {data['error']}")
        if data.get("errors"):
            # parts the helper could not read (an unknown Spark version's field, say); the rest
            # of the digest is still good
            _log.debug("lineage-relay: partial plan digest: %s", data["errors"])
        return data

    def describe(self, qe: Any) -> ExecutionLineage | None:
        """Lineage of a finished execution (`SparkListenerSQLExecutionEnd.qe()`); None when it
        read and wrote nothing worth reporting. Raises `PlanDigestError`."""
        return lineage_from_digest(self.digest(qe), max_columns=self._max_columns)

    def describe_job(
        self, job: Any, records: int = 0, size_bytes: int = 0
    ) -> ExecutionLineage | None:
        """Lineage of an RDD API job from its ActiveJob (one py4j call); None when it read and
        wrote no file. `records`/`size_bytes`: what its tasks wrote (output statistics)."""
        data: dict[str, Any] = orjson.loads(self._helper.rddDigest(job))
        if "error" in data:
            raise PlanDigestError(f"RDD digest failed in the JVM: {data['error']}")
        return rdd_lineage(data, records=records, size_bytes=size_bytes)

    def describe_start(self, execution_id: int) -> ExecutionLineage | None:
        """Inputs and outputs (no column lineage, no metrics) of a running execution, while Spark
        still knows its QueryExecution; None otherwise."""
        qe = self._sql_execution.getQueryExecution(execution_id)
        if qe is None:
            return None
        return lineage_from_digest(
            self.digest(qe, with_metrics=False), max_columns=self._max_columns, columns=False
        )


# ------------------------------------------------------------------ digest -> lineage (pure)


def _schema(fields: Sequence[Any]) -> tuple[SchemaField, ...]:
    return tuple(_field(name, dtype) for name, dtype in fields)


def _field(name: str, dtype: Any) -> SchemaField:
    if isinstance(dtype, list):  # ["struct", [[name, type], ...]]
        return SchemaField(name=name, type=dtype[0], fields=_schema(dtype[1]))
    return SchemaField(name=name, type=str(dtype))


def _output_schema(
    attrs: Sequence[Any], names: Sequence[str] | None = None
) -> tuple[SchemaField, ...]:
    out = []
    for i, (name, _expr_id, dtype) in enumerate(attrs):
        column = names[i] if names is not None and i < len(names) else name
        out.append(_field(column, dtype))
    return tuple(out)


def _table_dataset(
    table: Mapping[str, Any], conf: Mapping[str, Any], schema: tuple[SchemaField, ...] | None = None
) -> DatasetRef:
    location = table.get("location")
    db, name = table.get("db"), table.get("name") or ""
    if location:
        namespace, ds_name = path_dataset(location)
    else:
        namespace, ds_name = "file", f"/{db}.db/{name}" if db else f"/{name}"
    symlink = hive_symlink(db, name, location, conf)
    return DatasetRef(
        namespace=namespace,
        name=ds_name,
        schema=schema if schema is not None else _schema(table.get("schema") or ()),
        symlinks=(symlink,),
    )


def _v2_dataset(rel: Mapping[str, Any], schema: tuple[SchemaField, ...]) -> DatasetRef | None:
    """A DataSource V2 table, when Spark exposes where it lives or a catalog identifier for it
    (sinks like `noop` or the console have neither and are not datasets)."""
    ident = rel.get("ident")
    location = rel.get("location")
    if rel.get("url") and ident:
        namespace, name = jdbc_dataset(rel["url"], ident)
        return DatasetRef(namespace=namespace, name=name, schema=schema)
    if location:
        namespace, name = path_dataset(location)
        links: tuple[Symlink, ...] = ()
        if ident:
            parent = location.rstrip("/").rsplit("/", 1)[0]
            links = (Symlink(namespace=parent, name=ident),)
        return DatasetRef(namespace=namespace, name=name, schema=schema, symlinks=links)
    if ident:
        return DatasetRef(
            namespace=rel.get("catalog") or "spark_catalog", name=ident, schema=schema
        )
    return None


def _relation_datasets(
    rel: Mapping[str, Any], attrs: Sequence[Any], conf: Mapping[str, Any]
) -> list[DatasetRef]:
    schema = _output_schema(attrs)
    kind = rel.get("t")
    table = rel.get("table")
    if kind == "hive" or (kind in ("fs", "other") and table):
        return [_table_dataset(table, conf, schema)] if table else []
    if kind == "fs" and rel.get("streaming"):
        # a file stream source: the directory, not the files of this one batch
        base = rel.get("base") or _common_parent(rel.get("paths") or ())
        return [
            DatasetRef(namespace=ns, name=name, schema=schema) for ns, name in [path_dataset(base)]
        ]
    if kind == "stream_v2":
        return [
            DatasetRef(namespace=ns, name=name, schema=schema)
            for ns, name in kafka_datasets(rel.get("options") or {})
        ]
    if kind == "fs":
        out = []
        for path in rel.get("paths") or ():
            namespace, name = path_dataset(path)
            out.append(DatasetRef(namespace=namespace, name=name, schema=schema))
        return out
    if kind == "jdbc":
        dbtable = (rel.get("dbtable") or "").strip()
        if dbtable.startswith("("):  # dbtable may be a parenthesised subquery with an alias
            tables = _query_tables(dbtable)
        else:
            tables = [dbtable] if dbtable else _query_tables(rel.get("query"))
        out = []
        for table_name in tables:
            namespace, name = jdbc_dataset(rel["url"], table_name, derby_home=_derby_home(conf))
            # a query over several tables: which column comes from which table is unknown
            out.append(
                DatasetRef(
                    namespace=namespace, name=name, schema=schema if len(tables) == 1 else ()
                )
            )
        return out
    if kind == "v2":
        if rel.get("paths") and not rel.get("ident"):
            return [
                DatasetRef(namespace=ns, name=name, schema=schema)
                for ns, name in (path_dataset(p) for p in rel["paths"])
            ]
        ref = _v2_dataset(rel, schema)
        return [ref] if ref is not None else []
    return []


def _common_parent(paths: Sequence[str]) -> str:
    parents = [p.rstrip("/").rsplit("/", 1)[0] for p in paths]
    if not parents:
        return "/"
    common = parents[0]
    for parent in parents[1:]:
        while common and not (parent == common or parent.startswith(common + "/")):
            common = common.rsplit("/", 1)[0]
    return common or "/"


_FROM = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*){0,2})", re.IGNORECASE)
_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)


def _query_tables(query: str | None) -> list[str]:
    """Tables named after FROM/JOIN in a JDBC `query` option, at the top level or in a
    parenthesised SELECT (so `EXTRACT(YEAR FROM col)` names no table). The integration parses
    the SQL; this covers the plain queries people pass to `spark.read.jdbc`."""
    if not query:
        return []
    # for each character: does its innermost parenthesis group hold a query?
    in_query: list[bool] = []
    stack: list[bool] = []
    for i, ch in enumerate(query):
        if ch == "(":
            stack.append(bool(_SELECT.match(query, i + 1)))
        elif ch == ")" and stack:
            stack.pop()
        in_query.append(stack[-1] if stack else True)
    found: list[str] = []
    for match in _FROM.finditer(query):
        name = match.group(1)
        keyword = name.lower() in ("select", "lateral", "unnest")
        if in_query[match.start()] and not keyword and name not in found:
            found.append(name)
    return found


def _derby_home(conf: Mapping[str, Any]) -> str | None:
    home = conf.get("derby.system.home") or conf.get("user.dir")
    return str(home) if home else None


def _command_output(
    cmd: Mapping[str, Any], query: Mapping[str, Any] | None, conf: Mapping[str, Any]
) -> DatasetRef | None:
    kind = cmd.get("t")
    attrs = query["o"] if query is not None else []
    names = cmd.get("cols")
    schema = _output_schema(attrs, names)
    table = cmd.get("table")
    if kind == "insert_fs":
        state = "OVERWRITE" if cmd.get("mode") == "Overwrite" else None
        if table:
            ref = _table_dataset(table, conf, schema or None)
        else:
            namespace, name = path_dataset(cmd["path"])
            ref = DatasetRef(namespace=namespace, name=name, schema=schema)
        return _with_state(ref, state)
    if kind == "insert_hive" and table:
        state = "OVERWRITE" if cmd.get("overwrite") else None
        return _with_state(_table_dataset(table, conf, schema or None), state)
    if kind == "ctas" and table:
        # in Append mode the table may exist already: its nested insert tells (merge_executions)
        state = None if cmd.get("mode") == "Append" else "CREATE"
        return _with_state(_table_dataset(table, conf, schema or None), state)
    if kind == "create" and table:
        return _with_state(_table_dataset(table, conf), "CREATE")
    if kind in ("drop", "truncate") and table:
        ref = _table_dataset(table, conf, ())
        return _with_state(ref, "DROP" if kind == "drop" else "TRUNCATE")
    if kind == "insert_dir" and cmd.get("path"):
        namespace, name = path_dataset(cmd["path"])
        ref = DatasetRef(namespace=namespace, name=name, schema=schema)
        return _with_state(ref, "OVERWRITE" if cmd.get("overwrite") else None)
    if kind == "save_ds":
        state = "OVERWRITE" if cmd.get("mode") == "Overwrite" else None
        if cmd.get("url") and cmd.get("dbtable"):
            namespace, name = jdbc_dataset(cmd["url"], cmd["dbtable"], derby_home=_derby_home(conf))
        elif cmd.get("path"):
            namespace, name = path_dataset(cmd["path"])
        else:
            return None
        return _with_state(DatasetRef(namespace=namespace, name=name, schema=schema), state)
    if kind == "insert_ds" and cmd.get("rel"):
        found = _relation_datasets(cmd["rel"], attrs, conf)
        if len(found) != 1:
            return None
        return _with_state(found[0], "OVERWRITE" if cmd.get("overwrite") else None)
    if kind == "stream_sink":
        return _stream_sink(cmd, schema, conf)
    if kind == "v2_write" and cmd.get("rel"):
        rel = cmd["rel"]
        v2 = _v2_dataset(rel, _schema(rel.get("schema") or ()))
        if v2 is None:
            return None
        return _with_state(v2, "OVERWRITE" if cmd.get("overwrite") else None)
    return None


def _stream_sink(
    cmd: Mapping[str, Any], schema: tuple[SchemaField, ...], conf: Mapping[str, Any]
) -> DatasetRef | None:
    """Where a micro-batch writes: a file sink's directory, a table, a Kafka topic; None for
    `foreachBatch` (its own writes are nested executions) and sinks that are no dataset."""
    if cmd.get("table"):
        return _table_dataset(cmd["table"], conf, schema or None)
    if cmd.get("path"):
        namespace, name = path_dataset(cmd["path"])
        return DatasetRef(namespace=namespace, name=name, schema=schema)
    topics = kafka_datasets(cmd.get("options") or {})
    if len(topics) == 1:
        return DatasetRef(namespace=topics[0][0], name=topics[0][1], schema=schema)
    if cmd.get("rel"):
        return _v2_dataset(cmd["rel"], schema)
    return None


def _with_state(ref: DatasetRef, state: str | None) -> DatasetRef:
    if state is None:
        return ref
    return DatasetRef(
        namespace=ref.namespace,
        name=ref.name,
        schema=ref.schema,
        symlinks=ref.symlinks,
        lifecycle_state=state,
    )


def _node_name(digest: Mapping[str, Any], root: Mapping[str, Any] | None) -> str:
    job_node = digest.get("job_node")
    if job_node:
        return snake(job_node)
    kind = root["k"] if root else "unknown"
    return snake(f"Execute {kind}" if kind.endswith("Command") else kind)


def lineage_from_digest(
    digest: Mapping[str, Any], *, max_columns: int = DEFAULT_MAX_COLUMNS, columns: bool = True
) -> ExecutionLineage | None:
    """Pure: the JVM digest -> named datasets and column lineage."""
    if "error" in digest:  # analysis failed: the execution has no plan to describe
        return None
    raw_nodes: list[dict[str, Any]] = digest.get("nodes") or []
    conf: Mapping[str, Any] = digest.get("sys") or {}
    root_id: int = digest.get("root", -1)
    root = raw_nodes[root_id] if 0 <= root_id < len(raw_nodes) else None

    inputs: list[DatasetRef] = []
    index: dict[tuple[str, str], int] = {}
    leaf_sources: dict[int, list[int]] = {}
    for node_id, node in enumerate(raw_nodes):
        rel = node.get("rel")
        if not rel:
            continue
        found = _relation_datasets(rel, node.get("o") or (), conf)
        for ref in found:
            key = (ref.namespace, ref.name)
            if key not in index:
                index[key] = len(inputs)
                inputs.append(ref)
            if len(found) == 1 or rel.get("t") != "jdbc":
                leaf_sources.setdefault(node_id, []).append(index[key])

    output: DatasetRef | None = None
    query_id = -1
    if root is not None and root.get("cmd"):
        children = root.get("c") or []
        query_id = children[-1] if children else -1
        query = raw_nodes[query_id] if query_id >= 0 else None
        output = _command_output(root["cmd"], query, conf)

    stream = _stream_batch(digest.get("stream"))
    if output is None and not inputs and stream is None:
        return None

    outputs: tuple[DatasetRef, ...] = ()
    if output is not None:
        metrics = digest.get("metrics") or {}
        rows, size = metrics.get("numOutputRows"), metrics.get("numOutputBytes")
        files = metrics.get("numFiles")
        col_map: dict[str, Any] = {}
        ds_lineage: tuple[Any, ...] = ()
        if columns and query_id >= 0 and output.schema:
            nodes = [_plan_node(n) for n in raw_nodes]
            result = column_lineage(
                nodes,
                query_id,
                [f.name for f in output.schema],
                leaf_sources,
                [(i.namespace, i.name) for i in inputs],
                max_columns=max_columns,
            )
            col_map, ds_lineage = result.fields, result.dataset
        outputs = (
            DatasetRef(
                namespace=output.namespace,
                name=output.name,
                schema=output.schema,
                symlinks=output.symlinks,
                lifecycle_state=output.lifecycle_state,
                row_count=rows if isinstance(rows, int) else None,
                size_bytes=size if isinstance(size, int) else None,
                file_count=files if isinstance(files, int) else None,
                column_lineage=col_map,
                dataset_lineage=ds_lineage,
            ),
        )
    if stream is not None:
        kind = (root or {}).get("cmd", {}).get("kind") or "streaming_query"
        return ExecutionLineage(
            node_name=snake(kind),
            inputs=tuple(inputs),
            outputs=outputs,
            processing="STREAMING",
            stream=stream,
        )
    return ExecutionLineage(
        node_name=_node_name(digest, root), inputs=tuple(inputs), outputs=outputs
    )


def _stream_batch(raw: Mapping[str, Any] | None) -> StreamBatch | None:
    if not raw or not raw.get("run"):
        return None
    batch = raw.get("batch")
    return StreamBatch(
        query_id=str(raw.get("id") or ""),
        run_id=str(raw["run"]),
        batch_id=int(batch) if batch is not None and str(batch).lstrip("-").isdigit() else -1,
    )


def _plan_node(raw: Mapping[str, Any]) -> PlanNode:
    return PlanNode(
        kind=raw["k"],
        children=tuple(raw.get("c") or ()),
        output=tuple((a[0], a[1]) for a in raw.get("o") or ()),
        exprs=tuple((e[0], e[1], tuple((r[0], r[1]) for r in e[2])) for e in raw.get("x") or ()),
        subqueries=tuple(raw.get("sq") or ()),
        cte_id=raw.get("cte"),
    )
