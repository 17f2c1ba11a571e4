"""Warm start: initialise a new ranker from the last blessed one (fn_args.base_model).

Variables are matched by name (without the model's instance prefix). Full id tables
(item, user, genre, gender, occupation) are re-aligned row by row through the old
vocabularies (the base SavedModel carries Transform's vocabulary files as assets) and the
new ones, since ids move when Transform's vocabulary changes; their OOV rows map position by
position. Every other variable is copied when its shape matches and skipped otherwise (e.g.
after an architecture change). Optimizer state is not carried over.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_transform as tft

from models.common.embeddings import FullEmbedding
from models.common.remap import remap_rows
from models.ranking.model import RankingModel
from schemas import features as F

# Table -> (Transform vocabulary file, OOV buckets after it).
VOCAB_TABLES = {
    F.ITEM_ID: (F.ITEM_VOCAB, F.ITEM_OOV_BUCKETS),
    F.USER_ID: (F.USER_VOCAB, F.USER_OOV_BUCKETS),
    F.PRIMARY_GENRE: (F.GENRE_VOCAB, F.CATEGORY_OOV_BUCKETS),
    F.GENDER: (F.GENDER_VOCAB, F.CATEGORY_OOV_BUCKETS),
    F.OCCUPATION: (F.OCCUPATION_VOCAB, F.CATEGORY_OOV_BUCKETS),
}


def _key(name: str) -> str:
    """A variable's name without the model prefix, e.g. 'item_emb/table/embeddings:0'."""
    return name.split("/", 1)[-1]


def _read_vocab(path: str) -> list[bytes] | None:
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _vocab_tables(model: RankingModel, base_dir: str, tft_output) -> dict:
    """{variable key: (old vocab, new vocab, oov)} of the full id tables that can be remapped."""
    out = {}
    for name, (vocab_file, oov) in VOCAB_TABLES.items():
        layer = model.tables.get(name)
        old = _read_vocab(os.path.join(base_dir, "assets", vocab_file))
        if isinstance(layer, FullEmbedding) and old is not None:
            new = tft_output.vocabulary_by_name(vocab_file)
            new = [t if isinstance(t, bytes) else t.encode() for t in new]
            out[_key(layer.table.embeddings.name)] = (old, new, oov)
    return out


def warm_start(model: RankingModel, base_dir: str, tft_output: tft.TFTransformOutput) -> dict:
    """Loads an exported ranker's weights into the built `model` where names and shapes allow.

    Args:
        model: a built RankingModel (models.ranking.model.build_model).
        base_dir: a SavedModel written by models.ranking.export.export_serving_model.
        tft_output: this run's Transform output (the new vocabularies).

    Returns:
        {"loaded": [names], "remapped": {name: rows copied}, "skipped": [names]}.
    """
    loaded = tf.saved_model.load(base_dir)
    old = {_key(v.name): v.numpy() for v in loaded.model_variables}
    tables = _vocab_tables(model, base_dir, tft_output)
    report = {"loaded": [], "remapped": {}, "skipped": []}
    for var in model.model_weights:
        key, value = _key(var.name), old.get(_key(var.name))
        if value is None:
            report["skipped"].append(key)
        elif key in tables and value.shape[1:] == tuple(var.shape[1:]):
            matrix = var.numpy()
            old_vocab, new_vocab, oov = tables[key]
            report["remapped"][key] = remap_rows(value, old_vocab, matrix, new_vocab, oov)
            var.assign(matrix)
        elif value.shape == tuple(var.shape):
            var.assign(value)
            report["loaded"].append(key)
        else:
            report["skipped"].append(key)
    return report
