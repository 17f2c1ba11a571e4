"""Pure logic of HardNegativeMiner: retrieve, rerank, keep what the ranker rejected.

No TFX here. For each user, the last blessed two-tower model retrieves the
top N catalog items by exact dot-product search (items the user interacted
with are excluded); the last blessed ranker scores those N; the retrieved items
the ranker places outside its top K are the user's hard negatives, ordered by
retrieval score (best first) and capped per user. They are written as the TSV
`models.retrieval.updates.load_mined_negatives` reads:
`user_id<TAB>item_id item_id ...`, one user per line.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

TSV_FILE = "hard_negatives.tsv"
REPORT_FILE = "report.json"


@dataclasses.dataclass(frozen=True)
class MiningConfig:
    """How many items are retrieved, kept by the ranker, and mined per user.

    Attributes:
        top_n: items retrieved per user (exact search over the catalog).
        top_k: the ranker's top K of those; the rest are hard negatives.
        max_per_user: hard negatives kept per user (the best-retrieved first).
        batch_size: users per embedding / ranker call.
    """

    top_n: int = 100
    top_k: int = 10
    max_per_user: int = 50
    batch_size: int = 256

    def __post_init__(self):
        for name in ("top_n", "top_k", "max_per_user", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HardNegativeMiner.{name} must be an int >= 1, got {value!r}")
        if self.top_k >= self.top_n:
            raise ValueError(
                f"HardNegativeMiner.top_k must be < top_n (nothing would be mined), "
                f"got top_k={self.top_k}, top_n={self.top_n}"
            )


def latest_rows(users: Sequence, timestamps: Sequence[int]) -> dict:
    """user -> index of the user's most recent row (the first such row on a tie)."""
    best: dict = {}
    for i, (user, ts) in enumerate(zip(users, timestamps, strict=True)):
        if user not in best or ts > timestamps[best[user]]:
            best[user] = i
    return best


def seen_items(users: Sequence, items: Sequence, labels: Sequence[int], histories) -> dict:
    """user -> set of items the user interacted with: every history entry and positive item.

    Args:
        users: [R] user id of each example row.
        items: [R] the row's target item.
        labels: [R] 1 for a positive event (its item counts as seen), else 0 (a
            low rating or a sampled negative: only histories prove an interaction).
        histories: [R] lists of history items (padding entries are harmless:
            they match no catalog item).
    """
    seen: dict = {}
    for user, item, label, history in zip(users, items, labels, histories, strict=True):
        entry = seen.setdefault(user, set())
        entry.update(history)
        if label == 1:
            entry.add(item)
    return seen


def retrieve(
    query: np.ndarray, items: np.ndarray, exclude: Sequence[Sequence[int]], top_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-N by dot product, excluded items removed.

    Args:
        query: [B, D] query embeddings.
        items: [V, D] catalog item embeddings.
        exclude: per query, catalog indices never retrieved (the user's items).
        top_n: N; at most V columns come back.

    Returns:
        top [B, n] catalog indices, best first (ties: lower index first);
        scores [B, n] their dot products; valid [B, n] False where fewer than n
        items were left after the exclusion (those columns are padding).
    """
    scores = np.asarray(query, np.float32) @ np.asarray(items, np.float32).T  # [B, V]
    scores = np.where(np.isnan(scores), -np.inf, scores)
    for row, excluded in enumerate(exclude):
        scores[row, np.asarray(excluded, np.int64)] = -np.inf
    n = min(top_n, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    top_scores = np.take_along_axis(scores, order, axis=1)
    return order, top_scores, np.isfinite(top_scores)


def select_hard_negatives(
    top: np.ndarray, valid: np.ndarray, ranker_scores: np.ndarray, top_k: int, max_per_user: int
) -> list[list[int]]:
    """The retrieved items the ranker places outside its top K, in retrieval order.

    Args:
        top: [B, N] retrieved item indices, best retrieval score first.
        valid: [B, N] False for padding columns (ignored).
        ranker_scores: [B, N] the ranker's score of each retrieved item.
        top_k: K; ranker ties are broken by retrieval order (better retrieved wins).
        max_per_user: at most this many per row, the best-retrieved first.

    Returns:
        Per row, the hard-negative item indices.
    """
    out = []
    for items, ok, scores in zip(top, valid, ranker_scores, strict=True):
        columns = np.flatnonzero(ok)
        by_ranker = columns[np.argsort(-scores[columns], kind="stable")]
        kept = set(by_ranker[:top_k].tolist())
        rejected = [int(items[c]) for c in columns if c not in kept]
        out.append(rejected[:max_per_user])
    return out


def _check_id(value: str, what: str, user: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(
            f"hard negatives: {what} {value!r} (user {user!r}) is empty or contains "
            "whitespace; the TSV format cannot hold it"
        )


def format_tsv(negatives: Mapping[str, Sequence[str]]) -> str:
    """`user_id<TAB>item item ...` lines; users without negatives are left out."""
    lines = []
    for user, items in negatives.items():
        if not items:
            continue
        _check_id(user, "user id", user)
        for item in items:
            _check_id(item, "item id", user)
        lines.append(f"{user}\t{' '.join(items)}\n")
    return "".join(lines)


def write_atomic(path: str, text: str) -> None:
    """Writes text to a temporary file next to `path`, then renames it over `path`."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def has_negatives(path: str) -> bool:
    """Whether a mined TSV holds at least one user line (blank lines and # comments aside)."""
    if not tf.io.gfile.exists(path):
        return False
    with tf.io.gfile.GFile(path, "r") as f:
        for line in f:
            if line.strip() and not line.startswith("#") and line.partition("\t")[2].strip():
                return True
    return False


def summarize(negatives: Mapping[str, Sequence[str]], users: int) -> dict:
    """Counts for the report: users mined, users with negatives, negatives per user."""
    sizes = np.array([len(v) for v in negatives.values()] or [0], np.int64)
    total = int(sizes.sum())
    return {
        "users_mined": int(users),
        "users_with_negatives": int(np.sum(sizes > 0)),
        "negatives": total,
        "negatives_per_user": total / users if users else 0.0,
        "max_negatives_per_user": int(sizes.max()),
    }


def negatives_by_user(
    users: Iterable[str], rows: Sequence[Sequence[int]], item_ids: Sequence[str]
) -> dict[str, list[str]]:
    """{user id: [item id, ...]} from per-user catalog index lists."""
    return {u: [item_ids[i] for i in r] for u, r in zip(users, rows, strict=True)}
