"""ScannIndexBuilder executor: embeds the catalog and eval queries, builds, measures, blesses.

Data loading and embedding are `models/common/examples.py`'s (`load_eval_data`,
`embed`); parameters, building and searching are the search layer's (`models/search/`),
measuring is `evaluate`'s. This module only reads artifacts and writes them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.blessing import write_blessing
from components.scann_index_builder import evaluate
from models.common import examples as retrieval
from models.search import index as I
from models.search.params import IndexConfig
from schemas import features as F
from schemas.serving import CANDIDATE_SIGNATURE, QUERY_SIGNATURE


def embed_model(model_uri: str, data, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(items [N, D], queries [Q, D]) embedded by the model's two signatures."""
    path = path_utils.serving_model_path(model_uri)
    loaded = tf.saved_model.load(path)
    for name in (QUERY_SIGNATURE, CANDIDATE_SIGNATURE):
        if name not in loaded.signatures:
            raise ValueError(f"{path} has no {name!r} signature (has {sorted(loaded.signatures)})")
    items = retrieval.embed(loaded.signatures[CANDIDATE_SIGNATURE], data.candidates, batch_size)
    queries = np.zeros((0, items.shape[1]), np.float32)
    if len(data.targets):
        queries = retrieval.embed(loaded.signatures[QUERY_SIGNATURE], data.queries, batch_size)
    return items, queries


class Executor(base_executor.BaseExecutor):
    """Builds and measures the index, writes it, and blesses it on recall."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX API)
        config = IndexConfig.from_properties(exec_properties)
        batch_size = int(exec_properties.get("batch_size") or 256)
        data = retrieval.load_eval_data(
            artifact_utils.get_single_instance(input_dict["examples"]),
            artifact_utils.get_single_instance(input_dict["catalog"]),
            exec_properties.get("eval_split") or "eval",
            exclude_split="",
        )
        model = artifact_utils.get_single_instance(input_dict["model"])
        items, queries = embed_model(model.uri, data, batch_size)
        index = evaluate.build_and_measure(data.candidates[F.ITEM_ID], items, queries, config)
        index.metrics["model_uri"] = model.uri
        out = artifact_utils.get_single_instance(output_dict["index"])
        I.save_index(index, out.uri)
        out.set_int_custom_property("num_items", len(items))
        out.set_int_custom_property("exact", int(index.params.exact))
        out.set_float_custom_property("recall", index.metrics[f"recall@{index.metrics['k']}"])
        blessed = index.metrics["blessed"]
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        write_blessing(blessing, blessed, model, None)
        logging.info(
            "ScannIndexBuilder: %d items, exact=%s, blessed=%s: %s",
            len(items),
            index.params.exact,
            blessed,
            "; ".join(index.metrics["reasons"]),
        )
