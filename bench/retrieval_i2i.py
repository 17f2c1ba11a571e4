"""Issue 18 lever 3 on the B1 *validation* split: an item-to-item score mixed into r/T.

The trial: EASE^R's item-item weights B (X = every rated training event, lambda
`--lam`), cut to the k largest |weights| per item (sparse, as a served channel would
store them), scored from the request's history only (h . B, h the history's indicator,
as the served model sees it), and added to the two-tower's r / temperature with weight
beta * std(r / T) / std(h . B). Every row ranks the whole catalog without the query's
exclusions, as B1 does.

    python -m bench.retrieval_i2i [--dataset synthetic] [--lam 150] [--out FILE]

It never reads the test split. The figures of bench/results/retrieval_tuning.json's
quality_levers_issue_18.lever_3_item_to_item_channel come from this trial.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

KS = (50, 200)  # neighbours kept per item
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0)  # mix weights, in units of the std ratio


def sparse_top_k(b: np.ndarray, k: int) -> np.ndarray:
    """b with all but the k largest |b[i, j]| of each row i set to 0 (k >= V: b itself)."""
    if k >= b.shape[1]:
        return b.copy()
    out = b.copy()
    cut = np.argpartition(-np.abs(out), k, axis=1)[:, k:]
    np.put_along_axis(out, cut, 0.0, axis=1)
    return out


def history_matrix(histories: list[list[int]], n_items: int) -> np.ndarray:
    """[Q, V] indicator of each query's history items."""
    h = np.zeros((len(histories), n_items), np.float32)
    for q, items in enumerate(histories):
        h[q, items] = 1.0
    return h


def main(argv=None) -> int:
    import tensorflow as tf

    from bench import baselines
    from bench import retrieval as B
    from bench import retrieval_systems as S
    from bench.retrieval_channels import history_indices
    from components.retrieval_evaluator import metrics as M
    from models.common import examples as X
    from models.retrieval.config import RetrievalConfig
    from schemas import serving as SV

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.add_validation_args(p, "synthetic")
    p.add_argument("--lam", type=float, default=150.0, help="EASE^R's lambda")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)

    config = RetrievalConfig()
    data = B.validation_split(args)
    val, graph, out_dir = data.split, data.graph, data.out_dir
    work = os.path.join(out_dir, f"i2i-{os.getpid()}")
    S.two_tower(config, graph, work)(val)
    loaded = tf.saved_model.load(S.two_tower_dir(work, val.name))
    items = X.embed(loaded.signatures[SV.CANDIDATE_SIGNATURE], val.data.candidates, 256)
    query = X.embed(loaded.signatures[SV.QUERY_SIGNATURE], val.data.queries, 256)
    t, n_items = config.tower.temperature, len(val.item_ids)
    hist = history_indices(val)
    print(f"{len(hist)} queries, mean history {np.mean([len(h) for h in hist]):.1f} items")

    results = {}

    def evaluate(name: str, q: np.ndarray, c: np.ndarray) -> None:
        ranked = M.rank_targets(q, c, val.data.targets, val.data.exclude)
        m = S.evaluate_top(ranked.top[:, : S.TOP_K], val.data.targets, n_items)["metrics"]
        results[name] = {k: round(float(m[k]), 4) for k in ("hr@10", "ndcg@10", "hr@100")}
        print(
            f"{name:<28} HR@10 {m['hr@10']:.4f} NDCG@10 {m['ndcg@10']:.4f} "
            f"HR@100 {m['hr@100']:.4f}",
            flush=True,
        )

    evaluate("two_tower", query / t, items)
    x, rows = val.interactions(False)
    b = baselines.ease_weights(x, args.lam).astype(np.float32)
    evaluate("ease_full_x", x[rows], b.T)
    h = history_matrix(hist, n_items)
    r_std = float(np.std(query @ items.T / t))
    for k in KS:
        bk = sparse_top_k(b, k)
        evaluate(f"i2i_k{k}", h, bk.T)
        ratio = r_std / float(np.std(h @ bk))
        for beta in BETAS:
            w = beta * ratio
            evaluate(
                f"mix_k{k}_beta{beta:g}", np.hstack([query / t, w * h]), np.hstack([items, bk.T])
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"dataset": args.dataset, "lambda": args.lam, "results": results}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
