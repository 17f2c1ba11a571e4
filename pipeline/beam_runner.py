"""Runs the pipeline with TFX's BeamDagRunner.

Here the components' Beam stages use the DirectRunner in multi-processing mode
with 2 workers; any other Beam runner (Dataflow, Flink, Spark) is selected by
`beam_pipeline_args` alone, e.g. `--runner=DataflowRunner --project=...`.
"""

import dataclasses

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from pipeline.config import LOCAL_WORKERS, PipelineConfig, multiprocessing_beam_args
from pipeline.pipeline import create_pipeline

LOCAL_BEAM_ARGS = multiprocessing_beam_args(LOCAL_WORKERS)


def run(config: PipelineConfig, until: str | None = None) -> None:
    """Runs the pipeline; without beam_pipeline_args, on 2 local worker processes."""
    if not config.beam_pipeline_args:
        config = dataclasses.replace(config, beam_pipeline_args=LOCAL_BEAM_ARGS)
    BeamDagRunner().run(create_pipeline(config, until))
