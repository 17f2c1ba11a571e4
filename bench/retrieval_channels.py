"""Lever 3 of the quality issue, measured before building it: would an item-to-item
channel add candidates the two-tower misses?

On the B1 validation split, the two-tower's top-100 (exact search) is compared with a
union of equal size: the two-tower's top (100 - m) plus the m best items of an
item-to-item channel that are not already in it. The channel scores an item by the
sum of its co-occurrence similarity (cosine of the item columns of X, X = the events
before each target, top `neighbours` per item kept: sparse, k per item) with the
user's `recent` most recent history items. HR@100 of the candidate set (the target is
among the candidates handed to DIN) is what the channel can change: the final order
is DIN's score plus the two-tower's, so a candidate the two-tower ranks past 100 wins
only if DIN ranks it high.

    python -m bench.retrieval_channels [--dataset ml-100k] [--set k=v]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

MIXES = (0, 10, 20, 50)  # m of the 100 candidates from the item-to-item channel


def neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """[V, V] cosine co-occurrence of X's item columns, top k per row kept, diagonal 0.

    Args:
        x: [U, V] 0/1 interactions.
        k: neighbours kept per item (the rest are set to 0: a sparse, k-per-item table).
    """
    x = np.asarray(x, np.float32)
    counts = np.maximum(x.sum(axis=0), 1.0)
    sim = (x.T @ x) / np.sqrt(counts[:, None] * counts[None, :])
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[1]:
        cut = np.argpartition(-sim, k, axis=1)[:, k:]
        np.put_along_axis(sim, cut, 0.0, axis=1)
    return sim


def channel_scores(history: list[list[int]], sim: np.ndarray, recent: int) -> np.ndarray:
    """[Q, V] sum of the neighbour similarities of each query's `recent` latest items."""
    out = np.zeros((len(history), sim.shape[0]), np.float32)
    for q, items in enumerate(history):
        if items:
            out[q] = sim[items[-recent:]].sum(axis=0)
    return out


def union_hit_rate(tower_top, scores, exclude, targets, mix: int, size: int = 100) -> float:
    """HR of the candidate set: the tower's top (size - mix) + the channel's best `mix`
    new items (excluded items never enter)."""
    hits = 0
    for q, target in enumerate(targets):
        chosen = list(tower_top[q][: size - mix])
        if mix:
            s = scores[q].copy()
            s[list(exclude[q])] = -np.inf
            s[chosen] = -np.inf
            best = np.argsort(-s)[:mix]
            chosen += [int(i) for i in best if np.isfinite(s[i]) and s[i] > 0]
        hits += int(target in chosen)
    return hits / max(1, len(targets))


def history_indices(split) -> list[list[int]]:
    """Each query's history as catalog indices, oldest first (padding and unknowns dropped)."""
    from schemas import features as F

    index = {item: i for i, item in enumerate(split.item_ids)}
    out = []
    for row in split.data.queries[F.HISTORY_ITEM_IDS]:
        ids = [v.decode() if isinstance(v, bytes) else str(v) for v in row]
        out.append([index[i] for i in ids if i in index])
    return out


def trial(split, tower_top: np.ndarray, k: int = 50, recent: int = 5) -> dict:
    """{f"hr@100_mix{m}": HR@100 of the union} for every m in MIXES."""
    x, _ = split.interactions(positives_only=False)
    scores = channel_scores(history_indices(split), neighbours(x, k), recent)
    return {
        f"hr@100_mix{m}": union_hit_rate(
            tower_top, scores, split.data.exclude, split.data.targets, m
        )
        for m in MIXES
    }


def main(argv=None) -> int:
    from bench import retrieval as B
    from bench import retrieval_systems as S
    from models.retrieval.config import RetrievalConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.add_validation_args(p, "ml-100k")
    p.add_argument("--set", action="append", default=[], help="RetrievalConfig override k=v")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    config = RetrievalConfig().with_overrides(B._overrides(args.set))
    data = B.validation_split(args)
    validation, graph, out_dir = data.split, data.graph, data.out_dir
    top, _ = S.two_tower(config, graph, os.path.join(out_dir, "channels"))(validation)
    result = trial(validation, top)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
