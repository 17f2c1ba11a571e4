"""RuntimeParameters of the compiled Kubeflow V2 / Vertex AI pipeline, and where each goes.

TFX 1.16's Kubeflow V2 compiler turns a `RuntimeParameter` into a pipeline input
only where a component's exec property holds it directly (step_builder.py). A
parameter nested in a dict (`custom_config`) or inside a proto (TFMA's
`eval_config`) is not resolved: it would be serialized as the parameter object
itself. So each parameter goes where it works:

- data_root (str): every FileBasedExampleGen's `input_base`, a str exec property.
- train_args, eval_args (str, JSON): both Trainers' `train_args` / `eval_args`; TFX's
  Trainer takes a JSON TrainArgs / EvalArgs RuntimeParameter. The CLI turns
  `train_steps=N` / `eval_steps=N` into '{"num_steps": N}'.
- retrieval_min_hr_at_10, ..., retrieval_max_regression (float): RetrievalEvaluator's
  own float exec properties.
- ranking_min_auc (float): an exec property added to the ranker's Evaluator; its
  executor (runtime_executors.EvaluatorExecutor, a subclass of TFX's) writes it into
  the AUC value threshold of `eval_config` before TFMA runs.
- update_mode (str, full|incremental): an exec property added to the retrieval
  Trainer; its executor (a runtime_executors.UpdateModeMixin subclass of the
  Trainer's own executor) writes it into `custom_config["retrieval"]["mode"]` before
  `run_fn` reads it.

`bind` is applied to the pipeline `create_pipeline(config)` returned, so local and
Beam runs build exactly the same components. It also makes every path inside the
local checkout (e.g. the schema file given to ImportSchemaGen) a path under the
image's code root, and refuses any other local absolute path: the cluster cannot
read this machine's disk.
"""

from __future__ import annotations

import dataclasses
import os

from tfx.components import Evaluator, FileBasedExampleGen, Trainer
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types

from components.retrieval_evaluator.component import RetrievalEvaluator
from pipeline import kfp_params as P
from pipeline import runtime_executors as X
from pipeline.config import KubeflowConfig, PipelineConfig
from pipeline.pipeline import RANKING_EVALUATOR, RETRIEVAL_TRAINER

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
        UPDATE_MODE: data_types.RuntimeParameter(UPDATE_MODE, str, config.retrieval.mode),
    }
    for name, value in dataclasses.asdict(config.retrieval_blessing).items():
        key = RETRIEVAL_PREFIX + name
        p[key] = data_types.RuntimeParameter(key, float, float(value))
    return p


def _set(component, name: str, value) -> None:
    """Sets an exec property, type-checked by the component spec when it declares it."""
    declared = component.spec.PARAMETERS.get(name)
    if declared is not None:
        declared.type_check(name, value)
    component.exec_properties[name] = value


def _swap_executor(component, executors: dict) -> None:
    """Runs executors[its executor class] (a subclass of it) instead of its executor."""
    old = component.executor_spec
    executor_class = executors.get(old.executor_class)
    if executor_class is None or not issubclass(executor_class, old.executor_class):
        raise TypeError(
            f"{component.id}: no runtime-parameter executor extends {old.executor_class}; "
            "add one in pipeline/runtime_executors.py"
        )
    new = type(old)(executor_class)
    if isinstance(old, executor_spec.BeamExecutorSpec):
        new.add_beam_pipeline_args(old.beam_pipeline_args)
    component.executor_spec = new


def _bind_component(component, params: dict) -> None:
    if isinstance(component, FileBasedExampleGen):
        _set(component, "input_base", params[DATA_ROOT])
    elif isinstance(component, Trainer):
        _set(component, TRAIN_ARGS, params[TRAIN_ARGS])
        _set(component, EVAL_ARGS, params[EVAL_ARGS])
        if component.id == RETRIEVAL_TRAINER:
            _set(component, UPDATE_MODE, params[UPDATE_MODE])
            _swap_executor(component, X.UPDATE_MODE_EXECUTORS)
    elif isinstance(component, Evaluator) and component.id == RANKING_EVALUATOR:
        _set(component, RANKING_MIN_AUC, params[RANKING_MIN_AUC])
        _swap_executor(component, {X.EvaluatorExecutor.__base__: X.EvaluatorExecutor})
    elif isinstance(component, RetrievalEvaluator):
        for key, param in params.items():
            if key.startswith(RETRIEVAL_PREFIX):
                _set(component, key[len(RETRIEVAL_PREFIX) :], param)


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


def bind(pipeline, config: PipelineConfig, kubeflow: KubeflowConfig) -> dict:
    """Puts the RuntimeParameters into `pipeline`'s components and image paths for local ones.

    Args:
        pipeline: `create_pipeline(config)`; changed in place.
        config: the config it was built from (the parameters' defaults).
        kubeflow: the image's code root.

    Returns:
        The RuntimeParameters by name.
    """
    check_uri(config.pipeline_root, "pipeline_root")
    check_uri(config.data.path, "data.path (the data root)")
    if config.metadata_path:
        raise ValueError("metadata_path must be empty: Kubeflow and Vertex AI keep their own MLMD")
    params = parameters(config)
    for component in pipeline.components:
        _bind_component(component, params)
        for name, value in list(component.exec_properties.items()):
            if isinstance(value, str):
                where = f"{component.id}.{name}"
                component.exec_properties[name] = image_path(value, kubeflow.code_root, where)
    return params
