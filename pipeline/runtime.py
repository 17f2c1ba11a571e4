"""RuntimeParameters of the compiled Kubeflow V2 / Vertex AI pipeline, and image paths.

TFX 1.16's Kubeflow V2 compiler turns a `RuntimeParameter` into a pipeline input
only where a component's exec property holds it directly (step_builder.py). A
parameter nested in a dict (`custom_config`) or inside a proto (TFMA's
`eval_config`) is not resolved. `parameters(config)` makes them; create_pipeline
(`parameters=`, placed by pipeline/wiring.py) puts each where it works:

- data_root (str): every ExampleGen's `input_base`.
- train_args, eval_args (str, JSON): both Trainers' `train_args` / `eval_args`. The
  CLI turns `train_steps=N` / `eval_steps=N` into '{"num_steps": N}'.
- retrieval_min_hr_at_10, ..., retrieval_max_regression (float): RetrievalEvaluator's
  own float exec properties.
- ranking_min_auc (float): RankingEvaluator's exec property; its executor
  (components/ranking_evaluator) writes it into eval_config's AUC floor.
- update_mode (str, full|incremental): both Trainers' exec property; their executors
  write it into `custom_config["retrieval"|"ranking"]["mode"]` (components/update_mode.py).

Local and Beam runs build the same components with the config's plain values.
`prepare` only checks the config and makes every path inside the local checkout
(e.g. the schema file given to ImportSchemaGen) a path under the image's code root,
refusing any other local absolute path: the cluster cannot read this machine's disk.
"""

from __future__ import annotations

import dataclasses
import os

from tfx.orchestration import data_types

from pipeline import kfp_params as P
from pipeline.config import KubeflowConfig, PipelineConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT, TRAIN_ARGS, EVAL_ARGS = P.DATA_ROOT, P.TRAIN_ARGS, P.EVAL_ARGS
RANKING_MIN_AUC, UPDATE_MODE = P.RANKING_MIN_AUC, P.UPDATE_MODE
RETRIEVAL_PREFIX = P.RETRIEVAL_PREFIX
steps_json = P.steps_json


def parameters(config: PipelineConfig) -> dict[str, data_types.RuntimeParameter]:
    """Every RuntimeParameter of the compiled pipeline, with the config's values as defaults."""
    p = {
        DATA_ROOT: data_types.RuntimeParameter(DATA_ROOT, str, config.data.path),
        TRAIN_ARGS: data_types.RuntimeParameter(TRAIN_ARGS, str, steps_json(config.train_steps)),
        EVAL_ARGS: data_types.RuntimeParameter(EVAL_ARGS, str, steps_json(0)),
        RANKING_MIN_AUC: data_types.RuntimeParameter(
            RANKING_MIN_AUC, float, float(config.ranking_min_auc)
        ),
        UPDATE_MODE: data_types.RuntimeParameter(UPDATE_MODE, str, config.retrieval.updates.mode),
    }
    for name, value in dataclasses.asdict(config.retrieval_blessing).items():
        key = RETRIEVAL_PREFIX + name
        p[key] = data_types.RuntimeParameter(key, float, float(value))
    return p


def image_path(value: str, code_root: str, where: str) -> str:
    """A path inside the checkout -> the same path under `code_root`; other values unchanged.

    Raises:
        ValueError: `value` is another local absolute path (the cluster cannot read it).
    """
    if not value.startswith("/") or value == code_root or value.startswith(code_root + "/"):
        return value
    if value == REPO_ROOT or value.startswith(REPO_ROOT + os.sep):
        return code_root + "/" + os.path.relpath(value, REPO_ROOT).replace(os.sep, "/")
    if os.path.exists(value):
        raise ValueError(
            f"{where} is the local path {value!r}, which the cluster cannot read: "
            "put it in the image (under the repository) or on a URI such as gs://"
        )
    return value


def check_uri(value: str, field: str) -> None:
    """Raises ValueError naming `field` unless `value` is a URI such as gs://bucket/path."""
    if "://" not in value:
        raise ValueError(f"{field} {value!r} must be a URI the cluster reads (gs://, s3://, ...)")


def prepare(pipeline, config: PipelineConfig, kubeflow: KubeflowConfig) -> None:
    """Checks the config for a cluster and maps checkout paths to the image's code root.

    Args:
        pipeline: `create_pipeline(config, parameters=parameters(config))`; its local
            paths are changed in place.
        config: the config it was built from.
        kubeflow: the image's code root.

    A code root equal to this checkout (`--code-root $PWD`) compiles for
    pipeline/kfp_local.py, which runs the tasks here: local roots are allowed then.

    Raises:
        ValueError: a local root or metadata path, or a local path outside the checkout.
    """
    if kubeflow.code_root != REPO_ROOT:  # the local harness (pipeline/kfp_local) runs this checkout
        check_uri(config.pipeline_root, "pipeline_root")
        check_uri(config.data.path, "data.path (the data root)")
    if config.metadata_path:
        raise ValueError("metadata_path must be empty: Kubeflow and Vertex AI keep their own MLMD")
    for component in pipeline.components:
        for name, value in list(component.exec_properties.items()):
            if isinstance(value, str):
                where = f"{component.id}.{name}"
                component.exec_properties[name] = image_path(value, kubeflow.code_root, where)
