"""Executors of BaselinePublisher and BaselineLoader (the logic is in record.py)."""

from __future__ import annotations

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import baseline_inputs as B
from components.baselines import record as R


def _single(input_dict, key):
    artifacts = input_dict.get(key) or []
    return artifacts[0] if len(artifacts) == 1 else None


def _previous(input_dict) -> tuple[dict | None, str]:
    """The previous record, and why there is none."""
    artifacts = input_dict.get("record") or input_dict.get("previous") or []
    if not artifacts:
        return None, "no baseline record yet (first run)"
    return R.read(artifacts[0].uri)


class PublisherExecutor(base_executor.BaseExecutor):
    """Writes the next record: this run's blessed models, the previous entries otherwise."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        previous, why = _previous(input_dict)
        if previous is None:
            logging.info("BaselinePublisher: %s", why)
        candidates = {}
        for family in R.FAMILIES:
            model = _single(input_dict, f"{family}_model")
            blessing = _single(input_dict, f"{family}_blessing")
            if model is not None and blessing is not None:
                candidates[family] = (model.uri, R.is_blessed(blessing.uri))
        result = R.next_record(previous, candidates)
        out = artifact_utils.get_single_instance(output_dict["record"])
        R.write(out.uri, result)
        for family in R.FAMILIES:
            entry = result.get(family)
            status = f"{entry['source']} {entry['model_uri']}" if entry else "none"
            out.set_string_custom_property(family, status)
            print(f"BaselinePublisher: {family} baseline for the next run: {status}")


class LoaderExecutor(base_executor.BaseExecutor):
    """Copies each family's recorded model into its output, when it is of that family."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        record, why = _previous(input_dict)
        for family in R.FAMILIES:
            out = artifact_utils.get_single_instance(output_dict[f"{family}_model"])
            status = self._load(record, why, family, out.uri)
            out.set_string_custom_property(B.STATUS_PROPERTY, status)
            logging.info("BaselineLoader: %s", status)
            print(f"BaselineLoader: {status}")

    @staticmethod
    def _load(record, why: str, family: str, target: str) -> str:
        if record is None:
            return f"no baseline: {why}"
        entry = record.get(family)
        uri = entry.get("model_uri") if isinstance(entry, dict) else None
        if not uri:
            return f"no baseline: no blessed {family} model yet"
        found = B.family_of(uri)
        if found != family:
            kind = f"a {found} model" if found else "no SavedModel"
            return f"no baseline: the record's {family} entry {uri} holds {kind}"
        files = R.copy_tree(uri, target)
        return f"{family} baseline: {uri} ({files} files)"
