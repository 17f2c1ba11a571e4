"""B3's plots and printed report: p50 per N, recall-vs-latency curves, the table, the target
check and the TF-op profile."""

from __future__ import annotations

from bench.index_profile import breakdown_lines
from bench.index_sweep import TF_OP_BOUND

SYSTEMS = (
    "exact",
    "portable",
    "scann",
    "scann_served",
    "scann_pybind",
    "faiss_ivf_flat",
    "faiss_ivf_pq",
    "faiss_hnsw",
    "hnswlib",
)
COLOURS = dict(
    zip(
        SYSTEMS,
        (
            "#7f7f7f",
            "#bcbd22",
            "#ff9896",
            "#d62728",
            "#9467bd",
            "#1f77b4",
            "#17becf",
            "#2ca02c",
            "#ff7f0e",
        ),
        strict=True,
    )
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(results: dict, path: str) -> None:
    """Single-query p50 latency per N for each searcher at its setting (log-log)."""
    plt = _pyplot()
    sizes = sorted(int(n) for n in results)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for name in SYSTEMS:
        points = [(n, results[str(n)]["searchers"].get(name)) for n in sizes]
        points = [(n, s) for n, s in points if s]
        if not points:
            continue
        recall = ", ".join(f"{s['recall@10']:.3f}" for _, s in points)
        ax.plot(
            [n for n, _ in points],
            [s["p50_ms"] for _, s in points],
            marker="o",
            color=COLOURS[name],
            label=f"{name} (recall@10 {recall})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalog size N (64-d)")
    ax.set_ylabel("single-query p50 latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("B3: single-query p50 at each system's setting (2 shared, loaded CPU cores)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_sweeps(results: dict, path: str) -> None:
    """One panel per N: recall@10 against single-query p50, one curve per system sweeping
    its main knob (the last value labelled, the cheapest reaching 0.95 ringed), exact and
    portable as squares, the 0.95 line."""
    plt = _pyplot()
    sizes = sorted(int(n) for n in results)
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4.8), dpi=100, squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        row = results[str(n)]
        for name, points in row.get("sweeps", {}).items():
            ax.plot(
                [p["p50_ms"] for p in points],
                [p["recall@10"] for p in points],
                marker=".",
                color=COLOURS.get(name),
                label=name,
            )
            last = points[-1]
            ax.annotate(
                str(last["knob"]),
                (last["p50_ms"], last["recall@10"]),
                fontsize=6,
                color=COLOURS.get(name),
                xytext=(3, 0),
                textcoords="offset points",
            )
        for name, pick in row.get("picks", {}).items():  # the cheapest value reaching .95
            ax.plot(
                pick["p50_ms"],
                pick["recall@10"],
                marker="o",
                markersize=9,
                markerfacecolor="none",
                color=COLOURS.get(name),
            )
        for name in ("exact", "portable"):
            s = row["searchers"].get(name)
            if s:
                ax.plot(
                    s["p50_ms"],
                    s["recall@10"],
                    marker="s",
                    linestyle="none",
                    color=COLOURS[name],
                    label=name,
                )
        ax.axhline(0.95, color="k", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.set_ylim(max(0.5, ax.get_ylim()[0]), 1.005)
        ax.set_xlabel("single-query p50 (ms, log)")
        ax.set_title(f"N = {n:,}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("recall@10 vs exact top-10")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(
        "B3: recall vs latency, each system sweeping its main knob "
        "(nprobe, efSearch/ef, leaves_to_search); 2 shared, loaded cores"
    )
    fig.tight_layout(rect=(0, 0, 0.84, 0.95))
    fig.savefig(path)
    plt.close(fig)


def table(results: dict) -> str:
    """One line per N and system: recall, p50/p99, batched q/s, build s, bytes per item."""
    lines = [
        "N          system           recall@10  p50 ms   p99 ms   batch q/s  build s  "
        "B/item  setting"
    ]
    for n, r in sorted(results.items(), key=lambda kv: int(kv[0])):
        for name in SYSTEMS:
            s = r["searchers"].get(name)
            if not s:
                continue
            build, size, setting = _build_size_setting(r, name, s)
            lines.append(
                f"{int(n):<10,} {name:<16} {s['recall@10']:<10.4f} {s['p50_ms']:<8.3f} "
                f"{s['p99_ms']:<8.2f} {s['batched_qps']:<10.0f} {build:<8.1f} {size:<7.0f} "
                f"{setting}"
            )
    return "\n".join(lines)


def _build_size_setting(row: dict, name: str, s: dict) -> tuple[float, float, str]:
    if "settings" in s:
        mark = "" if s["reached_0.95"] else " (0.95 NOT reached)"
        return s["build_s"], s["bytes_per_item"], f"{s['settings']}{mark}"
    p = row["params"]
    scann = f"leaves {p['num_leaves_to_search']}/{p['num_leaves']}, AH, reorder {p['reorder']}"
    return {
        "exact": (0.0, row["exact_bytes_per_item"], "brute force"),
        "portable": (
            row["portable_build_s"],
            row.get("portable_bytes_per_item", 256.0),
            "stock-op partitions",
        ),
        "scann": (row["scann_build_s"], row["scann_bytes_per_item"], scann + ", tf.function"),
        "scann_served": (
            row["scann_build_s"],
            row["scann_bytes_per_item"],
            scann + ", signature call",
        ),
        "scann_pybind": (row["scann_pybind_build_s"], row["scann_bytes_per_item"], scann),
    }[name]


def target_lines(results: dict) -> list[str]:
    lines = []
    for n, r in sorted(results.items(), key=lambda kv: int(kv[0])):
        t = r.get("target", {})
        if not t.get("fastest_peer"):
            lines.append(f"target at N = {int(n):,}: {t.get('why', 'no peers measured')}")
            continue
        lines.append(
            f"target at N = {int(n):,}: fastest peer at recall >= .95 {t['fastest_peer']} p50 "
            f"{t['peer_p50_ms']:.3f} ms; served TF op {t['tf_op_ratio']:.2f}x "
            f"(<= {TF_OP_BOUND}: {'met' if t['tf_op_met'] else 'NOT met'}); ScaNN's own "
            f"{t['native_ratio']:.2f}x (<= 1: {'met' if t['native_met'] else 'NOT met'})"
        )
    return lines


def pick_lines(results: dict) -> list[str]:
    """Every swept system at its cheapest knob value reaching recall@10 0.95 (sweep p50s,
    ScaNN included: its served default may search more leaves than 0.95 needs)."""
    lines = []
    for n, r in sorted(results.items(), key=lambda kv: int(kv[0])):
        picks = sorted(r.get("picks", {}).items(), key=lambda kv: kv[1]["p50_ms"])
        cells = [
            f"{name} {p['knob']} ({p['recall@10']:.3f}{'' if p['reached'] else ' <.95'}) "
            f"{p['p50_ms']:.3f} ms"
            for name, p in picks
        ]
        lines.append(f"cheapest knob for .95 at N = {int(n):,}, sweep p50: " + "; ".join(cells))
    return lines


def report(results: dict, bandwidth: float) -> str:
    largest = max(results, key=int)
    lines = [
        table(results),
        *target_lines(results),
        *pick_lines(results),
        f"TF-op search overhead at N = {int(largest):,} (medians of one-query calls):",
    ]
    lines += breakdown_lines(results[largest]["tf_op_profile"])
    lines.append(f"memory bandwidth (memcpy, read + write): {bandwidth:.1f} GB/s")
    return "\n".join(lines)
