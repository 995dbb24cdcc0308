"""Request models of the OpenMetadata 1.13 API calls the mock serves (2.0's: ``_models_v2``).

Written by hand from the facts in OpenMetadata's JSON Schemas (required fields, enums,
``additionalProperties: false``, string patterns); the tests check them against the schemas
themselves. Nested structures the relay never sends (profiler configs, data models of tables,
life cycle, connection configs) are only checked for being objects.
"""

from __future__ import annotations

from ._validation import (
    AnyObject,
    AnyValue,
    Arr,
    Bool,
    Enum,
    Int,
    Lazy,
    Num,
    Obj,
    Str,
    Type,
)

_API = "org.openmetadata.schema.api"
_TYPE = "org.openmetadata.schema.type"


def _words(text: str) -> tuple[str, ...]:
    """Enum values written as space-separated text (long lists read better that way)."""
    return tuple(text.split())


ENTITY_NAME = Str(min_length=1, max_length=256, pattern=r"^((?!::).)*$")
FQN = Str(min_length=1, max_length=3072)
TEXT = Str()
UUID = Str(fmt="uuid")
TIMESTAMP_MS = Int()
SOURCE_HASH = Str(min_length=1, max_length=32)

ENTITY_REFERENCE = Obj(
    f"{_TYPE}.EntityReference",
    {
        "id": UUID,
        "type": TEXT,
        "name": TEXT,
        "fullyQualifiedName": TEXT,
        "description": TEXT,
        "displayName": TEXT,
        "deleted": Bool(),
        "inherited": Bool(),
        "href": TEXT,
    },
    frozenset({"id", "type"}),
)
OWNERS = Arr(ENTITY_REFERENCE)

TAG_LABEL = Obj(
    f"{_TYPE}.TagLabel",
    {
        "tagFQN": TEXT,
        "name": TEXT,
        "displayName": TEXT,
        "description": TEXT,
        "style": AnyObject(),
        "source": Enum(f"{_TYPE}.TagLabel$TagSource", ("Classification", "Glossary")),
        "labelType": Enum(
            f"{_TYPE}.TagLabel$LabelType",
            ("Manual", "Propagated", "Automated", "Derived", "Generated"),
        ),
        "state": Enum(f"{_TYPE}.TagLabel$State", ("Suggested", "Confirmed")),
        "href": TEXT,
        "reason": TEXT,
        "appliedAt": Str(fmt="date-time"),
        "appliedBy": TEXT,
        "metadata": AnyObject(),
    },
    frozenset({"tagFQN", "source", "labelType", "state"}),
)
TAGS = Arr(TAG_LABEL)

# Fields every create request shares, after its own name/description.
_COMMON = {
    "displayName": TEXT,
    "description": TEXT,
    "tags": TAGS,
    "owners": OWNERS,
    "dataProducts": Arr(FQN),
    "domains": Arr(TEXT),
    "extension": AnyValue(),
    "lifeCycle": AnyObject(),
}


def _connection(java: str) -> Obj:
    return Obj(java, {"config": AnyObject()})


# -- services ---------------------------------------------------------------------------------

DATABASE_SERVICE_TYPES = _words(
    "BigQuery BigTable Mysql Redshift Snowflake Postgres Timescale Mssql MicrosoftAccess "
    "Oracle Athena Hive Impala Presto Trino Vertica Glue MariaDB Druid Db2 Clickhouse "
    "Databricks AzureSQL DynamoDB SingleStore SQLite DeltaLake Salesforce PinotDB Datalake "
    "DomoDatabase QueryLog CustomDatabase Dbt SapHana MongoDB Cassandra Couchbase Greenplum "
    "Doris StarRocks UnityCatalog SAS Teradata SapErp Synapse Exasol Cockroach SSAS Epic "
    "ServiceNow Dremio MicrosoftFabric BurstIQ Informix Iomete"
)
PIPELINE_SERVICE_TYPES = _words(
    "Airflow GluePipeline KinesisFirehose Airbyte Fivetran Flink Dagster Nifi DomoPipeline "
    "CustomPipeline DatabricksPipeline Spline Spark OpenLineage KafkaConnect DBTCloud "
    "Matillion Stitch DataFactory Wherescape SSIS Snowplow Mulesoft MicrosoftFabricPipeline"
)
STORAGE_SERVICE_TYPES = ("S3", "ADLS", "GCS", "CustomStorage")


def _service(
    java: str,
    service_types: tuple[str, ...] | list[str],
    connection: str,
    extra: dict[str, Type] | None = None,
) -> Obj:
    extra = extra or {}
    return Obj(
        java,
        {
            "name": ENTITY_NAME,
            "serviceType": Enum(f"{java}$ServiceType", tuple(service_types)),
            "connection": _connection(connection),
            "ingestionRunner": ENTITY_REFERENCE,
            "displayName": TEXT,
            "description": TEXT,
            "tags": TAGS,
            "owners": OWNERS,
            "dataProducts": Arr(FQN),
            "domains": Arr(TEXT),
            **extra,
        },
        frozenset({"name", "serviceType"}),
    )


CREATE_DATABASE_SERVICE = _service(
    f"{_API}.services.CreateDatabaseService", DATABASE_SERVICE_TYPES, f"{_TYPE}.DatabaseConnection"
)
CREATE_PIPELINE_SERVICE = _service(
    f"{_API}.services.CreatePipelineService",
    PIPELINE_SERVICE_TYPES,
    f"{_TYPE}.PipelineConnection",
    {"scheduleInterval": TEXT, "lifeCycle": AnyObject()},
)
CREATE_STORAGE_SERVICE = _service(
    f"{_API}.services.CreateStorageService", STORAGE_SERVICE_TYPES, f"{_TYPE}.StorageConnection"
)

# -- databases, schemas, tables ---------------------------------------------------------------

_DATA_ASSET = {**_COMMON, "sourceUrl": TEXT, "sourceHash": SOURCE_HASH}

CREATE_DATABASE = Obj(
    f"{_API}.data.CreateDatabase",
    {
        "name": ENTITY_NAME,
        "service": FQN,
        "default": Bool(),
        "retentionPeriod": TEXT,
        **_DATA_ASSET,
    },
    frozenset({"name", "service"}),
)
CREATE_DATABASE_SCHEMA = Obj(
    f"{_API}.data.CreateDatabaseSchema",
    {"name": ENTITY_NAME, "database": FQN, "retentionPeriod": TEXT, **_DATA_ASSET},
    frozenset({"name", "database"}),
)

_PLAIN_DATA_TYPES = _words(
    "NUMBER TINYINT SMALLINT INT BIGINT BYTEINT BYTES FLOAT DOUBLE DECIMAL NUMERIC TIMESTAMP "
    "TIMESTAMPZ TIME DATE DATETIME INTERVAL STRING MEDIUMTEXT TEXT CHAR LONG VARCHAR BOOLEAN "
    "BINARY VARBINARY ARRAY BLOB LONGBLOB MEDIUMBLOB MAP STRUCT UNION SET GEOGRAPHY ENUM JSON "
    "UUID VARIANT GEOMETRY BYTEA AGGREGATEFUNCTION ERROR FIXED RECORD NULL SUPER HLLSKETCH "
    "PG_LSN PG_SNAPSHOT TSQUERY TXID_SNAPSHOT XML MACADDR TSVECTOR UNKNOWN CIDR INET CLOB "
    "ROWID LOWCARDINALITY YEAR POINT POLYGON TUPLE SPATIAL TABLE NTEXT IMAGE IPV4 IPV6 "
    "DATETIMERANGE HLL LARGEINT QUANTILE_STATE AGG_STATE BITMAP UINT BIT MONEY"
)
COLUMN_DATA_TYPES = (
    *_PLAIN_DATA_TYPES,
    "MEASURE HIDDEN",
    "MEASURE VISIBLE",
    *_words("MEASURE KPI HEIRARCHY HIERARCHYID"),
)
_DATA_TYPE = Enum(f"{_TYPE}.ColumnDataType", COLUMN_DATA_TYPES)

COLUMN: Obj = Obj(
    f"{_TYPE}.Column",
    {
        "name": Str(min_length=1, pattern=r"^((?!::).)*$"),
        "displayName": TEXT,
        "dataType": _DATA_TYPE,
        "arrayDataType": _DATA_TYPE,
        "dataLength": Int(),
        "precision": Int(),
        "scale": Int(),
        "dataTypeDisplay": TEXT,
        "description": TEXT,
        "fullyQualifiedName": FQN,
        "tags": TAGS,
        "constraint": Enum(
            f"{_TYPE}.ColumnConstraint", ("NULL", "NOT_NULL", "UNIQUE", "PRIMARY_KEY")
        ),
        "ordinalPosition": Int(),
        "jsonSchema": TEXT,
        "children": Arr(Lazy(lambda: COLUMN)),
        "profile": AnyObject(),
        "customMetrics": Arr(AnyObject()),
        "extension": AnyValue(),
    },
    frozenset({"name", "dataType"}),
)
TABLE_TYPES = _words(
    "Regular External Dynamic View SecureView MaterializedView Iceberg Local Partitioned "
    "Foreign Transient Stream Stage"
)
TABLE_CONSTRAINT = Obj(
    f"{_TYPE}.TableConstraint",
    {
        "constraintType": Enum(
            f"{_TYPE}.TableConstraint$ConstraintType",
            ("UNIQUE", "PRIMARY_KEY", "FOREIGN_KEY", "SORT_KEY", "DIST_KEY", "CLUSTER_KEY"),
        ),
        "columns": Arr(TEXT),
        "referredColumns": Arr(FQN),
        "relationshipType": Enum(
            f"{_TYPE}.TableConstraint$RelationshipType",
            ("ONE_TO_ONE", "ONE_TO_MANY", "MANY_TO_ONE", "MANY_TO_MANY"),
        ),
    },
)
TABLE_FILE_FORMATS = _words(
    "csv csv.gz tsv avro parquet pq pqt parq parquet.snappy json json.gz json.zip jsonl "
    "jsonl.gz jsonl.zip MF4"
)
CREATE_TABLE = Obj(
    f"{_API}.data.CreateTable",
    {
        "name": ENTITY_NAME,
        "tableType": Enum(f"{_TYPE}.TableType", TABLE_TYPES),
        "columns": Arr(COLUMN),
        "dataModel": AnyObject(),
        "locationPath": TEXT,
        "tableConstraints": Arr(TABLE_CONSTRAINT),
        "tablePartition": AnyObject(),
        "tableProfilerConfig": AnyObject(),
        "databaseSchema": FQN,
        "schemaDefinition": TEXT,
        "retentionPeriod": TEXT,
        "fileFormat": Enum(f"{_TYPE}.FileFormat", TABLE_FILE_FORMATS),
        **_DATA_ASSET,
    },
    frozenset({"name", "columns", "databaseSchema"}),
)

# -- storage ----------------------------------------------------------------------------------

CONTAINER_DATA_MODEL = Obj(
    f"{_TYPE}.ContainerDataModel",
    {"isPartitioned": Bool(), "columns": Arr(COLUMN)},
    frozenset({"columns"}),
)
CONTAINER_FILE_FORMATS = ("zip", "gz", "zstd", "csv", "tsv", "json", "parquet", "avro", "MF4")
CREATE_CONTAINER = Obj(
    f"{_API}.data.CreateContainer",
    {
        "name": ENTITY_NAME,
        "service": FQN,
        "parent": ENTITY_REFERENCE,
        "dataModel": CONTAINER_DATA_MODEL,
        "prefix": TEXT,
        "numberOfObjects": Num(),
        "size": Num(),
        "fileFormats": Arr(Enum(f"{_TYPE}.ContainerFileFormat", CONTAINER_FILE_FORMATS)),
        "fullPath": TEXT,
        **_DATA_ASSET,
    },
    frozenset({"name", "service"}),
)

# -- pipelines --------------------------------------------------------------------------------

STATUS_TYPES = ("Successful", "Failed", "Pending", "Skipped")
_STATUS_TYPE = Enum(f"{_TYPE}.StatusType", STATUS_TYPES)

TASK = Obj(
    f"{_TYPE}.Task",
    {
        "name": TEXT,
        "displayName": TEXT,
        "fullyQualifiedName": TEXT,
        "description": TEXT,
        "sourceUrl": TEXT,
        "downstreamTasks": Arr(TEXT),
        "taskType": TEXT,
        "taskSQL": TEXT,
        "startDate": TEXT,
        "endDate": TEXT,
        "tags": TAGS,
        "owners": OWNERS,
    },
    frozenset({"name"}),
)
CREATE_PIPELINE = Obj(
    f"{_API}.data.CreatePipeline",
    {
        "name": ENTITY_NAME,
        "sourceUrl": TEXT,
        "concurrency": Int(),
        "pipelineLocation": TEXT,
        "startDate": Str(fmt="date-time"),
        "tasks": Arr(TASK),
        "state": Enum(f"{_TYPE}.PipelineState", ("Active", "Inactive")),
        "service": FQN,
        "scheduleInterval": TEXT,
        "sourceHash": SOURCE_HASH,
        **_COMMON,
    },
    frozenset({"name", "service"}),
)

_DATASET_USAGE = Obj(
    f"{_TYPE}.DatasetUsage",
    {
        "datasetFQN": TEXT,
        "columns": Arr(TEXT),
        "rowCount": Int(),
        "sizeBytes": Int(),
        "filter": TEXT,
        "version": TEXT,
    },
    frozenset({"datasetFQN"}),
    closed=False,
)
_DATASET_GENERATION = Obj(
    f"{_TYPE}.DatasetGeneration",
    {
        "datasetFQN": TEXT,
        "columns": Arr(TEXT),
        "rowCount": Int(),
        "sizeBytes": Int(),
        "mode": Enum(f"{_TYPE}.DatasetGeneration$Mode", ("overwrite", "append", "merge", "upsert")),
        "partitions": Arr(TEXT),
        "version": TEXT,
    },
    frozenset({"datasetFQN"}),
    closed=False,
)
TASK_STATUS = Obj(
    f"{_TYPE}.Status",
    {
        "name": TEXT,
        "executionStatus": _STATUS_TYPE,
        "startTime": TIMESTAMP_MS,
        "endTime": TIMESTAMP_MS,
        "logLink": TEXT,
        "taskId": TEXT,
        "transformationType": Enum(
            f"{_TYPE}.Status$TransformationType",
            ("filter", "aggregate", "join", "pivot", "custom", "extract", "load"),
        ),
        "transformationLogic": TEXT,
        "inputs": Arr(_DATASET_USAGE),
        "outputs": Arr(_DATASET_GENERATION),
        "metrics": AnyObject(),
    },
    frozenset({"name", "executionStatus"}),
)
PIPELINE_STATUS = Obj(
    f"{_TYPE}.PipelineStatus",
    {
        "timestamp": TIMESTAMP_MS,
        "executionStatus": _STATUS_TYPE,
        "taskStatus": Arr(TASK_STATUS),
        "executionId": TEXT,
        "endTime": TIMESTAMP_MS,
        "version": TEXT,
        "parameters": AnyObject(),
        "executedBy": ENTITY_REFERENCE,
        "inputs": Arr(_DATASET_USAGE),
        "outputs": Arr(_DATASET_GENERATION),
        "metrics": AnyObject(),
        "error": AnyObject(),
    },
    frozenset({"timestamp", "executionStatus"}),
)

# -- lineage ----------------------------------------------------------------------------------

LINEAGE_SOURCES = _words(
    "Manual ViewLineage QueryLineage PipelineLineage DashboardLineage DbtLineage SparkLineage "
    "OpenLineage ExternalTableLineage CrossDatabaseLineage ChildAssets"
)
COLUMN_LINEAGE = Obj(
    f"{_TYPE}.ColumnLineage",
    {"fromColumns": Arr(FQN), "toColumn": FQN, "function": TEXT},
    closed=False,
)
LINEAGE_DETAILS = Obj(
    f"{_TYPE}.LineageDetails",
    {
        "sqlQuery": TEXT,
        "columnsLineage": Arr(COLUMN_LINEAGE),
        "pipeline": ENTITY_REFERENCE,
        "description": TEXT,
        "source": Enum(f"{_TYPE}.LineageDetails$Source", LINEAGE_SOURCES),
        "createdAt": TIMESTAMP_MS,
        "createdBy": TEXT,
        "updatedAt": TIMESTAMP_MS,
        "updatedBy": TEXT,
        "assetEdges": Int(),
        "tempLineageTables": Arr(
            Obj(
                f"{_TYPE}.TempLineageTable",
                {"fromEntity": TEXT, "toEntity": TEXT},
                frozenset({"fromEntity", "toEntity"}),
                closed=False,
            )
        ),
    },
    closed=False,
)
ENTITIES_EDGE = Obj(
    f"{_TYPE}.EntitiesEdge",
    {
        "fromEntity": ENTITY_REFERENCE,
        "toEntity": ENTITY_REFERENCE,
        "description": TEXT,
        "lineageDetails": LINEAGE_DETAILS,
    },
    frozenset({"fromEntity", "toEntity"}),
)
ADD_LINEAGE = Obj(f"{_API}.lineage.AddLineage", {"edge": ENTITIES_EDGE}, frozenset({"edge"}))

# -- OpenLineage (the native endpoint's own, partial model of a RunEvent) ---------------------

OPENLINEAGE_EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
