"""Index recall with the two-tower's popularity-prior column, by the column's width.

The prior (models/retrieval/prior.py) appends s * log(1 + n) to every item vector and
beta / s to every query; the product is the same for any s, but s shapes the k-means
partitions of an approximate index. This builds the default index (models.search.params)
over clustered unit vectors with Zipf counts, with no prior and with the candidate column
scaled to each --widths value (its largest entry), and prints recall@10 of the ScaNN and
the portable searchers against exact search of the same vectors.

    python -m bench.index_prior [--items 100000] [--widths 1,0.25,0.1]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def data(items: int, queries: int, dim: int = 32, seed: int = 0):
    """(items [N, D] unit vectors in 200 clusters, queries [Q, D] near items, counts [N])."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, dim))
    x = centers[rng.integers(0, 200, items)] + 0.5 * rng.normal(size=(items, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, items, queries)] + 0.3 * rng.normal(size=(queries, dim))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q, rng.zipf(1.3, items).clip(max=10**6).astype(np.float64)


def with_column(x, q, counts, beta: float, width: float):
    """x with s log(1 + n) appended (largest entry `width`), q with beta / s appended."""
    log = np.log1p(counts)
    s = width / log.max()
    return (
        np.c_[x, s * log].astype(np.float32),
        np.c_[q, np.full(len(q), beta / s)].astype(np.float32),
    )


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(found, exact, strict=True)]))


def main(argv=None) -> int:
    from models.search import index as I
    from models.search import params as P
    from models.search import searchers as S

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--beta", type=float, default=0.03)
    p.add_argument("--widths", default="1,0.25,0.1")
    args = p.parse_args(argv)
    x, q, counts = data(args.items, args.queries)
    cases = {"no prior": (x.astype(np.float32), q.astype(np.float32))}
    for width in (float(w) for w in args.widths.split(",")):
        cases[f"column in [0, {width:g}]"] = with_column(x, q, counts, args.beta, width)
    params = P.choose_params(args.items)
    for name, (items, queries) in cases.items():
        exact = np.argsort(-(queries @ items.T), axis=1)[:, :10]
        index = I.build_index(np.arange(args.items).astype(str), items, params)
        row = {"case": name}
        for variant, make in (("scann", I.scann_searcher), ("portable", I.portable_searcher)):
            row[variant] = round(recall(S.search_all(make(index, 10), queries), exact), 4)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
