"""Warm start: initialise a new ranker from the last blessed one (fn_args.base_model).

Variables are matched by name (without the model's instance prefix). The id tables
(item, user, genre, gender, occupation), of any kind, follow their ids through the old
vocabularies (the base SavedModel carries Transform's vocabulary files as assets) and the
new ones, since ids move when Transform's vocabulary changes (models/common/remap.py:
full and mixed-dimension tables are remapped, a quotient-remainder table is copied only
when no id moved, else refused). Every other variable is copied when its shape matches
and skipped otherwise (e.g. after an architecture change). Optimizer state is not
carried over.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_transform as tft

from models.common.remap import (  # remap_rows: re-exported
    as_bytes,
    carry_table,
    read_vocab_file,
    remap_rows,  # noqa: F401
)
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


ID_TABLES = (F.ITEM_ID, F.USER_ID)  # what an incremental update trains


def _key(name: str) -> str:
    """A variable's name without the model prefix, e.g. 'item_emb/table/embeddings:0'."""
    return name.split("/", 1)[-1]


def warm_start(
    model: RankingModel, base_dir: str, tft_output: tft.TFTransformOutput, strict: bool = False
) -> dict:
    """Loads an exported ranker's weights into the built `model` where names and shapes allow.

    Args:
        model: a built RankingModel (models.ranking.model.build_model).
        base_dir: a SavedModel written by models.ranking.export.export_serving_model.
        tft_output: this run's Transform output (the new vocabularies).
        strict: raise remap.TableRefusedError for an id table that cannot follow its ids
            (incremental updates); otherwise it keeps its fresh initialisation and
            report["refused"] says why.

    Returns:
        {"loaded": [names], "remapped": {name: rows copied}, "skipped": [names],
        "refused": {table: why}} (and "fitted": {table: rows} for mixed-dimension tables).
    """
    loaded = tf.saved_model.load(base_dir)
    old = {_key(v.name): v.numpy() for v in loaded.model_variables}
    report = {"loaded": [], "remapped": {}, "skipped": [], "refused": {}}
    handled = set()
    for name, (vocab_file, oov) in VOCAB_TABLES.items():
        layer = model.tables.get(name)
        if layer is None:
            continue
        new = as_bytes(tft_output.vocabulary_by_name(vocab_file))
        vocabs = (read_vocab_file(os.path.join(base_dir, "assets", vocab_file)), new)
        handled |= carry_table(layer, old, _key, vocabs, oov, report, strict)
    for var in model.model_weights:
        key, value = _key(var.name), old.get(_key(var.name))
        if key in handled:
            continue
        if value is not None and value.shape == tuple(var.shape):
            var.assign(value)
            report["loaded"].append(key)
        else:
            report["skipped"].append(key)
    return report


def train_id_embeddings_only(model: RankingModel) -> list[str]:
    """Freezes every layer but the item and user id tables (the incremental update).

    Frozen layers also run in inference mode while training (RankingModel.score), so
    Dice's moving statistics stay as they were. Recompile afterwards
    (models.ranking.model.compile_ranker).

    Returns:
        The names of the variables left trainable.
    """
    train = {id(model.tables[name]) for name in ID_TABLES if name in model.tables}
    for layer in model.weighted_layers:  # every other layer, whatever the config adds
        layer.trainable = id(layer) in train
    return [_key(v.name) for v in model.trainable_variables]
