"""An additive popularity prior on the two-tower's retrieval score, on the B1 *validation* split.

score(u, i) = cos(q_u, c_i) + beta * log(1 + n_i), with n_i the item's training events
before the validation targets (all rated events, or positives only). In logit units that is
(beta / temperature) * log(1 + n_i): the in-batch softmax is trained with log-Q correction,
which removes the batch's popularity from the logits, and this puts a measured share of it
back at retrieval time. It is computed as one more dot-product column,
[q, beta] . [c, log(1 + n)], so ScaNN still searches a plain dot product. Since
2026-12-08 the pushed model carries it (RetrievalConfig.tower.popularity_prior, beta .03,
positives counted; models/retrieval/prior.py); this harness trains the two-tower with
popularity_prior 0, so that its rows start from bare cosines.

    python -m bench.retrieval_prior --dataset synthetic --seeds 0,1 [--betas 0,0.01,0.02,0.03]

It trains the two-tower once per seed (the current defaults) and ranks the whole catalog
for each beta; it never reads the test split. Prints one line per (seed, events, beta) and,
with --out, writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

BETAS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05)


def with_prior(query: np.ndarray, items: np.ndarray, counts: np.ndarray, beta: float):
    """(query [Q, D+1], items [V, D+1]) whose dot product is q . c + beta * log(1 + n)."""
    q = np.concatenate([query, np.full((len(query), 1), beta, np.float32)], axis=1)
    c = np.concatenate([items, np.log1p(np.asarray(counts, np.float64))[:, None]], axis=1)
    return q.astype(np.float32), c.astype(np.float32)


def main(argv=None) -> int:
    import tensorflow as tf

    from bench import retrieval as B
    from bench import retrieval_systems as S
    from models.common import examples as X
    from models.retrieval.config import RetrievalConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.add_validation_args(p, "synthetic")
    p.add_argument("--seeds", default="0")
    p.add_argument("--betas", default=",".join(map(str, BETAS)))
    p.add_argument("--out")
    args = p.parse_args(argv)
    betas = [float(b) for b in args.betas.split(",")]
    data = B.validation_split(args)
    val, graph, out_dir = data.split, data.graph, data.out_dir
    counts = {
        events: np.asarray(val.interactions(positives)[0].sum(axis=0)).ravel()
        for events, positives in S.EVENT_SETS.items()
    }
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        work = os.path.join(out_dir, f"prior-{os.getpid()}-seed-{seed}")
        bare = RetrievalConfig().with_overrides(seed=seed, popularity_prior=0)
        S.two_tower(bare, graph, work)(val)
        model = tf.saved_model.load(S.two_tower_dir(work, val.name))
        items = X.embed(model.signatures[S.SV.CANDIDATE_SIGNATURE], val.data.candidates, 256)
        query = X.embed(model.signatures[S.SV.QUERY_SIGNATURE], val.data.queries, 256)
        for events, n in counts.items():
            for beta in betas:
                top = S.top_by_score(val, *with_prior(query, items, n, beta))
                m = S.evaluate_top(top, val.data.targets, len(val.item_ids))["metrics"]
                row = {"seed": seed, "events": events, "beta": beta}
                row.update({k: round(m[k], 4) for k in ("hr@10", "ndcg@10")})
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
