"""Which pipeline an event's application run is: service, name, and what describes it.

By default the pipeline service is `openmetadata.pipeline_service_name` and the pipeline is
named after the application's job. The `openmetadata` job facet (this project's Spark plugin
passes the OpenMetadata agent's `spark.openmetadata.transport.pipelineServiceName`,
`pipelineName`, `pipelineDescription` and `pipelineSourceUrl` on in it) overrides them, so a
job moved from the agent keeps its pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._model import RunEvent
from ._names import build_fqn, entity_name

__all__ = ["PipelineSpec", "pipeline_spec"]


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    service: str
    name: str  # a valid entity name
    display_name: str
    description: str
    source_url: str = ""

    @property
    def fqn(self) -> str:
        return build_fqn(self.service, self.name)


def pipeline_spec(event: RunEvent, default_service: str) -> PipelineSpec:
    hints = dict(event.openmetadata)
    app = event.app
    display = hints.get("pipelineName") or app.name
    return PipelineSpec(
        service=entity_name(hints.get("pipelineServiceName") or default_service),
        name=entity_name(display),
        display_name=display,
        description=hints.get("pipelineDescription")
        or f"Spark application {app.namespace}/{app.name}",
        source_url=hints.get("pipelineSourceUrl", ""),
    )
