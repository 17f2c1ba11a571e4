"""B1 output: the JSON file, the Recall@K plot and the printed table."""

from __future__ import annotations

import json
import os

SYSTEM_ORDER = ("most_popular", "ease", "two_tower", "served", "served_scann")


def write_json(results: dict, path: str) -> None:
    """Writes results atomically (temp file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2, default=float)
    os.replace(tmp, path)


def plot(results: dict, datasets: list[str], path: str) -> None:
    """Recall@K (K = 1..100) per system, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(6 * max(1, len(datasets)), 4.2))
    axes = axes if len(datasets) > 1 else [axes]
    for ax, dataset in zip(axes, datasets, strict=False):
        for name in SYSTEM_ORDER:
            row = results[dataset].get(name)
            if not row:
                continue
            curve = row["recall_curve"]
            ks = range(1, len(curve) + 1)
            ax.plot(ks, curve, label=f"{name} (R@10 {curve[9]:.3f})")
        queries = results["details"][dataset]["queries"]["test"]
        ax.set(xlabel="K", ylabel="Recall@K (= HR@K)", title=f"{dataset}: {queries:,} test users")
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("B1: full-catalog retrieval, leave-last-out, seen items excluded")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _note(name: str, row: dict, rows: dict, gap: float) -> str:
    if name == "ease":
        return f"lambda={row['lambda']:g}, X={row['events']} events (validation-tuned)"
    if name == "most_popular":
        return f"counts of {row['events']} events (validation-tuned)"
    if name == "two_tower":
        ease = rows.get("ease") or {}
        if not ease:
            return ""
        rel = {k: row[k] / ease[k] - 1.0 for k in ("hr@10", "ndcg@10") if ease[k]}
        ok = all(v >= -gap for v in rel.values())
        verdict = f"target within {gap:.0%}: {'met' if ok else 'NOT met'}"
        return (
            f"vs EASE HR@10 {rel.get('hr@10', 0):+.1%}, NDCG@10 {rel.get('ndcg@10', 0):+.1%} "
            f"({verdict}); train {row['train_s']:.0f} s, {row['examples_per_sec']:,.0f} ex/s"
        )
    return ""


def table(results: dict, datasets: list[str], pending, gap: float) -> str:
    """The short summary table printed last."""
    d = results["details"]
    lines = [
        "B1 retrieval quality: test = each user's last rating>=4 event; full catalog ranking, "
        f"earlier items excluded; two-tower seed {d['seeds']['two_tower']}"
        + (" (QUICK: 1 epoch)" if d["quick"] else ""),
        f"{'dataset':<10} {'system':<13} {'HR@10':>7} {'NDCG@10':>8} {'HR@50':>7} {'HR@100':>7} "
        f"{'cov@10':>7}  notes",
    ]
    for dataset in datasets:
        rows = results[dataset]
        n = d[dataset]["queries"]["test"]
        for name in SYSTEM_ORDER:
            row = rows.get(name)
            label = dataset if name == SYSTEM_ORDER[0] else ""
            if row is None:
                why = "null: added by the lead with the combined model" if name in pending else ""
                lines.append(
                    f"{label:<10} {name:<13} {'-':>7} {'-':>8} {'-':>7} {'-':>7} "
                    f"{'-':>7}  {why}"
                )
                continue
            lines.append(
                f"{label:<10} {name:<13} {row['hr@10']:>7.4f} {row['ndcg@10']:>8.4f} "
                f"{row['hr@50']:>7.4f} {row['hr@100']:>7.4f} {row['coverage@10']:>7.4f}  "
                + _note(name, row, rows, gap)
            )
        lines.append(f"{'':<10} ({n:,} test users, {d[dataset]['catalog_items']:,} items)")
    return "\n".join(lines)
