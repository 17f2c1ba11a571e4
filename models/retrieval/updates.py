"""State brought into a training run from outside: warm start, incremental updates,
pretrained item vectors and hard negatives mined with the last blessed model.

- `warm_start`: copies the weights of a previously exported model (its
  serving_model_dir, which is fn_args.base_model: the retrieval baseline) into a
  freshly built one. Variables are matched by name; the item and user id tables,
  of any kind, and the genre, gender and occupation tables follow their ids through
  the old and new vocabularies (ids move when Transform's vocabulary changes;
  models/common/remap.py), every other variable is copied when its shape matches
  and skipped otherwise.
- `train_id_embeddings_only`: the "incremental" update: everything but the item
  and user id embeddings is frozen.
- `pretrained_matrix`: item2vec on the training data, or a user file, aligned
  with the item vocabulary.
- `load_mined_negatives`: reads `user_id<TAB>item_id item_id ...` lines.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common import data
from models.common.remap import (  # remap_rows: re-exported
    as_bytes,
    carry_table,
    read_vocab_file,
    remap_rows,  # noqa: F401
)
from models.retrieval import item2vec
from models.retrieval.config import ITEM2VEC, RetrievalConfig
from models.retrieval.layers import GENDER, HISTORY, ITEM, OCCUPATION
from schemas import features as F

VOCAB_FILE = "id_vocabularies.json"  # in <serving_model_dir>/assets.extra/, written by export


def _id_tables(model) -> dict:
    """{feature: id-embedding layer (full, QR or mixed)} of the item and user tables."""
    layers = {
        F.ITEM_ID: model.query_tower.item_embedding,
        F.USER_ID: model.query_tower.user_embedding,
    }
    return {k: v for k, v in layers.items() if v is not None}


def _category_tables(model) -> dict:
    """{Transform vocabulary file: table} of the genre, gender and occupation tables."""
    return {
        F.GENRE_VOCAB: model.candidate_tower.genre_embedding,
        F.GENDER_VOCAB: model.query_tower.categoricals[GENDER],
        F.OCCUPATION_VOCAB: model.query_tower.categoricals[OCCUPATION],
    }


def read_vocabularies(tft_output: tft.TFTransformOutput) -> dict[str, list[str]]:
    """{F.ITEM_ID: [...], F.USER_ID: [...]}: the ids of the tables' first rows."""
    names = {F.ITEM_ID: F.ITEM_VOCAB, F.USER_ID: F.USER_VOCAB}
    return {
        k: [v.decode() if isinstance(v, bytes) else v for v in tft_output.vocabulary_by_name(n)]
        for k, n in names.items()
    }


def warm_start(
    model, base_model_dir: str, tft_output: tft.TFTransformOutput, strict: bool = False
) -> dict:
    """Loads an exported model's weights into `model` where names and shapes allow.

    Args:
        model: a built RetrievalModel.
        base_model_dir: a SavedModel written by `export.export_serving_model`.
        tft_output: this run's Transform output (for the new vocabularies).
        strict: raise remap.TableRefusedError for an id table that cannot follow its ids
            (incremental updates); otherwise it keeps its fresh initialisation and
            report["refused"] says why.

    Returns:
        {"loaded": [...], "remapped": {name: rows}, "skipped": [...], "refused": {table:
        why}} variable names (and "fitted": {table: rows} for mixed-dimension tables).
    """
    loaded = tf.saved_model.load(base_model_dir)
    old = {v.name: v.numpy() for v in loaded.model_variables}
    vocab_path = os.path.join(base_model_dir, "assets.extra", VOCAB_FILE)
    old_vocabs = (
        json.loads(tf.io.gfile.GFile(vocab_path).read()) if tf.io.gfile.exists(vocab_path) else {}
    )
    new_vocabs = read_vocabularies(tft_output)
    oov = {F.ITEM_ID: F.ITEM_OOV_BUCKETS, F.USER_ID: F.USER_OOV_BUCKETS}
    report = {"loaded": [], "remapped": {}, "skipped": [], "refused": {}}
    handled = set()
    for key, layer in _id_tables(model).items():
        vocabs = (old_vocabs.get(key), new_vocabs[key])
        handled |= carry_table(layer, old, str, vocabs, oov[key], report, strict)
    for vocab_file, layer in _category_tables(model).items():  # their vocabularies move too
        old_vocab = read_vocab_file(os.path.join(base_model_dir, "assets", vocab_file))
        vocabs = (old_vocab, as_bytes(tft_output.vocabulary_by_name(vocab_file)))
        handled |= carry_table(layer, old, str, vocabs, F.CATEGORY_OOV_BUCKETS, report, strict)
    for var in model.weights:
        value = old.get(var.name)
        if var.name in handled:
            continue
        if value is not None and tuple(value.shape) == tuple(var.shape):
            var.assign(value)
            report["loaded"].append(var.name)
        else:
            report["skipped"].append(var.name)
    return report


def train_id_embeddings_only(model) -> list[str]:
    """Freezes every layer except the item and user id embeddings; returns the trainable names.

    Recompile the model afterwards (`model.compile_model`).
    """
    id_layers = [model.query_tower.item_embedding, model.query_tower.user_embedding]
    keep = {id(x) for layer in id_layers for x in [layer, *layer.submodules]}
    for tower in (model.query_tower, model.candidate_tower):
        for layer in tower.submodules:
            if id(layer) in keep or not hasattr(layer, "trainable"):
                continue
            if not any(id(x) in keep for x in layer.submodules):
                layer.trainable = False
    return [v.name for v in model.trainable_variables]


def item2vec_sentences(dataset, item_vocab, window: int) -> list[list[str]]:
    """Skip-gram pairs from transformed examples: [history item, positive item].

    The Trainer only sees transformed examples (no raw timestamps), but each one
    carries the user's chronological history before the event. Pairing every
    positive target with its `window` most recent history items enumerates each
    (target, context) pair of the user's sequence exactly once, so item2vec runs
    with window=1 on these two-item sentences.

    Args:
        dataset: finite dataset of transformed batches.
        item_vocab: item id strings of rows 0..len-1.
        window: history items paired with each target.
    """
    sentences, n = [], len(item_vocab)
    for batch in dataset:
        positive = batch[F.LABEL].numpy() == 1
        targets = batch[ITEM].numpy()[positive]
        history = batch[HISTORY].numpy()[positive]
        mask = batch[F.HISTORY_MASK].numpy()[positive] > 0
        for target, row, keep in zip(targets, history, mask, strict=True):
            context = [h for h in row[keep] if 0 <= h < n][-window:]
            if 0 <= target < n:
                sentences += [[item_vocab[h], item_vocab[target]] for h in context]
    return sentences


def pretrained_matrix(
    config: RetrievalConfig, train_files, tft_output: tft.TFTransformOutput, num_rows: int
) -> np.ndarray | None:
    """[num_rows, dim] pretrained item vectors aligned with the item vocabulary, or None.

    "item2vec" trains skip-gram vectors on the train files, raw or transformed (see
    `item2vec_sentences`); any other value is a `load_pretrained` file.
    """
    if not config.embeddings.pretrained:
        return None
    vocab = read_vocabularies(tft_output)[F.ITEM_ID]
    vectors, dim = pretrained_vectors(config, train_files, tft_output, vocab)
    seed, source = config.training.seed, config.embeddings.pretrained
    matrix, covered = item2vec.init_matrix(vectors, vocab, dim, seed, num_rows=num_rows)
    print(f"pretrained item vectors ({source}): {covered}/{len(vocab)} items covered")
    return matrix


def pretrained_vectors(config: RetrievalConfig, train_files, tft_output, vocab) -> tuple:
    """({item id: vector}, dim) of embeddings.pretrained: item2vec, or a file ("init" mode:
    every vector must have embedding_dim; an error names the first line that has not)."""
    emb = config.embeddings
    init = emb.pretrained_mode == "init"
    dim = config.tower.embedding_dim if init else emb.pretrained_dim
    if emb.pretrained == ITEM2VEC:
        batches = data.make_dataset(train_files, tft_output, 1024, shuffle=False, num_epochs=1)
        sentences = item2vec_sentences(batches, vocab, emb.item2vec_window)
        cfg = item2vec.Item2VecConfig(
            dim=dim, window=1, epochs=emb.item2vec_epochs, seed=config.training.seed
        )
        return item2vec.train_item2vec(sentences, cfg), dim
    vectors = item2vec.load_pretrained(emb.pretrained, expected_dim=dim if init else None)
    return vectors, len(next(iter(vectors.values())))


def load_mined_negatives(
    path: str, tft_output: tft.TFTransformOutput, max_per_user: int = 50
) -> np.ndarray:
    """Hard negatives per user id: [num user rows incl. OOV, P] item ids, -1 padded.

    File format: one user per line, `user_id<TAB>item_id item_id ...` (items
    separated by spaces or tabs); blank lines and `#` comments are skipped. Users
    and items unknown to this run's vocabularies are dropped.
    """
    vocabs = read_vocabularies(tft_output)
    users = {u: i for i, u in enumerate(vocabs[F.USER_ID])}
    items = {v: i for i, v in enumerate(vocabs[F.ITEM_ID])}
    lists: dict[int, list[int]] = {}
    with tf.io.gfile.GFile(path, "r") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            user, _, rest = line.rstrip("\r\n").partition("\t")
            if user in users:
                known = [items[v] for v in rest.split() if v in items]
                lists.setdefault(users[user], []).extend(known)
    width = max([1] + [min(len(v), max_per_user) for v in lists.values()])
    table = np.full((len(users) + F.USER_OOV_BUCKETS, width), -1, np.int64)
    for row, ids in lists.items():
        ids = list(dict.fromkeys(ids))[:max_per_user]
        table[row, : len(ids)] = ids
    return table
