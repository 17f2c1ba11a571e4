"""Runs the pipeline on this machine: TFX's LocalDagRunner with one worker, else
ParallelDagRunner (independent components at the same time in worker processes)."""

import dataclasses

from tfx import v1 as tfx

from pipeline.config import LOCAL_WORKERS, PipelineConfig, multiprocessing_beam_args
from pipeline.parallel_runner import ParallelDagRunner
from pipeline.pipeline import create_pipeline


def local_config(config: PipelineConfig, workers: int) -> PipelineConfig:
    """With N > 1 workers and no Beam args given, BehaviorSequenceGen runs on N Beam
    processes: it runs alone, so the other workers' cores would idle."""
    if workers > 1 and not config.beam_pipeline_args and not config.sequence_beam_args:
        return dataclasses.replace(config, sequence_beam_args=multiprocessing_beam_args(workers))
    return config


def run(config: PipelineConfig, until: str | None = None, workers: int = LOCAL_WORKERS) -> None:
    """Runs the components in dependency order; raises on the first failure.

    Args:
        config: the validated pipeline config.
        until: build only this component and what it needs.
        workers: 1 runs TFX's LocalDagRunner in this process, one component at a
            time; N > 1 runs up to N ready components at once (ParallelDagRunner),
            and BehaviorSequenceGen, which runs alone, on N Beam processes (unless
            Beam args were given).
    """
    pipeline = create_pipeline(local_config(config, workers), until)
    if workers == 1:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    else:
        ParallelDagRunner(workers).run(pipeline)
