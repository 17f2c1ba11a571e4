"""RetrievalTrainer executor: TFX's GenericExecutor, plus the mined file, the update
mode and a checked base model.

`update_mode` (a str exec property, a KFP RuntimeParameter when compiled) is moved
into `custom_config["retrieval"]["mode"]` before `run_fn` reads it (TFX cannot place
a RuntimeParameter inside a dict). `base_model` is kept only when it holds a
retrieval SavedModel (components/baseline_inputs.py): otherwise training starts
cold and the model says why. When the `hard_negatives` input holds a non-empty
`hard_negatives.tsv`, its path goes into
`fn_args.custom_config[CUSTOM_CONFIG_KEY]["mined_negatives_path"]` before
`run_fn` rebuilds its RetrievalConfig. No input, or an empty file, leaves the
custom config exactly as given (training is unchanged).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping

from absl import logging
from tfx.components.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components import baseline_inputs as B
from components import update_mode as U
from components.hard_negative_miner import mining
from models.retrieval.config import CUSTOM_CONFIG_KEY, RetrievalConfig, SampledSoftmax

HARD_NEGATIVES_KEY, UPDATE_MODE = "hard_negatives", U.UPDATE_MODE
MINED_PATH_FIELD = "mined_negatives_path"  # in RetrievalConfig.updates
_NO_MINED_LOSSES = (SampledSoftmax,)  # RetrievalConfig refuses a mined file with these


def with_mined_negatives(custom_config: dict | None, path: str | None) -> dict | None:
    """The custom config with `path` as the retrieval config's updates.mined_negatives_path.

    Args:
        custom_config: the Trainer's custom_config ({CUSTOM_CONFIG_KEY: {...}}), or None.
        path: the mined TSV, or None.

    Returns:
        `custom_config` itself when path is None, has no user line, or the loss cannot
        use explicit negatives; otherwise a copy whose retrieval config (written in
        the nested form) has the path set, replacing any path given in the config.
    """
    if not path:
        return custom_config
    if not mining.has_negatives(path):
        logging.info("RetrievalTrainer: %s holds no hard negatives: training unchanged", path)
        return custom_config
    config = RetrievalConfig.from_dict((custom_config or {}).get(CUSTOM_CONFIG_KEY) or {})
    if isinstance(config.loss, _NO_MINED_LOSSES):
        logging.warning(
            "RetrievalTrainer: loss=%r takes no explicit negatives; %s is not used",
            config.loss.NAME,
            path,
        )
        return custom_config
    previous = config.updates.mined_negatives_path
    if previous and previous != path:
        logging.warning("RetrievalTrainer: %s replaces %s=%s", path, MINED_PATH_FIELD, previous)
    config = config.with_overrides({"updates": {MINED_PATH_FIELD: path}})
    result = copy.deepcopy(dict(custom_config or {}))
    result[CUSTOM_CONFIG_KEY] = config.to_dict()
    logging.info("RetrievalTrainer: training with hard negatives from %s", path)
    return result


def mined_file(input_dict) -> str | None:
    """The path of the `hard_negatives` input's TSV, or None without that input."""
    artifacts = input_dict.get(HARD_NEGATIVES_KEY) or []
    if len(artifacts) > 1:
        raise ValueError(f"{HARD_NEGATIVES_KEY}: expected one artifact, got {len(artifacts)}")
    return os.path.join(artifacts[0].uri, mining.TSV_FILE) if artifacts else None


def with_update_mode(exec_properties: Mapping) -> dict:
    """A copy of the exec properties with UPDATE_MODE moved into the retrieval config's
    updates.mode (custom_config["retrieval"], rewritten in the nested form)."""
    props = U.with_update_mode(exec_properties, CUSTOM_CONFIG_KEY)
    if exec_properties.get(UPDATE_MODE) is None:
        return props
    custom = json.loads(props[U.CUSTOM_CONFIG])
    custom[CUSTOM_CONFIG_KEY] = RetrievalConfig.from_dict(custom[CUSTOM_CONFIG_KEY]).to_dict()
    return {**props, U.CUSTOM_CONFIG: json.dumps(custom, sort_keys=True)}


class Executor(B.BaselineInputsMixin, trainer_executor.GenericExecutor):
    """GenericExecutor with the update mode, mined hard negatives and a checked base model."""

    BASELINE_FAMILIES = {"base_model": B.RETRIEVAL}

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        return super().Do(input_dict, output_dict, with_update_mode(exec_properties))

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.custom_config = with_mined_negatives(fn_args.custom_config, mined_file(input_dict))
        return fn_args


class VertexExecutor(vertex_executor.GenericExecutor):
    """Runs `Executor` as a Vertex AI CustomJob (TFX's google_cloud_ai_platform Trainer
    extension); custom_config carries the job (pipeline/wiring.py)."""

    def _GetExecutorClass(self):  # noqa: N802 (TFX API)
        return Executor
