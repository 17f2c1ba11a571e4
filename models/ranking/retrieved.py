"""Ranker negatives from the retrieval stage: the items the retriever returns for a user.

BehaviorSequenceGen draws the ranker's negatives from the catalog by popularity
(count ** power). At serving time the ranker only ever sees the retriever's top N, so a
ranker trained against popular items learns a distinction it is never asked to make.
With `RankingConfig.retrieved_negatives_path` set (a TSV of the items the retriever
returns per user, as the HardNegativeMiner writes it), each sampled negative
(F.EVENT == 0) of a user with a retrieved list is replaced, with probability
`retrieved_negative_share`, by an item drawn uniformly from that list. The candidate
item's other features (primary genre, normalised year) come with it, from a table that
the training split itself fills (an item never seen as a training candidate is never
swapped in). Logged events, positive or not, are never touched.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from schemas import features as F

T = F.transformed_name
ITEM, GENRE, YEAR = T(F.ITEM_ID), T(F.PRIMARY_GENRE), F.YEAR_NORMALIZED
TABLE_KEYS = (ITEM, GENRE, YEAR)  # what `candidate_table` reads of a batch


@dataclasses.dataclass(frozen=True)
class CandidateTable:
    """The candidate features of every transformed item index.

    Attributes:
        genre: [V] int64 transformed primary genre per item index.
        year: [V] float32 normalised year per item index.
        known: [V] bool, True where the item appeared as a training candidate.
    """

    genre: np.ndarray
    year: np.ndarray
    known: np.ndarray


def candidate_table(batches, n_items: int) -> CandidateTable:
    """The first-seen genre and year of each item index in `batches` (transformed features).

    Raises:
        ValueError: an item index outside [0, n_items).
    """
    genre = np.zeros(n_items, np.int64)
    year = np.zeros(n_items, np.float32)
    known = np.zeros(n_items, bool)
    for batch in batches:
        items = np.asarray(batch[ITEM]).reshape(-1)
        if items.size and (items.min() < 0 or items.max() >= n_items):
            bad = items[(items < 0) | (items >= n_items)][0]
            raise ValueError(f"candidate item index {bad} outside the vocabulary [0, {n_items})")
        new = ~known[items]
        if not new.any():
            continue
        rows = np.flatnonzero(new)
        # the first row of each new item (np.unique keeps the first occurrence's index)
        _, first = np.unique(items[rows], return_index=True)
        rows = rows[first]
        genre[items[rows]] = np.asarray(batch[GENRE]).reshape(-1)[rows]
        year[items[rows]] = np.asarray(batch[YEAR]).reshape(-1)[rows]
        known[items[rows]] = True
    return CandidateTable(genre=genre, year=year, known=known)


def swap_in_retrieved(
    features: dict,
    retrieved: tf.Tensor,
    table: CandidateTable,
    share: float,
    seed: tf.Tensor,
) -> dict:
    """`features` with a share of its sampled negatives replaced by retrieved items.

    Args:
        features: a batch of transformed features (F.EVENT, F.LABEL, the user id and
            the candidate's item, genre and year).
        retrieved: [num user rows, P] item indices per transformed user id, -1 padded
            (`models.retrieval.updates.load_mined_negatives`'s table).
        table: the candidate features of each item index.
        share: probability that a sampled negative is replaced (0: none, 1: every one
            whose user has a list).
        seed: [2] int seed of the draws (stateless: the same batch and seed give the same
            swap); the trainer passes (config seed, batch number).

    Returns:
        The features with F.ITEM_ID, F.PRIMARY_GENRE and F.YEAR_NORMALIZED replaced on
        the swapped rows; every other feature, and every other row, unchanged.
    """
    retrieved = tf.convert_to_tensor(retrieved, tf.int64)
    users = tf.reshape(features[T(F.USER_ID)], [-1])
    users = tf.clip_by_value(users, 0, tf.shape(retrieved, out_type=tf.int64)[0] - 1)
    lists = tf.gather(retrieved, users)  # [B, P]
    n_valid = tf.reduce_sum(tf.cast(lists >= 0, tf.int32), axis=1)  # lists are -1 padded
    u = tf.random.stateless_uniform([tf.size(users), 2], seed=tf.cast(seed, tf.int64))
    pick = tf.minimum(tf.cast(u[:, 0] * tf.cast(n_valid, tf.float32), tf.int32), n_valid - 1)
    chosen = tf.gather(lists, tf.maximum(pick, 0), batch_dims=1)  # [B]
    safe = tf.maximum(chosen, 0)
    known = tf.gather(tf.constant(table.known), safe)
    sampled = tf.equal(tf.reshape(features[F.EVENT], [-1]), 0)
    swap = sampled & (n_valid > 0) & known & (u[:, 1] < share)
    out = dict(features)
    for name, values in (
        (ITEM, safe),
        (GENRE, tf.gather(tf.constant(table.genre), safe)),
        (YEAR, tf.gather(tf.constant(table.year), safe)),
    ):
        old = features[name]
        flat = tf.reshape(old, [-1])
        out[name] = tf.reshape(tf.where(swap, tf.cast(values, old.dtype), flat), tf.shape(old))
    return out
