"""Two-tower tuning and ablation on the B1 *validation* split (never the test split).

The validation split is each user's last rating >= 4 training event, with only the
events before it for training (see `retrieval_data.write_validation_split`). Each
variant is a set of RetrievalConfig overrides on top of a base config, flat (the
former field names, as bench/results/retrieval_tuning.json records them) or nested
(`{"training": {"epochs": 5}}`), applied by `RetrievalConfig.with_overrides`; every
variant is trained with `run_fn` and ranked over the whole catalog.

    python -m bench.retrieval_tune [--dataset ml-100k] [--set k=v ...] \
        --variant 'name={"epochs": 5, "temperature": 0.1}' [--variant ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# One change at a time from the base config (issue 3's ablation: log-Q and each loss family).
ABLATION = {
    "no_log_q": {"log_q": False},
    "mixed_negatives_256": {"num_mixed_negatives": 256},
    "pointwise": {"loss": "pointwise"},
    "triplet_hinge": {"loss": "triplet_hinge"},
    "triplet_logistic": {"loss": "triplet_logistic"},
    "sampled_softmax": {"loss": "sampled_softmax"},
}
KEYS = ("hr@10", "ndcg@10", "hr@50", "hr@100", "coverage@10")


def run_variants(validation, graph: str, out_dir: str, base, variants: dict) -> dict:
    """{variant: validation metrics, train seconds, examples/s} of each override set."""
    from bench import retrieval_systems as S

    out = {}
    for name, overrides in variants.items():
        config = base.with_overrides(overrides)  # flat or nested keys
        print(f"=== variant {name}: {overrides}", flush=True)
        work = os.path.join(out_dir, "tune", f"{name}-{os.getpid()}")  # one per process
        top, extras = S.two_tower(config, graph, work)(validation)
        m = S.evaluate_top(top, validation.data.targets, len(validation.item_ids))["metrics"]
        out[name] = {
            "overrides": overrides,
            **{k: m[k] for k in KEYS},
            "train_s": extras["train_s"],
            "examples_per_sec": extras["examples_per_sec"],
        }
        print(
            f"    {name}: HR@10 {m['hr@10']:.4f} NDCG@10 {m['ndcg@10']:.4f} "
            f"HR@100 {m['hr@100']:.4f} train {extras['train_s']:.0f} s",
            flush=True,
        )
    return out


def ablation(validation, graph: str, out_dir: str, base) -> dict:
    """The ABLATION variants that differ from the base config, on the validation split."""
    return run_variants(validation, graph, out_dir, base, ablation_variants(base))


def ablation_variants(base) -> dict:
    """The ABLATION variants that change `base` (a variant that does not apply to the
    base's loss, e.g. mixed negatives on a pointwise base, is left out)."""
    out = {}
    for name, overrides in ABLATION.items():
        try:
            changed = base.with_overrides(overrides) != base
        except ValueError:  # a field of another loss
            changed = False
        if changed:
            out[name] = overrides
    return out


def table(results: dict) -> str:
    lines = [
        f"{'variant':<28} {'HR@10':>7} {'NDCG@10':>8} {'HR@50':>7} {'HR@100':>7} "
        f"{'train s':>8}  overrides"
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<28} {r['hr@10']:>7.4f} {r['ndcg@10']:>8.4f} {r['hr@50']:>7.4f} "
            f"{r['hr@100']:>7.4f} {r['train_s']:>8.0f}  {json.dumps(r['overrides'])}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench import retrieval as B
    from models.retrieval.config import RetrievalConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.add_validation_args(p, "ml-100k")
    p.add_argument("--set", action="append", default=[], help="base override k=v")
    p.add_argument("--variant", action="append", default=[], help='name={"k": v, ...}')
    p.add_argument("--ablation", action="store_true", help="run the ABLATION variants too")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    base = RetrievalConfig().with_overrides(B._overrides(args.set))
    variants = {}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = json.loads(overrides or "{}")
    if args.ablation:
        variants.update(ABLATION)
    data = B.validation_split(args)
    validation, graph, out_dir = data.split, data.graph, data.out_dir
    results = run_variants(validation, graph, out_dir, base, variants or {"base": {}})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print(
        f"\nvalidation split of {args.dataset} ({len(validation.query_users)} users); "
        f"base = defaults + {B._overrides(args.set)}"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
