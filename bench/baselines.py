"""Non-neural retrieval baselines of BENCHMARKS B1: MostPopular and EASE^R.

Pure numpy, no TFX. Both produce scores over the catalog that
`components.retrieval_evaluator.metrics.rank_targets` ranks as a dot product
of a query matrix and an item matrix:
- MostPopular: query [Q, 1] of ones, items [V, 1] = popularity;
- EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders"): query = the
  users' interaction rows X_u [Q, V], items = B^T [V, V], so scores = X_u B.
  B = I - P / diag(P) (column j divided by P_jj), P = (X^T X + lambda I)^-1;
  diag(B) = 0 by construction.
"""

from __future__ import annotations

import numpy as np


def interaction_matrix(rows, cols, shape: tuple[int, int]) -> np.ndarray:
    """Binary user-item matrix.

    Args:
        rows: [N] user row of each interaction.
        cols: [N] catalog column of each interaction.
        shape: (num_users, num_items).

    Returns:
        [num_users, num_items] float32 matrix, 1 where the user interacted with
        the item (repeats count once).
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if len(rows) != len(cols):
        raise ValueError(f"rows and cols differ in length: {len(rows)} vs {len(cols)}")
    for name, values, size in (("rows", rows, shape[0]), ("cols", cols, shape[1])):
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{name} must be in [0, {size}), got [{values.min()}, {values.max()}]")
    x = np.zeros(shape, np.float32)
    x[rows, cols] = 1.0
    return x


def ease_weights(x: np.ndarray, lam: float) -> np.ndarray:
    """The EASE^R item-item matrix B [V, V] of a user-item matrix x [U, V].

    Args:
        x: [U, V] interactions (binary or weighted).
        lam: the L2 penalty lambda (> 0).

    Returns:
        [V, V] float64 B with a zero diagonal; scores of users X are X @ B.
    """
    if not lam > 0:
        raise ValueError(f"lambda must be > 0, got {lam}")
    x = np.asarray(x, np.float64)
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[np.newaxis, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


def popularity(counts) -> np.ndarray:
    """MostPopular scores [V]: n - (position in the popularity order), ties by catalog order.

    The scores are distinct integers (exact in float32, whatever the counts), so
    the ranking is total and deterministic: higher count first, then lower index.

    Args:
        counts: [V] non-negative interaction counts per catalog item.
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError("counts must be a 1-d array of non-negative counts")
    n = len(counts)
    order = np.lexsort((np.arange(n), -counts))  # last key is primary
    scores = np.empty(n, np.float64)
    scores[order] = n - np.arange(n)
    return scores
