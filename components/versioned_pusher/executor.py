"""VersionedPusher executor: checks the gates, pushes every variant, prunes, records."""

from __future__ import annotations

import json
import os

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.versioned_pusher import push
from schemas.serving import PORTABLE

BLESSED_KEY = "blessed"  # the custom property TFX's Evaluator and InfraValidator set
GATE_KEYS = ("ranking_blessing", "retrieval_blessing", "index_blessing", "canary_blessing")


def blessed(artifacts) -> bool | None:
    """The verdict of a blessing channel's artifact (None when there is none)."""
    if not artifacts:
        return None
    artifact = artifacts[0]
    if not artifact.has_custom_property(BLESSED_KEY):
        return None
    return bool(artifact.get_int_custom_property(BLESSED_KEY))


def variant_dirs(model_uri: str) -> dict[str, str]:
    """variant -> SavedModel directory of the combined Model artifact."""
    found = {}
    for name in sorted(fileio.listdir(model_uri)):
        name = name.rstrip("/")
        path = os.path.join(model_uri, name)
        if fileio.exists(os.path.join(path, push.SAVED_MODEL)):
            found[name] = path
    if PORTABLE not in found:
        raise ValueError(f"{model_uri} has no {PORTABLE!r} SavedModel (found {sorted(found)})")
    return found


def model_base(serving_dir: str, model_name: str, variant: str) -> str:
    name = model_name if variant == PORTABLE else f"{model_name}_{variant}"
    return os.path.join(serving_dir, name)


def _prune(target: str, keep: int) -> tuple[list[int], list[str]]:
    """push.prune after a commit: a failure is recorded, not raised (the version is in)."""
    try:
        return push.prune(target, keep)
    except Exception as exc:  # noqa: BLE001 - the push itself succeeded
        logging.error("VersionedPusher: pruning %s failed: %s", target, exc)
        return [], [f"prune failed: {type(exc).__name__}: {exc}"]


class Executor(base_executor.BaseExecutor):
    """Pushes only when every gate blessed the model; records the decision either way."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        serving_dir, name = exec_properties["serving_dir"], exec_properties["model_name"]
        keep = int(exec_properties.get("keep_versions") or 5)
        reasons = push.refusals({g: blessed(input_dict.get(g)) for g in GATE_KEYS})
        record = {"model_uri": model.uri, "pushed": False, "refused_because": reasons}
        if not reasons:
            sources = variant_dirs(model.uri)
            base = model_base(serving_dir, name, PORTABLE)
            version = push.next_version(base)
            record.update(pushed=True, version=version, destinations={}, pruned={}, prune_issues={})
            targets = {v: model_base(serving_dir, name, v) for v in sources}
            staged = {}
            try:  # copy every variant first, then rename them all into place
                for variant, src in sources.items():
                    staged[variant] = push.stage(src, targets[variant], version)
            except BaseException:
                for tmp in staged.values():
                    push.discard(tmp)
                raise
            for variant, tmp in staged.items():
                record["destinations"][variant] = push.commit(tmp, targets[variant], version)
                record["pruned"][variant], issues = _prune(targets[variant], keep)
                if issues:
                    record["prune_issues"][variant] = issues
            pushed.set_int_custom_property("pushed_version", version)
            pushed.set_string_custom_property(
                "pushed_destination", record["destinations"][PORTABLE]
            )
            logging.info(
                "VersionedPusher: pushed version %s to %s", version, record["destinations"]
            )
        else:
            logging.warning("VersionedPusher: not pushed: %s", "; ".join(reasons))
        pushed.set_int_custom_property("pushed", int(record["pushed"]))
        with fileio.open(os.path.join(pushed.uri, "push.json"), "w") as f:
            json.dump(record, f, indent=2)
        # TFX's Pusher convention, read by tools that look for it.
        marker = "PUSHED" if record["pushed"] else "NOT_PUSHED"
        with fileio.open(os.path.join(pushed.uri, marker), "w") as f:
            f.write("")
