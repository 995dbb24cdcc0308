"""Where OpenMetadata 2.0's request models differ from 1.13's (``_models.py``).

The differences found so far (issue 15 of this project, checked against a 2.0.7 server,
and OpenMetadata's 1.13 -> 2.0 contract-change notes): ``CreateTable.aliases`` and the
``SemanticView`` table type; database service types ``QuestDB``, ``SapBw4Hana``,
``SapSuccessFactors``; pipeline service types ``Prefect`` and ``SapBw4HanaPipeline``; a
``style`` on service create requests; entity, column and task names may no longer hold
``>``, ``"`` or control characters, and a task name must not be empty (``minLength: 1``);
the OpenLineage endpoint knows the ``ownership`` job facet (owners, each with a ``name``).
Everything else is 1.13's model unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import _models, _models_openlineage
from ._validation import AnyObject, Arr, Enum, Lazy, Obj, Str, Type

_TYPE = "org.openmetadata.schema.type"
_OL = "org.openmetadata.schema.api.lineage.openlineage"


def _extended(model: Obj, **fields: Type) -> Obj:
    """The model with fields added or replaced (same class name, required set, openness)."""
    return Obj(model.java_name, {**model.fields, **fields}, model.required, model.closed)


def _service_type(model: Obj, *added: str) -> Enum:
    current = model.fields["serviceType"]
    if not isinstance(current, Enum):
        raise TypeError(f"{model.java_name}.serviceType is not an enum")
    return Enum(current.java_name, (*current.values, *added))


# A service's ``style`` (color, icon): the mock checks only that it is an object.
_STYLE = AnyObject()
_NAME_PATTERN = r'^((?!::)[^>"\x00-\x1f])*$'
ENTITY_NAME = Str(min_length=1, max_length=256, pattern=_NAME_PATTERN)
COLUMN: Obj = _extended(
    _models.COLUMN,
    name=Str(min_length=1, pattern=_NAME_PATTERN),
    children=Arr(Lazy(lambda: COLUMN)),
)
_COLUMNS = Arr(COLUMN)

CREATE_TABLE = _extended(
    _models.CREATE_TABLE,
    name=ENTITY_NAME,
    columns=_COLUMNS,
    tableType=Enum(f"{_TYPE}.TableType", (*_models.TABLE_TYPES, "SemanticView")),
    aliases=Arr(_models.TEXT),
)
CREATE_DATABASE_SERVICE = _extended(
    _models.CREATE_DATABASE_SERVICE,
    name=ENTITY_NAME,
    serviceType=_service_type(
        _models.CREATE_DATABASE_SERVICE, "QuestDB", "SapBw4Hana", "SapSuccessFactors"
    ),
    style=_STYLE,
)
CREATE_PIPELINE_SERVICE = _extended(
    _models.CREATE_PIPELINE_SERVICE,
    name=ENTITY_NAME,
    serviceType=_service_type(_models.CREATE_PIPELINE_SERVICE, "Prefect", "SapBw4HanaPipeline"),
    style=_STYLE,
)
CREATE_STORAGE_SERVICE = _extended(_models.CREATE_STORAGE_SERVICE, name=ENTITY_NAME, style=_STYLE)
CREATE_DATABASE = _extended(_models.CREATE_DATABASE, name=ENTITY_NAME)
CREATE_DATABASE_SCHEMA = _extended(_models.CREATE_DATABASE_SCHEMA, name=ENTITY_NAME)
CREATE_CONTAINER = _extended(
    _models.CREATE_CONTAINER,
    name=ENTITY_NAME,
    dataModel=_extended(_models.CONTAINER_DATA_MODEL, columns=_COLUMNS),
)
TASK = _extended(_models.TASK, name=Str(min_length=1, pattern=_NAME_PATTERN))
CREATE_PIPELINE = _extended(_models.CREATE_PIPELINE, name=ENTITY_NAME, tasks=Arr(TASK))

# Entity type -> its 2.0 create model.
CREATE_MODELS: Mapping[str, Obj] = {
    "table": CREATE_TABLE,
    "databaseService": CREATE_DATABASE_SERVICE,
    "pipelineService": CREATE_PIPELINE_SERVICE,
    "storageService": CREATE_STORAGE_SERVICE,
    "database": CREATE_DATABASE,
    "databaseSchema": CREATE_DATABASE_SCHEMA,
    "container": CREATE_CONTAINER,
    "pipeline": CREATE_PIPELINE,
}

# -- OpenLineage ------------------------------------------------------------------------------

_JOB = _models_openlineage.OPENLINEAGE_RUN_EVENT.fields["job"]
_JOB_FACETS = _JOB.fields["facets"] if isinstance(_JOB, Obj) else None
if not isinstance(_JOB, Obj) or not isinstance(_JOB_FACETS, Obj):
    raise TypeError("the OpenLineage event model has no job facets object")
OWNERSHIP_FACET = Obj(
    f"{_OL}.OwnershipJobFacet",
    {
        "_producer": _models.TEXT,
        "_schemaURL": _models.TEXT,
        "owners": Arr(
            Obj(
                f"{_OL}.Owner",
                {"name": _models.TEXT, "type": _models.TEXT},
                frozenset({"name"}),
                closed=False,
            )
        ),
    },
    closed=False,
)
OPENLINEAGE_RUN_EVENT = _extended(
    _models_openlineage.OPENLINEAGE_RUN_EVENT,
    job=_extended(_JOB, facets=_extended(_JOB_FACETS, ownership=OWNERSHIP_FACET)),
)
OPENLINEAGE_BATCH = _extended(
    _models_openlineage.OPENLINEAGE_BATCH, events=Arr(OPENLINEAGE_RUN_EVENT, min_items=1)
)
