"""Dataset and job names, following the OpenLineage Spark integration (and the naming spec).

Pure string functions, so every rule is unit-tested without Spark:

- files: ``file`` + ``/abs/path``; ``hdfs://namenode:port`` + ``/path``; object stores
  ``s3://bucket`` (s3a/s3n normalised), ``gs://bucket``, ``abfss://container@account...`` + key
  without the leading slash;
- catalog tables: the storage location as the dataset, plus a ``symlinks`` TABLE identifier
  ``db.table`` in ``hive://metastore-host:port`` when a metastore URI is configured, else in the
  table location's parent (what the integration does for embedded metastores);
- JDBC: ``postgres://host:5432`` + ``db.schema.table``, other drivers by their scheme with the
  database as the first name part; credentials and URL parameters never reach a name;
- jobs: ``<app_name_snake>.<plan_node_snake>[.<output_suffix>]``.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

from spark_plugin._model import DatasetRef, ExecutionLineage, Symlink

__all__ = [
    "hive_symlink",
    "jdbc_dataset",
    "job_name",
    "kafka_datasets",
    "output_suffix",
    "path_dataset",
    "snake",
]

_OBJECT_STORES = {
    "s3": "s3",
    "s3a": "s3",
    "s3n": "s3",
    "gs": "gs",
    "abfs": "abfss",
    "abfss": "abfss",
    "wasb": "wasbs",
    "wasbs": "wasbs",
}
# JDBC sub-protocols whose namespace scheme differs from the URL's, with their default ports
_JDBC_SCHEMES: dict[str, tuple[str, int | None]] = {
    "postgresql": ("postgres", 5432),
    "postgres": ("postgres", 5432),
    "mysql": ("mysql", 3306),
    "mariadb": ("mysql", 3306),
    "sqlserver": ("sqlserver", 1433),
    "oracle": ("oracle", 1521),
    "db2": ("db2", 50000),
    "teradata": ("teradata", 1025),
    "redshift": ("redshift", 5439),
    "clickhouse": ("clickhouse", 8123),
    "trino": ("trino", 8080),
}


def snake(text: str) -> str:
    """`NameNormalizer` of the integration: "CLI test App" -> "cli_test_app",
    "Execute InsertIntoHadoopFsRelationCommand" -> "execute_insert_into_hadoop_fs_relation_command".
    """
    trimmed = re.sub(r"^\W+", "", text, flags=re.ASCII)
    trimmed = re.sub(r"\W+$", "", trimmed, flags=re.ASCII)
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", trimmed) if not unicodedata.combining(ch)
    )
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", plain)
    words = re.sub(r"(?<!^)([A-Z])([a-z])", r" \1\2", words)
    words = re.sub(r"(\d)(?=\D)", r"\1 ", words)
    return re.sub(r"[^a-zA-Z0-9]+", "_", words.lower())


def path_dataset(uri: str) -> tuple[str, str]:
    """(namespace, name) of a file path or URI as Hadoop prints it (`file:/x`, `hdfs://nn/x`)."""
    uri = uri.strip()
    if uri.startswith("/"):
        return "file", _clean_path(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return "file", _clean_path("/" + uri)
    if scheme in _OBJECT_STORES:
        key = _clean_path(parts.path).lstrip("/")
        return f"{_OBJECT_STORES[scheme]}://{parts.netloc}", key
    path = _clean_path(parts.path or "/")
    if parts.netloc:
        return f"{scheme}://{parts.netloc}", path
    return scheme, path


def _clean_path(path: str) -> str:
    cleaned = posixpath.normpath(path) if path else path
    # normpath keeps a leading "//"; Hadoop paths never mean anything by it
    return re.sub(r"^/+", "/", cleaned)


def hive_symlink(
    database: str | None,
    table: str,
    location_uri: str | None,
    conf: Mapping[str, str | None],
) -> Symlink:
    """The TABLE identifier of a catalog table (`conf` holds the session's catalog settings)."""
    name = f"{database}.{table}" if database else table
    metastore = _metastore_uri(conf)
    if metastore:
        return Symlink(namespace=metastore, name=name)
    namespace = "file"
    if location_uri:
        parent = location_uri.rstrip("/").rsplit("/", 1)[0]
        namespace = parent if parent and not parent.endswith(":") else location_uri
    return Symlink(namespace=namespace, name=name)


def _metastore_uri(conf: Mapping[str, str | None]) -> str | None:
    if (conf.get("spark.sql.catalogImplementation") or "") != "hive":
        return None
    for key in (
        "spark.sql.hive.metastore.uris",
        "spark.hadoop.hive.metastore.uris",
        "hive.metastore.uris",
    ):
        value = conf.get(key)
        if not value:
            continue
        first = urlsplit(value.split(",")[0].strip())
        if first.hostname:
            port = f":{first.port}" if first.port else ""
            return f"hive://{first.hostname}{port}"
    return None


def jdbc_dataset(url: str, table: str, *, derby_home: str | None = None) -> tuple[str, str]:
    """(namespace, name) of a JDBC table; user, password and URL parameters are dropped."""
    raw = re.sub(r"^jdbc:", "", url.strip(), flags=re.IGNORECASE)
    parts = [p.strip('"`[]') for p in table.split(".") if p]
    sub = raw.split(":", 1)[0].lower()
    if sub == "derby":
        return _derby(raw, parts, derby_home)
    if sub in ("sqlserver", "jtds"):
        return _sqlserver(raw, parts)
    if sub == "oracle":
        return _oracle(raw, parts)
    scheme, default_port = _JDBC_SCHEMES.get(sub, (sub, None))
    # mysql:loadbalance://h, postgresql://h, mysql+srv://h
    rest = raw.split("//", 1)[1] if "//" in raw else ""
    authority, _, tail = rest.partition("/")
    authority = authority.rsplit("@", 1)[-1].lower()
    database = re.split(r"[?;]", tail, maxsplit=1)[0]
    if default_port and authority:
        authority = ",".join(
            host if re.search(r":\d+$", host) else f"{host}:{default_port}"
            for host in authority.split(",")
        )
    namespace = f"{scheme}://{authority}" if authority else f"{scheme}:"
    name = ".".join([database, *parts] if database else parts)
    return namespace, name


def _derby(raw: str, parts: list[str], derby_home: str | None) -> tuple[str, str]:
    body = raw.split(":", 1)[1] if ":" in raw else ""
    match = re.search(r"databaseName=([^;]+)", body)
    database = match.group(1) if match else body.split(";", 1)[0]
    name = ".".join(parts)
    if database.startswith("memory:"):
        return f"derby:memory:{database[len('memory:') :]}", name
    for prefix in ("directory:", "classpath:", "jar:"):
        if database.startswith(prefix):
            database = database[len(prefix) :]
    database = database or "metastore_db"
    if not database.startswith("/"):
        database = posixpath.join(derby_home or "/", database)
    return f"file:{posixpath.normpath(database)}", name


def _sqlserver(raw: str, parts: list[str]) -> tuple[str, str]:
    body = raw.split("//", 1)[1] if "//" in raw else ""
    host_part, _, props = body.partition(";")
    host_part = host_part.split("\\", 1)[0].lower()
    if not re.search(r":\d+$", host_part):
        host_part = f"{host_part}:1433"
    match = re.search(r"(?i)(?:databaseName|database)=([^;]+)", props)
    name = ".".join([match.group(1), *parts] if match else parts)
    return f"sqlserver://{host_part}", name


def _oracle(raw: str, parts: list[str]) -> tuple[str, str]:
    # oracle:thin:@host:port:sid, oracle:thin:@//host:port/service
    at = raw.split("@", 1)[1] if "@" in raw else ""
    at = at.lstrip("/")
    match = re.match(r"([\w.\-]+)(?::(\d+))?(?:[:/]([\w.\-]+))?", at)
    if not match:
        return "oracle:", ".".join(parts)
    host, port, service = match.group(1).lower(), match.group(2) or "1521", match.group(3)
    name = ".".join([service, *parts] if service else parts)
    return f"oracle://{host}:{port}", name


def kafka_datasets(options: Mapping[str, str]) -> list[tuple[str, str]]:
    """(namespace, name) per topic of a Kafka source or sink: `kafka://<first bootstrap
    server>` and the topic, as the integration names them (a `subscribePattern` names none)."""
    servers = options.get("kafka.bootstrap.servers") or ""
    first = servers.split(",")[0].strip()
    namespace = f"kafka://{first}" if first else "kafka"
    topics: list[str] = []
    for key in ("subscribe", "topic"):
        topics += [t.strip() for t in (options.get(key) or "").split(",") if t.strip()]
    assign = options.get("assign") or ""
    topics += re.findall(r'"([^"]+)"\s*:', assign)  # {"topic": [partitions], ...}
    return [(namespace, topic) for topic in dict.fromkeys(topics)]


def output_suffix(dataset: DatasetRef, *, prefer_table: bool) -> str:
    """The job name suffix for an output: the table (db_table) for CREATE-like commands, else the
    last two path segments (`/user/hive/warehouse/t1` -> `warehouse_t1`)."""
    if prefer_table and dataset.symlinks:
        return dataset.symlinks[0].name.replace(".", "_")
    if "/" not in dataset.name:
        return dataset.name.replace(".", "_")
    segments = [s for s in dataset.name.split("/") if s]
    return "_".join(segments[-2:]).replace(".", "_")


_CREATE_NODES = ("create", "save_as")


def job_name(app_name: str, lineage: ExecutionLineage) -> str:
    """`<app_name_snake>.<node_name>[.<output_suffix>]`, as the OpenLineage Spark integration."""
    parts = [snake(app_name) or "spark"]
    if lineage.node_name:
        parts.append(lineage.node_name.replace(".", "_"))
    # the integration names DROP TABLE runs after the command alone
    if lineage.outputs and lineage.outputs[0].lifecycle_state != "DROP":
        prefer_table = any(word in lineage.node_name for word in _CREATE_NODES)
        parts.append(output_suffix(lineage.outputs[0], prefer_table=prefer_table))
    return ".".join(parts)
