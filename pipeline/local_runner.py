"""Runs the pipeline with TFX's LocalDagRunner (in-process, one component at a time)."""

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


def run(config: PipelineConfig, until: str | None = None) -> None:
    """Runs the components in topological order; raises on the first failure."""
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, until))
