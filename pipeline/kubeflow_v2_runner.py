"""Compiles `create_pipeline(config)` to a KFP v2 / Vertex AI Pipelines IR (PipelineJob JSON).

The same JSON runs on Vertex AI (`aiplatform.PipelineJob(template_path=...)`) and,
through its `pipelineSpec`, on Kubeflow Pipelines 2.x (pipeline/kfp_cli.py). Every
executor runs `KubeflowConfig.image`; components reach their code by dotted path
inside that image (no module_file). RuntimeParameters: pipeline/runtime.py (placed by
create_pipeline).
TFX writes no timestamp into the IR: compiling twice gives identical bytes.
"""

from __future__ import annotations

import json
import os
import tempfile

from tfx import v1 as tfx

from pipeline import runtime
from pipeline.config import KubeflowConfig, PipelineConfig
from pipeline.pipeline import create_pipeline


def set_defaults(job: dict, defaults: dict) -> None:
    """Records each runtime parameter's default in the pipeline's own input definitions.

    TFX puts the values only in `runtimeConfig.parameterValues`, which Vertex AI reads
    but a KFP server ignores (it takes the `pipelineSpec` alone): there every parameter
    would be required. `defaultValue` + `isOptional` make them optional everywhere.
    """
    inputs = job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    for name, value in defaults.items():
        inputs[name].update(defaultValue=value, isOptional=True)


def compile_job(config: PipelineConfig, kubeflow: KubeflowConfig) -> dict:
    """The PipelineJob dict (displayName, labels, pipelineSpec, runtimeConfig)."""
    params = runtime.parameters(config)
    pipeline = create_pipeline(config, parameters=params)
    runtime.prepare(pipeline, config, kubeflow)
    defaults = {name: p.default for name, p in params.items()}
    runner_config = tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
        default_image=kubeflow.image,
        # PipelineSpec schema 2.1: typed parameters (`parameterType`), as KFP 2.x and
        # Vertex AI read them.
        use_pipeline_spec_2_1=True,
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(config=runner_config)
    job = runner.run(pipeline, parameter_values=defaults, write_out=False)
    set_defaults(job, defaults)
    return job


def write_json(job: dict, path: str) -> None:
    """Writes `job` to `path` atomically (a temporary file in the same directory, renamed)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(job, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def compile_pipeline(config: PipelineConfig, kubeflow: KubeflowConfig) -> dict:
    """Compiles and writes `kubeflow.output`; returns the PipelineJob dict."""
    job = compile_job(config, kubeflow)
    write_json(job, kubeflow.output)
    return job
