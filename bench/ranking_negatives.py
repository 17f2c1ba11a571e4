"""Issue 22: how many ranker negatives the leak-free exclusion changes on ML-100K.

For every sampled ranker negative (BehaviorSequenceGen's logic, `sequences.py`, with
the pipeline's defaults), counts those the user touches later: the former exclusion
(`negative_exclusion="touched_ever"`) could never draw them. Pure Python, no TFX.

    python -m bench.ranking_negatives [--data ../shared/data/ml-100k]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

from components.behavior_sequence_gen import sequences as S
from schemas import features as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timelines(path: str, cfg: S.SequenceConfig) -> tuple[list, dict]:
    """(every user's Timeline, items by id) from ML-100K's u.data (items known by id only)."""
    rows = collections.defaultdict(list)
    with open(os.path.join(path, "u.data")) as f:
        for line in f:
            u, i, r, t = line.split("\t")
            rows[u].append({F.USER_ID: u, F.ITEM_ID: i, F.RATING: float(r), F.TIMESTAMP: int(t)})
    items = {i: {F.ITEM_ID: i} for user in rows.values() for i in (r[F.ITEM_ID] for r in user)}
    built = [S.build_timeline(u, r, {}, items, cfg)[0] for u, r in sorted(rows.items())]
    return [t for t in built if t is not None], items


def later_touched(cfg: S.SequenceConfig, path: str) -> dict:
    """{split: {"negatives": n, "touched_later": k, "share": k / n}}."""
    users, items = timelines(path, cfg)
    counts = collections.Counter(i for tl in users for i in S.train_item_ids(tl))
    sampler = S.NegativeSampler(counts, cfg.negative_power)
    out = {s: collections.Counter() for s in (S.TRAIN, S.EVAL)}
    for tl in users:
        touched = {item for _, item in tl.first_touch}
        for split, _, targets in S.event_examples(tl, items, sampler, cfg):
            out[split]["negatives"] += len(targets) - 1
            out[split]["touched_later"] += sum(t[F.ITEM_ID] in touched for t in targets[1:])
    return {s: {**c, "share": c["touched_later"] / max(1, c["negatives"])} for s, c in out.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "ml-100k"))
    args = p.parse_args(argv)
    if not os.path.exists(os.path.join(args.data, "u.data")):
        print(f"ML-100K not found at {os.path.abspath(args.data)}: skipping")
        return 0
    for exclusion in S.NEGATIVE_EXCLUSIONS:
        result = later_touched(S.SequenceConfig(negative_exclusion=exclusion), args.data)
        for split, r in result.items():
            print(
                f"{exclusion:<16} {split:<5} negatives {r['negatives']:>7,}  touched later by "
                f"the user {r['touched_later']:>6,} ({r['share']:.1%})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
