"""BENCHMARKS B6: the whole local pipeline, cold, at 100K and 1M events; the data stages
(through Transform) at 10M.

Each size's synthetic data (pipeline/sources/synthetic.py SIZES "default", "1m", "10m")
is generated once into `--data-root` (reused while its manifest matches; the generation
time is reported apart), then `python -m pipeline run --data csv:DIR --no-cache` runs in
a child process (bench/pipeline.py's run_once: per-component seconds from MLMD, CPU
seconds, peak RSS of the process tree sampled every 0.2 s). The growth exponent of a
component between two sizes is log(t2 / t1) / log(n2 / n1), n the events read. At 1M
the run's ScaNN index (recall@10 against exact search, single-query latency) and the
gate's verdict are kept. Writes bench/results/scale.json and scale.png (seconds per
component against events, log-log, with the slope-1 line for reference).

    python -m bench.scale [--sizes 100k,1m,10m] [--repeats N] [--quick]

--quick runs synthetic "small" (20K events) and "default" (100K) end to end only, to
check the harness; its results go to scale_quick.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from bench.pipeline import RESULTS, median_run, run_once
from pipeline.config import LOCAL_WORKERS
from pipeline.sources import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_STAGES = "Transform"  # --until: ExampleGens, BehaviorSequenceGen, validation, Transform
# size name -> (synthetic SIZES key, whole pipeline or the data stages only)
SIZES = {
    "20k": ("small", "all"),
    "100k": ("default", "all"),
    "1m": ("1m", "all"),
    "10m": ("10m", "data"),
}
NOMINAL = {"20k": "20000", "100k": "100000", "1m": "1000000", "10m": "10000000"}  # JSON keys
TARGETS = {"1m_wall_s": 15 * 60, "1m_peak_rss_gib": 6.0, "10m_peak_rss_gib": 8.0, "exponent": 1.0}


def generate(size: str, root: str) -> tuple[str, float]:
    """The size's CSV directory (generated unless present) and the seconds it took."""
    out = os.path.join(root, size)
    start = time.time()
    print(f"[{size}] synthetic data in {out} ...", flush=True)
    synthetic.ensure_synthetic(out, SIZES[size][0])
    return out, round(time.time() - start, 1)


def exponents(small: dict, large: dict) -> dict:
    """log(t2/t1) / log(n2/n1) per component both runs have (n = events read)."""
    n1, n2 = small["counts"]["events_read"], large["counts"]["events_read"]
    out = {}
    for name, t2 in large["components"].items():
        t1 = small["components"].get(name)
        if t1 and t2 and n2 != n1:
            out[name] = round(math.log(t2 / t1) / math.log(n2 / n1), 2)
    if small.get("stages") == large.get("stages"):
        out["wall"] = round(math.log(large["wall_s"] / small["wall_s"]) / math.log(n2 / n1), 2)
    return out


def verdicts(results: dict) -> list[str]:
    """One line per B6 target, met or not (only for the sizes that ran)."""
    lines = []
    if "1000000" in results:
        r = results["1000000"]
        for key, target, unit in (("wall_s", TARGETS["1m_wall_s"], "s"),
                                  ("peak_rss_gib", TARGETS["1m_peak_rss_gib"], "GiB")):  # fmt: skip
            ok = r[key] <= target
            lines.append(
                f"1M {key}: {r[key]} {unit} (target <= {target}: {'met' if ok else 'NOT met'})"
            )
        worst = max(
            ((v, k) for k, v in r.get("exponents", {}).items() if k != "wall"), default=None
        )
        if worst:
            ok = worst[0] <= TARGETS["exponent"]
            lines.append(
                f"largest growth exponent 100K -> 1M: {worst[1]} {worst[0]} "
                f"(target <= 1.0: {'met' if ok else 'NOT met'})"
            )
    if "10000000" in results:
        r = results["10000000"]
        ok = r["peak_rss_gib"] <= TARGETS["10m_peak_rss_gib"]
        lines.append(
            f"10M data stages peak RSS: {r['peak_rss_gib']} GiB (target <= 8: "
            f"{'met' if ok else 'NOT met'}), wall {r['wall_s']} s"
        )
    return lines


def plot(results: dict, path: str) -> None:
    """Seconds per component against events read, log-log; slope 1 dashed for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results.values(), key=lambda r: r["counts"]["events_read"])
    comps = list(dict.fromkeys(c for r in rows for c in r["components"]))
    fig, ax = plt.subplots(figsize=(9, 6))
    palette = plt.get_cmap("tab20").colors  # one colour per component (tab10 repeats)
    ax.set_prop_cycle(color=palette)
    for comp in comps:
        pts = [(r["counts"]["events_read"], r["components"][comp])
               for r in rows if r["components"].get(comp)]  # fmt: skip
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", lw=1, ms=3, label=comp)
    whole = [(r["counts"]["events_read"], r["wall_s"]) for r in rows if r["stages"] == "all"]
    if whole:
        ax.plot(*zip(*whole, strict=True), "s-", color="black", lw=2, label="whole pipeline (wall)")
        n0, t0 = whole[0]
        xs = [r["counts"]["events_read"] for r in rows]
        ax.plot([n0, max(xs)], [t0, t0 * max(xs) / n0], "--", color="grey", label="slope 1")
    ax.set(xscale="log", yscale="log", xlabel="events", ylabel="seconds (cold run)")
    ax.set_title("B6: time per component against events (2 cores)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """Runs B6 for the chosen sizes, prints the table and the targets' verdicts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100k,1m,10m", help=f"comma-separated, of {list(SIZES)}")
    p.add_argument("--repeats", type=int, default=1, help="cold runs per size (median kept)")
    p.add_argument("--quick", action="store_true", help="20K and 100K events, end to end")
    p.add_argument("--data-root", default=os.path.join(REPO, ".work", "scale-data"))
    p.add_argument("--workers", type=int, default=LOCAL_WORKERS)
    p.add_argument(
        "--keep-work",
        metavar="DIR",
        help="run in DIR/SIZE-RUN and keep it (each must be new or empty), to profile its stages",
    )
    args = p.parse_args(argv)
    sizes = ["20k", "100k"] if args.quick else args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or args.repeats < 1:
        p.error(f"--sizes {unknown}: known {list(SIZES)}" if unknown else "--repeats must be >= 1")
    path = os.path.join(RESULTS, "scale_quick.json" if args.quick else "scale.json")
    results: dict = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    for size in sizes:
        data, gen_s = generate(size, args.data_root)
        stages = SIZES[size][1]
        extra = ["--until", DATA_STAGES] if stages == "data" else []
        runs = []
        for i in range(args.repeats):
            print(f"[{size}] pipeline run {i + 1}/{args.repeats} ({stages} stages) ...", flush=True)
            keep = os.path.join(args.keep_work, f"{size}-{i + 1}") if args.keep_work else None
            runs.append(run_once(f"csv:{data}", size, args.workers, extra, keep_work=keep))
            print(
                f"[{size}]   wall {runs[-1]['wall_s']} s, peak RSS {runs[-1]['peak_rss_gib']} GiB"
            )
        row = median_run(runs)
        row.update(stages=stages, generate_s=gen_s, measured=time.strftime("%Y-%m-%d %H:%M"))
        results[NOMINAL[size]] = row
    ordered = sorted(results.values(), key=lambda r: r["counts"]["events_read"])
    for small, large in zip(ordered, ordered[1:], strict=False):
        large["exponents"] = exponents(small, large)
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    plot(results, path.replace(".json", ".png"))
    print(table(results))
    for line in verdicts(results):
        print(line)
    return 0


def table(results: dict) -> str:
    """Seconds per component per size, with exponents, wall, CPU and peak RSS."""
    keys = sorted(results, key=lambda k: results[k]["counts"]["events_read"])
    comps = list(dict.fromkeys(c for k in keys for c in results[k]["components"]))
    head = f"{'component':<30}" + "".join(f"{k:>12}{'exp':>6}" for k in keys)
    lines = [
        "",
        "B6 scale: cold local pipeline, seconds (exp: growth exponent from the size before)",
        head,
    ]
    for c in comps:
        cells = []
        for k in keys:
            r = results[k]
            secs = r["components"].get(c)
            exp = r.get("exponents", {}).get(c)
            cells.append(f"{secs:>12.1f}" if secs else f"{'-':>12}")
            cells.append(f"{exp:>6.2f}" if exp is not None else f"{'':>6}")
        lines.append(f"{c:<30}" + "".join(cells))
    for key in ("wall_s", "cpu_s", "peak_rss_gib", "generate_s", "stages"):
        lines.append(
            f"{key:<30}" + "".join(f"{str(results[k].get(key, '-')):>12}{'':>6}" for k in keys)
        )
    index = results.get("1000000", {}).get("index")
    if index:
        lines.append(f"1M index: {json.dumps(index)[:300]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
