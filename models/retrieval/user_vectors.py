"""Pretrained user-id vectors for the query tower (DSSM fine-tuned from pretrained embeddings).

`RetrievalConfig.embeddings.pretrained_users` picks the source:
- a file keyed by user id, in the item file's format (`id<TAB>v1 v2 ...`, see
  `item2vec.load_pretrained`): malformed rows and wrong dimensions fail naming the line;
- MEAN_OF_ITEMS: a user's vector is the mean of the pretrained item vectors
  (`embeddings.pretrained`) of the distinct items of the user's positive
  training events (label 1 in the Trainer's train split: sampled ranker negatives
  are not interactions, and eval events are never read).
The modes are the items' (`pretrained_mode`): "init" initialises the user id table
(and `freeze_steps` keeps it frozen first), "input" feeds the vectors through a
fixed table as an extra query-tower input. Users the source does not cover keep a
random row (uniform in [-0.05, 0.05]); file ids the vocabulary lacks are counted
and reported.
"""

from __future__ import annotations

import numpy as np

from models.common import data
from models.retrieval import item2vec, updates
from models.retrieval.config import MEAN_OF_ITEMS
from models.retrieval.layers import ITEM, USER, FixedEmbedding
from schemas import features as F


def align(vectors: dict, vocabulary, num_rows: int, seed: int = 0) -> tuple:
    """Vectors aligned with a vocabulary, and what was and was not found.

    Args:
        vectors: {id: vector [dim]}, all of one dimension.
        vocabulary: ids of rows 0..len-1.
        num_rows: table rows (>= len(vocabulary)); extra rows (OOV buckets) stay random.
        seed: seed of the random rows.

    Returns:
        (matrix float32 [num_rows, dim], covered bool [num_rows], report dict with
        "source_ids", "vocabulary", "covered", "unknown_ids" (source ids the
        vocabulary lacks) and "unknown_examples" (up to 5 of them)).
    """
    vocab = [v.decode() if isinstance(v, bytes) else v for v in vocabulary]
    dim = len(next(iter(vectors.values())))
    matrix, _ = item2vec.init_matrix(vectors, vocab, dim, seed, num_rows=num_rows)
    covered = np.zeros(num_rows, bool)
    covered[: len(vocab)] = [v in vectors for v in vocab]
    unknown = sorted(set(vectors) - set(vocab))
    report = {
        "source_ids": len(vectors),
        "vocabulary": len(vocab),
        "covered": int(covered.sum()),
        "unknown_ids": len(unknown),
        "unknown_examples": unknown[:5],
    }
    return matrix, covered, report


def user_positive_items(batches, num_users: int, num_items: int) -> dict[int, set[int]]:
    """{user row: set of item rows} of the label-1 examples in transformed batches.

    Args:
        batches: iterable of transformed dicts with USER [B], ITEM [B], F.LABEL [B].
        num_users: user table rows; ids outside [0, num_users) are ignored.
        num_items: item table rows; likewise.
    """
    out: dict[int, set[int]] = {}
    for batch in batches:
        keep = np.reshape(np.asarray(batch[F.LABEL]), [-1]) == 1
        users = np.reshape(np.asarray(batch[USER]), [-1])[keep]
        items = np.reshape(np.asarray(batch[ITEM]), [-1])[keep]
        for u, i in zip(users.tolist(), items.tolist(), strict=True):
            if 0 <= u < num_users and 0 <= i < num_items:
                out.setdefault(u, set()).add(i)
    return out


def mean_of_items(user_items: dict, item_matrix, item_covered, num_rows: int, seed: int = 0):
    """Each user's mean pretrained item vector.

    Args:
        user_items: {user row: item rows} (`user_positive_items`).
        item_matrix: [V, d] pretrained item vectors aligned with the item vocabulary.
        item_covered: [V] bool, True where the row holds a pretrained vector (random
            rows of uncovered items are never averaged).
        num_rows: user table rows.
        seed: seed of the random rows of users without any covered item.

    Returns:
        (matrix float32 [num_rows, d], covered bool [num_rows]).
    """
    item_matrix = np.asarray(item_matrix, np.float32)
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, (num_rows, item_matrix.shape[1])).astype(np.float32)
    covered = np.zeros(num_rows, bool)
    for user, items in user_items.items():
        rows = sorted(i for i in items if item_covered[i])
        if rows and 0 <= user < num_rows:
            matrix[user] = item_matrix[rows].mean(axis=0)
            covered[user] = True
    return matrix, covered


def pretrained_tables(config, train_files, tft_output, vocab_sizes: dict) -> tuple:
    """(item matrix or None, user matrix or None, report) for build_model.

    The item matrix is `updates.pretrained_matrix`'s; the user matrix follows
    embeddings.pretrained_users (module docstring). The report (also printed) holds
    the user source's coverage and unknown ids.
    """
    vocabs = updates.read_vocabularies(tft_output)
    num_items, num_users = vocab_sizes[F.ITEM_ID], vocab_sizes[F.USER_ID]
    items = covered = None
    emb, seed = config.embeddings, config.training.seed
    if emb.pretrained:
        vectors, _ = updates.pretrained_vectors(config, train_files, tft_output, vocabs[F.ITEM_ID])
        items, covered, item_report = align(vectors, vocabs[F.ITEM_ID], num_items, seed)
        print(f"pretrained item vectors ({emb.pretrained}): {item_report}")
    source = emb.pretrained_users
    if not source:
        return items, None, {}
    if source == MEAN_OF_ITEMS:
        batches = data.make_dataset(train_files, tft_output, 1024, shuffle=False, num_epochs=1)
        user_items = user_positive_items(
            ({k: b[k].numpy() for k in (USER, ITEM, F.LABEL)} for b in batches),
            num_users,
            num_items,
        )
        users, user_covered = mean_of_items(user_items, items, covered, num_users, seed)
        report = {"source": source, "users_with_positives": len(user_items)}
        report.update(vocabulary=len(vocabs[F.USER_ID]), covered=int(user_covered.sum()))
    else:
        init = emb.pretrained_mode == "init"
        dim = config.tower.embedding_dim if init else None  # "init": the user table's width
        vectors = item2vec.load_pretrained(source, expected_dim=dim)
        users, _, report = align(vectors, vocabs[F.USER_ID], num_users, seed + 1)
        report = {"source": source, **report}
    print(f"pretrained user vectors: {report}")
    return items, users, report


def fixed_table(config, pretrained_users) -> FixedEmbedding | None:
    """The fixed [U, P] user table of "input" mode (None otherwise or without vectors)."""
    if pretrained_users is None or config.embeddings.pretrained_mode != "input":
        return None
    rows, dim = np.shape(pretrained_users)
    return FixedEmbedding(rows, dim, name="pretrained_users")


def load(model, table, pretrained_users) -> None:
    """Writes [U, P] vectors into `table` (the fixed table, or the user id table in
    "init" mode, which then joins model.frozen_variables if embeddings.freeze_steps)."""
    table.set_weights([np.asarray(pretrained_users, np.float32)])
    if not isinstance(table, FixedEmbedding) and model.config.embeddings.freeze_steps:
        model.frozen_variables = list(model.frozen_variables) + list(table.trainable_weights)
