"""Runs the pipeline on this machine: TFX's LocalDagRunner with one worker, else
ParallelDagRunner (independent components at the same time in worker processes)."""

from tfx import v1 as tfx

from pipeline.config import LOCAL_WORKERS, PipelineConfig
from pipeline.parallel_runner import ParallelDagRunner
from pipeline.pipeline import create_pipeline


def run(config: PipelineConfig, until: str | None = None, workers: int = LOCAL_WORKERS) -> None:
    """Runs the components in dependency order; raises on the first failure.

    Args:
        config: the validated pipeline config.
        until: build only this component and what it needs.
        workers: 1 runs TFX's LocalDagRunner in this process, one component at a
            time; N > 1 runs up to N ready components at once (ParallelDagRunner).
    """
    pipeline = create_pipeline(config, until)
    if workers == 1:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    else:
        ParallelDagRunner(workers).run(pipeline)
