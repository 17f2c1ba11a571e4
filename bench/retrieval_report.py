"""B1 output: the JSON file, the Recall@K plot and the printed table."""

from __future__ import annotations

import json
import os

SYSTEM_ORDER = ("most_popular", "ease_all", "ease_positive", "two_tower", "served", "served_scann")
METRICS = ("hr@10", "ndcg@10")


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


def stronger_ease(rows: dict) -> dict:
    """{metric: the better of ease_all and ease_positive} for HR@10 and NDCG@10."""
    eases = [rows[n] for n in ("ease_all", "ease_positive") if rows.get(n)]
    return {k: max(r[k] for r in eases) for k in METRICS} if eases else {}


def verdict(row: dict, rows: dict, factor: float) -> tuple[bool, dict]:
    """(row >= factor x the stronger EASE^R on HR@10 and NDCG@10, {metric: ratio})."""
    best = stronger_ease(rows)
    ratios = {k: row[k] / best[k] for k in METRICS if best.get(k)}
    return bool(ratios) and all(r >= factor for r in ratios.values()), ratios


def _note(name: str, row: dict, rows: dict, targets: dict) -> str:
    if name.startswith("ease"):
        return f"lambda={row['lambda']:g}, X={row['events']} events (lambda validation-tuned)"
    if name == "most_popular":
        return f"counts of {row['events']} events (validation-tuned)"
    if name not in targets or not stronger_ease(rows):
        return ""
    ok, ratios = verdict(row, rows, targets[name])
    spread = f"std HR@10 {row.get('hr@10_std', 0):.4f} NDCG@10 {row.get('ndcg@10_std', 0):.4f}"
    return (
        f"x stronger EASE: HR@10 {ratios['hr@10']:.3f}, NDCG@10 {ratios['ndcg@10']:.3f} "
        f"(target {targets[name]:.2f}: {'met' if ok else 'NOT met'}); {spread}"
    )


def table(results: dict, datasets: list[str], pending, targets: dict) -> str:
    """The short summary table printed last."""
    d = results["details"]
    lines = [
        "B1 retrieval quality: test = each user's last rating>=4 event; full catalog ranking, "
        f"earlier items excluded; trained systems: mean of seeds {d['seeds']['two_tower']}"
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
                + _note(name, row, rows, targets)
            )
        pick = d[dataset].get("ease_pick", "ease")
        lines.append(
            f"{'':<10} ({n:,} test users, {d[dataset]['catalog_items']:,} items; "
            f"row 'ease' = {pick}, the validation pick)"
        )
        if d[dataset].get("ablation"):
            lines += [f"{dataset} two-tower ablation on the VALIDATION split:"]
            lines += _ablation(d[dataset]["ablation"])
    return "\n".join(lines)


def _ablation(rows: dict) -> list[str]:
    out = []
    for name, r in rows.items():
        out.append(
            f"  {name:<22} HR@10 {r['hr@10']:.4f}  NDCG@10 {r['ndcg@10']:.4f}  "
            f"HR@100 {r['hr@100']:.4f}  {json.dumps(r['overrides'])}"
        )
    return out
