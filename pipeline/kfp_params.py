"""Names and values of the compiled pipeline's runtime parameters, and KFP cron schedules.

No TFX import here: the `kfp submit|schedule|runs` commands use this module only.
Where each parameter goes inside the pipeline: pipeline/runtime.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

DATA_ROOT, TRAIN_ARGS, EVAL_ARGS = "data_root", "train_args", "eval_args"
RANKING_MIN_AUC, UPDATE_MODE = "ranking_min_auc", "update_mode"
RETRIEVAL_PREFIX = "retrieval_"  # + a BlessingConfig field, e.g. retrieval_min_hr_at_10
# Shorthands the CLI accepts: update=incremental, train_steps=500, eval_steps=100.
STEP_ALIASES = {"train_steps": TRAIN_ARGS, "eval_steps": EVAL_ARGS}
ALIASES = {"update": UPDATE_MODE, **STEP_ALIASES}
_CONVERTERS = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": lambda v: {"true": True, "false": False}[v.lower()],
}
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")


def steps_json(steps: int) -> str:
    """The JSON TrainArgs / EvalArgs value of a step count, e.g. '{"num_steps": 500}'."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    return json.dumps({"num_steps": int(steps)})


def input_types(job: Mapping) -> dict[str, str]:
    """{parameter name: parameterType} of a compiled PipelineJob dict (spec schema 2.1)."""
    root = job["pipelineSpec"]["root"]
    params = root.get("inputDefinitions", {}).get("parameters", {})
    return {name: spec.get("parameterType", "STRING") for name, spec in params.items()}


def _value(name: str, raw: str, ptype: str):
    if name in STEP_ALIASES.values() and raw.strip().isdigit():
        return steps_json(int(raw))
    try:
        return _CONVERTERS[ptype](raw)
    except (KeyError, ValueError) as e:
        raise ValueError(f"--param {name}={raw!r}: not a valid {ptype} value") from e


def parse_params(pairs: Iterable[str], types: Mapping[str, str]) -> dict:
    """`NAME=VALUE` strings -> {parameter: typed value}, checked against the compiled inputs.

    Aliases: update -> update_mode; train_steps=N / eval_steps=N -> train_args / eval_args
    '{"num_steps": N}' (train_args=N is read the same way).

    Raises:
        ValueError: a malformed pair, an unknown name (the message lists the known ones),
            or a value of the wrong type.
    """
    result = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE")
        key = ALIASES.get(name, name)
        if key not in types:
            known = ", ".join(sorted(types) + sorted(ALIASES))
            raise ValueError(f"--param {name}: unknown parameter; known: {known}")
        result[key] = _value(key, raw, types[key])
    return result


def kfp_cron(expression: str) -> str:
    """A cron expression in the 6-field form KFP uses (seconds first).

    "0 3 * * *" (standard 5 fields: minute hour day month weekday) becomes
    "0 0 3 * * *"; a 6-field expression is kept.

    Raises:
        ValueError: not 5 or 6 fields, or a field with characters cron does not use.
    """
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(
            f"--cron {expression!r}: expected 5 fields (minute hour day month weekday) "
            "or 6 (seconds first)"
        )
    for field in fields:
        if not _CRON_FIELD.match(field):
            raise ValueError(f"--cron {expression!r}: invalid field {field!r}")
    return " ".join(fields)
