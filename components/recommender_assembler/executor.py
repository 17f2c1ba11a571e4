"""RecommenderAssembler executor: reads the inputs, assembles, canaries, blesses."""

from __future__ import annotations

import json
import os

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.recommender_assembler.assemble import AssemblyConfig, assemble
from models.common.examples import CATALOG_SPLIT, load_eval_data, read_columns, split_pattern
from schemas import features as F

REPORT_FILE = "assembly.json"  # in the model artifact: what summary and showcase read
CANARY_FILE = "canary.json"  # the same report, in the blessing artifact
BLESSED_KEY = "blessed"
_CATALOG_COLUMNS = (F.ITEM_ID, F.TITLE, F.PRIMARY_GENRE, F.YEAR, F.ITEM_COUNT)


def read_catalog(catalog_artifact) -> dict:
    """Catalog columns item_id, title, genre (str), year and training count (int): lists [V]."""
    pattern = split_pattern(catalog_artifact, CATALOG_SPLIT)
    columns = read_columns(pattern, F.CATALOG_FEATURES, _CATALOG_COLUMNS)
    text = lambda v: v.decode() if isinstance(v, bytes) else v
    return {k: [text(v) for v in values] for k, values in columns.items()}


def negative_correction(examples_artifact, weight: float):
    """The final score's log q(item) term for a ranker trained on `examples_artifact`.

    The artifact's custom properties say how BehaviorSequenceGen drew the ranker's
    negatives. None (no term) when the weight is 0, the ranker had no sampled negatives
    (ratio 0), or the artifact predates the properties (logged).
    """
    from models.serving.export import negative_correction as correction

    if weight == 0.0:
        return None
    props = (F.NEGATIVE_POWER_PROPERTY, F.NEGATIVE_RATIO_PROPERTY)
    if not all(examples_artifact.has_custom_property(p) for p in props):
        logging.warning(
            "RecommenderAssembler: the examples artifact %s records no %s; the final score "
            "gets no log q term (re-run BehaviorSequenceGen to add it)",
            examples_artifact.uri,
            " / ".join(props),
        )
        return None
    power = examples_artifact.get_float_custom_property(F.NEGATIVE_POWER_PROPERTY)
    ratio = examples_artifact.get_int_custom_property(F.NEGATIVE_RATIO_PROPERTY)
    return correction(weight, power, ratio, "examples artifact")


def config_from_json(text: str) -> AssemblyConfig:
    values = json.loads(text)
    values["variants"] = tuple(values["variants"])
    return AssemblyConfig(**values)


class Executor(base_executor.BaseExecutor):
    """Exports the combined model's variants and blesses them when every canary passes."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        from models.search import index as index_lib

        config = config_from_json(exec_properties["config"])
        single = artifact_utils.get_single_instance
        retrieval, ranking = (
            single(input_dict["retrieval_model"]),
            single(input_dict["ranking_model"]),
        )
        index_artifact = single(input_dict["index"])
        catalog_artifact = single(input_dict["catalog"])
        examples = single(input_dict["examples"])
        queries = load_eval_data(examples, catalog_artifact, "eval", "")
        model = single(output_dict["model"])
        info = {
            "retrieval_model": retrieval.uri,
            "ranking_model": ranking.uri,
            "index": index_artifact.uri,
            "catalog": catalog_artifact.uri,
        }
        report = assemble(
            path_utils.serving_model_path(retrieval.uri),
            path_utils.serving_model_path(ranking.uri),
            index_lib.load_index(index_artifact.uri),
            read_catalog(catalog_artifact),
            queries.queries,
            model.uri,
            config,
            info,
            negative_correction(examples, config.log_q_weight),
        )
        with fileio.open(os.path.join(model.uri, REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2)
        blessing = single(output_dict["blessing"])
        with fileio.open(os.path.join(blessing.uri, CANARY_FILE), "w") as f:
            json.dump(report, f, indent=2)
        marker = "INFRA_BLESSED" if report["passed"] else "INFRA_NOT_BLESSED"
        with fileio.open(os.path.join(blessing.uri, marker), "w") as f:
            f.write("")
        blessing.set_int_custom_property(BLESSED_KEY, int(report["passed"]))
        for variant, verdict in report["variants"].items():
            model.set_float_custom_property(f"canary_p50_ms_{variant}", verdict.get("p50_ms", -1))
        logging.info("RecommenderAssembler: canary passed=%s", report["passed"])
