"""Request models of OpenMetadata 1.13's native OpenLineage endpoint (its own, partial model of
a RunEvent and of the batch), apart from the entity models in ``_models``."""

from __future__ import annotations

from ._models import OPENLINEAGE_EVENT_TYPES, TEXT, UUID
from ._validation import AnyObject, Arr, Enum, Map, Obj, Str, Type, Uri

__all__ = ["OPENLINEAGE_BATCH", "OPENLINEAGE_RUN_EVENT"]

_OL = "org.openmetadata.schema.api.lineage.openlineage"


def _facet(java: str, fields: dict[str, Type], required: frozenset[str] = frozenset()) -> Obj:
    # OpenLineage facets are open: producers add their own keys.
    return Obj(
        java,
        {"_producer": TEXT, "_schemaURL": TEXT, **fields},
        required,
        closed=False,
    )


_OPEN = frozenset({"namespace", "name"})
_COLUMN_LINEAGE_FACET = _facet(
    f"{_OL}.ColumnLineageFacet",
    {
        "fields": Map(
            Obj(
                f"{_OL}.ColumnLineageField",
                {
                    "inputFields": Arr(
                        Obj(
                            f"{_OL}.InputField",
                            {"namespace": TEXT, "name": TEXT, "field": TEXT},
                            frozenset({"namespace", "name", "field"}),
                            closed=False,
                        )
                    ),
                    "transformationDescription": TEXT,
                    "transformationType": TEXT,
                },
                frozenset({"inputFields"}),
                closed=False,
            )
        )
    },
    frozenset({"fields"}),
)
_DATASET_FACETS = Obj(
    f"{_OL}.DatasetFacets",
    {
        "schema": _facet(
            f"{_OL}.SchemaFacet",
            {
                "fields": Arr(
                    Obj(
                        f"{_OL}.SchemaField",
                        {"name": TEXT, "type": TEXT, "description": TEXT},
                        frozenset({"name", "type"}),
                        closed=False,
                    )
                )
            },
        ),
        "symlinks": _facet(
            f"{_OL}.SymlinksFacet",
            {
                "identifiers": Arr(
                    Obj(
                        f"{_OL}.SymlinkIdentifier",
                        {"namespace": TEXT, "name": TEXT, "type": TEXT},
                        frozenset({"namespace", "name", "type"}),
                        closed=False,
                    )
                )
            },
        ),
        "datasource": _facet(f"{_OL}.DatasourceFacet", {"name": TEXT, "uri": TEXT}),
        "documentation": _facet(f"{_OL}.DocumentationFacet", {"description": TEXT}),
        "ownership": _facet(
            f"{_OL}.OwnershipFacet",
            {
                "owners": Arr(
                    Obj(
                        f"{_OL}.Owner",
                        {"name": TEXT, "type": TEXT},
                        frozenset({"name"}),
                        closed=False,
                    )
                )
            },
        ),
        "columnLineage": _COLUMN_LINEAGE_FACET,
    },
    closed=False,
)


def _dataset(java: str, extra: str, extra_type: Type) -> Obj:
    return Obj(
        java,
        {"namespace": TEXT, "name": TEXT, "facets": _DATASET_FACETS, extra: extra_type},
        _OPEN,
        closed=False,
    )


OPENLINEAGE_RUN_EVENT = Obj(
    f"{_OL}.OpenLineageRunEvent",
    {
        "eventTime": Str(fmt="date-time"),
        "producer": Uri(),
        "schemaURL": Uri(),
        "eventType": Enum(f"{_OL}.EventType", OPENLINEAGE_EVENT_TYPES),
        "run": Obj(
            f"{_OL}.OpenLineageRun",
            {
                "runId": UUID,
                "facets": Obj(
                    f"{_OL}.RunFacets",
                    {
                        "parent": _facet(
                            f"{_OL}.ParentRunFacet",
                            {
                                "run": Obj(
                                    f"{_OL}.Run",
                                    {"runId": UUID},
                                    frozenset({"runId"}),
                                    closed=False,
                                ),
                                "job": Obj(
                                    f"{_OL}.ParentJobFacet",
                                    {"namespace": TEXT, "name": TEXT},
                                    _OPEN,
                                    closed=False,
                                ),
                            },
                            frozenset({"job"}),
                        ),
                        "errorMessage": _facet(
                            f"{_OL}.ErrorMessageFacet",
                            {"message": TEXT, "programmingLanguage": TEXT, "stackTrace": TEXT},
                            frozenset({"message"}),
                        ),
                        "processing_engine": _facet(
                            f"{_OL}.ProcessingEngineFacet",
                            {"name": TEXT, "version": TEXT, "openlineageAdapterVersion": TEXT},
                        ),
                    },
                    closed=False,
                ),
            },
            frozenset({"runId"}),
            closed=False,
        ),
        "job": Obj(
            f"{_OL}.OpenLineageJob",
            {
                "namespace": TEXT,
                "name": TEXT,
                "facets": Obj(
                    f"{_OL}.JobFacets",
                    {"sql": _facet(f"{_OL}.SqlJobFacet", {"query": TEXT}, frozenset({"query"}))},
                    closed=False,
                ),
            },
            _OPEN,
            closed=False,
        ),
        "inputs": Arr(_dataset(f"{_OL}.OpenLineageInputDataset", "inputFacets", AnyObject())),
        "outputs": Arr(
            _dataset(
                f"{_OL}.OpenLineageOutputDataset",
                "outputFacets",
                Obj(
                    f"{_OL}.OutputDatasetFacets",
                    {"columnLineage": _COLUMN_LINEAGE_FACET},
                    closed=False,
                ),
            )
        ),
    },
    frozenset({"eventTime", "producer", "schemaURL", "run", "job"}),
)
OPENLINEAGE_BATCH = Obj(
    f"{_OL}.OpenLineageBatchRequest",
    {"events": Arr(OPENLINEAGE_RUN_EVENT, min_items=1)},
    frozenset({"events"}),
)
