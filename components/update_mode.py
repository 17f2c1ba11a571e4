"""The `update_mode` exec property of both Trainers (full | incremental).

TFX's KFP v2 compiler cannot place a RuntimeParameter inside a dict, so the mode is a
plain str exec property (the `update_mode` runtime parameter on KFP) that the trainer's
executor moves into `custom_config[<family key>]["mode"]` before `run_fn` reads it
(RetrievalConfig reads that flat "mode" as `updates.mode`; flat keys win over nested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

UPDATE_MODE, CUSTOM_CONFIG = "update_mode", "custom_config"
MODES = ("full", "incremental")


def with_update_mode(exec_properties: Mapping, config_key: str) -> dict:
    """A copy of the exec properties with UPDATE_MODE moved into custom_config[config_key].

    Args:
        exec_properties: the Trainer's exec properties.
        config_key: the model family's custom_config key ("retrieval", "ranking").

    Raises:
        ValueError: the mode is not one of MODES, or custom_config is not a JSON object.
    """
    props = dict(exec_properties)
    mode = props.pop(UPDATE_MODE, None)
    if mode is None:
        return props
    if mode not in MODES:
        raise ValueError(f"runtime parameter {UPDATE_MODE}={mode!r}: must be one of {MODES}")
    custom = json.loads(props.get(CUSTOM_CONFIG) or "{}")
    if not isinstance(custom, dict):
        raise ValueError(f"{CUSTOM_CONFIG} must be a JSON object, got {custom!r}")
    custom.setdefault(config_key, {})["mode"] = mode
    props[CUSTOM_CONFIG] = json.dumps(custom, sort_keys=True)
    return props
