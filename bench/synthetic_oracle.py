"""The ceiling of B1 on synthetic data: the generator's own model, ranked exactly.

The synthetic generator draws each next item from softmax_i(q_t . v_i + log p_i) over the
items a user has not consumed (pipeline/sources/synthetic.py). No model can rank a user's
B1 test target better, on average, than by those logits with the query the target was
drawn with. This prints that oracle's HR@10 / NDCG@10 on B1's synthetic test split (per
user, the last event rated >= 4; earlier items excluded), beside the B1 rows of
bench/results/retrieval.json, as a share of the ceiling.

    python -m bench.synthetic_oracle [--size default]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from schemas import features as F

K = 10
POSITIVE_RATING = 4.0


def oracle_metrics(tables, latents, k: int = K) -> dict:
    """HR@k / NDCG@k of ranking by the generator's logits on B1's split of `tables`."""
    events = tables.interactions
    user = events[F.USER_ID].to_numpy()
    item = np.array([int(i[1:]) for i in events[F.ITEM_ID]])  # "i{j}" -> j
    rating = events[F.RATING].to_numpy(np.float64)
    hits, gains = [], []
    for rows in _rows_by_user(user):  # rows in time order
        positive = rows[rating[rows] >= POSITIVE_RATING]
        if not len(positive):
            continue  # as B1: users without a positive are not scored
        target = positive[-1]
        logits = latents.item_vectors @ latents.queries[target] + latents.log_popularity
        logits[item[rows[rows < target]]] = -np.inf  # consumed before the target
        rank = int((logits > logits[item[target]]).sum())
        hits.append(rank < k)
        gains.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return {"users": len(hits), f"hr@{k}": float(np.mean(hits)), f"ndcg@{k}": float(np.mean(gains))}


def _rows_by_user(user: np.ndarray):
    """Row indices of each user's events, in table (time) order."""
    order = np.argsort(user, kind="stable")
    bounds = np.flatnonzero(user[order][1:] != user[order][:-1]) + 1
    return np.split(order, bounds)


def main(argv=None) -> int:
    from pipeline.sources import synthetic

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="default", choices=sorted(synthetic.SIZES))
    args = p.parse_args(argv)
    tables, latents = synthetic.generate_with_latents(synthetic.SIZES[args.size])
    ceiling = oracle_metrics(tables, latents)
    print(f"synthetic:{args.size}, {ceiling['users']:,} test users")
    print(f"  oracle (the generator's logits): HR@10 {ceiling['hr@10']:.4f}  "
          f"NDCG@10 {ceiling['ndcg@10']:.4f}")  # fmt: skip
    results = os.path.join(os.path.dirname(__file__), "results", "retrieval.json")
    if args.size == "default" and os.path.exists(results):
        with open(results) as f:
            rows = json.load(f).get("synthetic") or {}
        for name, row in rows.items():
            if row and "hr@10" in row:
                hr, ndcg = row["hr@10"], row["ndcg@10"]
                share = f"{hr / ceiling['hr@10']:.0%} / {ndcg / ceiling['ndcg@10']:.0%}"
                print(f"  {name:<14} HR@10 {hr:.4f}  NDCG@10 {ndcg:.4f}  ({share} of the ceiling)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
