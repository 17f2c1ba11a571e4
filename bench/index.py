"""BENCHMARKS B3: ScaNN index vs exact search on clustered synthetic embeddings.

For N in 10k, 100k, 1M items (64-d, unit norm, Zipf-sized topic clusters) and
1,000 queries, builds the index the ScannIndexBuilder would build (its default
parameters for N) and measures, side by side in one run:
- `scann`: the ScaNN TF-op searcher called through its tf.function (what the
  ScaNN serving model runs), and `scann_pybind`: ScaNN's pybind searcher with
  the same config (for reference; it skips the TF op dispatch);
- `exact`: matmul + top_k through a tf.function (the portable exact searcher);
- `portable`: the stock-op partitioned searcher (k-means leaves, padded);
Recall@10 against exact top-10; single-query p50/p99 (each searcher answers
blocks of consecutive queries, blocks rotating across searchers over 5 rounds);
batched queries/s; build time and bytes per item; exact search's achieved
memory bandwidth against a measured memcpy. Writes bench/results/index.json and index.png.

    python -m bench.index [--quick] [--sizes 10000,100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
DIM, K, BATCH = 64, 10, 250


def clustered(num_items: int, dim: int = DIM, num_queries: int = 1000, seed: int = 0):
    """Unit-norm item embeddings [N, dim] around Zipf-weighted topics, and queries [Q, dim].

    2 sqrt(N) topic centres ~ N(0, I); an item is its topic's centre plus
    N(0, 0.7^2 I) noise, normalised; a query mixes a topic (drawn by the same
    popularity) with a second one at weight 0.3, plus noise (not normalised,
    like a query tower's output).
    """
    rng = np.random.default_rng(seed)
    topics = max(4, int(2 * np.sqrt(num_items)))
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, topics + 1) ** 0.8
    weights /= weights.sum()
    items = np.empty((num_items, dim), np.float32)
    for start in range(0, num_items, 100_000):
        n = min(100_000, num_items - start)
        rows = centres[rng.choice(topics, size=n, p=weights)]
        rows += 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        items[start : start + n] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    first, second = rng.choice(topics, size=(2, num_queries), p=weights)
    queries = centres[first] + 0.3 * centres[second]
    queries += 0.7 * rng.standard_normal((num_queries, dim), dtype=np.float32)
    return items, queries.astype(np.float32)


def memory_bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """Best-of-repeats memcpy bandwidth (GB/s, bytes read + written) on `mib` MiB arrays."""
    src = np.ones(mib * 2**18, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pybind_searcher(items: np.ndarray, params):
    """ScaNN's pybind searcher with the index's config (reference latency)."""
    import scann

    builder = scann.scann_ops_pybind.builder(items, K, "dot_product").tree(
        num_leaves=params.num_leaves,
        num_leaves_to_search=params.num_leaves_to_search,
        training_sample_size=params.training_sample_size,
    )
    builder = builder.score_ah(
        params.dimensions_per_block,
        anisotropic_quantization_threshold=params.anisotropic_threshold,
        training_sample_size=params.training_sample_size,
    )
    return builder.reorder(params.reorder).build()


class _Pybind:
    """Adapter: pybind searcher -> search(queries) like the tf.Module searchers."""

    def __init__(self, searcher, params):
        self.searcher, self.params, self.k = searcher, params, K
        self.max_batch = BATCH  # ScaNN's own batched search bounds its memory

    def search(self, queries):
        q = np.asarray(queries, np.float32)
        kwargs = dict(
            final_num_neighbors=K,
            pre_reorder_num_neighbors=self.params.reorder,
            leaves_to_search=self.params.num_leaves_to_search,
        )
        if len(q) == 1:
            return self.searcher.search(q[0], **kwargs)[0][None, :], None
        return self.searcher.search_batched_parallel(q, **kwargs)[0], None


def _single_latencies(searchers: dict, queries: np.ndarray, rounds: int = 5) -> dict:
    """p50/p99 ms of one-query calls: each searcher runs a block of consecutive queries,
    the blocks rotate over `rounds` rounds (so load changes hit all searchers alike, and one
    searcher's memory traffic, e.g. exact's 256 MB scan, does not evict another's data)."""
    import tensorflow as tf

    times = {name: [] for name in searchers}
    names = list(searchers)
    for r, block in enumerate(np.array_split(queries, rounds)):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            searcher = searchers[name]
            for row in block:
                query = row[None, :] if name == "scann_pybind" else tf.constant(row[None, :])
                start = time.perf_counter()
                np.asarray(searcher.search(query)[0])
                times[name].append(time.perf_counter() - start)
    return {
        name: {"p50_ms": 1e3 * np.percentile(t, 50), "p99_ms": 1e3 * np.percentile(t, 99)}
        for name, t in times.items()
    }


def _batched_qps(searcher, queries: np.ndarray, repeats: int = 3) -> float:
    """Median queries/s over repeats of searching all queries in batches of BATCH (or the
    searcher's max_batch, if smaller)."""
    import tensorflow as tf

    from models.search.searchers import chunks

    batches = chunks(queries, min(BATCH, searcher.max_batch))
    if not isinstance(searcher, _Pybind):
        batches = [tf.constant(b) for b in batches]
    run = lambda: [np.asarray(searcher.search(b)[0]) for b in batches]  # noqa: E731
    run()
    return len(queries) / float(np.median([_timed(run) for _ in range(repeats)]))


def run_size(num_items: int, num_queries: int, bandwidth: float) -> dict:
    """Builds the index for N items and measures every searcher; returns the N's row."""
    from components.scann_index_builder import evaluate
    from models.search import index as I
    from models.search.params import choose_params

    items, queries = clustered(num_items, num_queries=num_queries)
    params = choose_params(num_items)
    print(f"--- N = {num_items:,}: {params}", flush=True)
    start = time.perf_counter()
    index = I.build_index([str(i) for i in range(num_items)], items, params)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    pybind = _Pybind(pybind_searcher(items, params), params) if not params.exact else None
    pybind_build_s = time.perf_counter() - start
    searchers = {
        "scann": I.scann_searcher(index, K),
        "exact": I.ExactSearcher(items, K),
        "portable": I.portable_searcher(index, K),
    } | ({"scann_pybind": pybind} if pybind else {})
    print(f"    built in {build_s:.1f} s {index.metrics}; pybind {pybind_build_s:.1f} s")
    found = {n: evaluate.search_all(s, queries, BATCH) for n, s in searchers.items()}
    recall = {n: evaluate.recall_at_k(f, found["exact"]) for n, f in found.items()}
    for s in searchers.values():  # warm-up: trace, and rebuild ScaNN's handle
        s.search(queries[:1])
    single = _single_latencies(searchers, queries)
    qps = {n: _batched_qps(s, queries) for n, s in searchers.items()}
    exact_bytes = items.nbytes  # read once per query
    exact_s = single["exact"]["p50_ms"] / 1e3
    row = {
        "recall@10": recall["scann"],
        "scann_p50_ms": single["scann"]["p50_ms"],
        "scann_p99_ms": single["scann"]["p99_ms"],
        "exact_p50_ms": single["exact"]["p50_ms"],
        "exact_p99_ms": single["exact"]["p99_ms"],
        "speedup_p50": single["exact"]["p50_ms"] / single["scann"]["p50_ms"],
        "build_s": build_s,
        "scann_build_s": index.metrics.get("scann_build_s", 0.0),
        "portable_build_s": index.metrics.get("partitions_build_s", 0.0),
        "exact_gb_per_s": exact_bytes / exact_s / 1e9,
        "exact_fraction_of_bandwidth": exact_bytes / exact_s / 1e9 / bandwidth,
        "params": params.to_dict(),
        "searchers": {
            n: {"recall@10": recall[n], **single[n], "batched_qps": qps[n]} for n in searchers
        },
    }
    if pybind:
        row["scann_pybind_p50_ms"] = single["scann_pybind"]["p50_ms"]
        row["scann_pybind_build_s"] = pybind_build_s
    return row | _footprint(index)


def _footprint(index) -> dict:
    """Bytes per item of each searcher's tensors."""
    n = len(index.item_ids)
    assets = index.scann_assets or {}
    out = {
        "scann_bytes_per_item": sum(np.asarray(v).nbytes for v in assets.values()) / n,
        "ah_code_bytes_per_item": assets["hashed_dataset"].nbytes / n if assets else 0.0,
        "exact_bytes_per_item": index.embeddings.nbytes / n,
    }
    if index.partitions is not None:
        leaf_items = index.partitions.leaf_items
        out["portable_bytes_per_item"] = (leaf_items.size * DIM * 4 + leaf_items.nbytes) / n
    return out


def plot(results: dict, path: str) -> None:
    """Single-query p50 latency per N for each searcher (log-log), recall in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(n) for n in results)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for name in ("exact", "portable", "scann", "scann_pybind"):
        points = [(n, results[str(n)]["searchers"].get(name)) for n in sizes]
        points = [(n, s) for n, s in points if s]
        if not points:
            continue
        recall = ", ".join(f"{s['recall@10']:.3f}" for _, s in points)
        ax.plot(
            [n for n, _ in points],
            [s["p50_ms"] for _, s in points],
            marker="o",
            label=f"{name} (recall@10 {recall})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalog size N (64-d)")
    ax.set_ylabel("single-query p50 latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("B3: ScaNN vs exact search (2 shared CPU cores)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(results: dict, bandwidth: float) -> str:
    head = "N          recall@10  scann p50/p99 ms  pybind p50  exact p50 ms  speedup  "
    head += "portable p50 (recall)  build s  B/item  exact GB/s"
    lines = [head]
    for n, r in sorted(results.items(), key=lambda kv: int(kv[0])):
        p = r["searchers"]["portable"]
        lines.append(
            f"{int(n):<10,} {r['recall@10']:<10.4f} "
            f"{r['scann_p50_ms']:6.2f} / {r['scann_p99_ms']:<7.2f} "
            f"{r.get('scann_pybind_p50_ms', float('nan')):<11.2f} "
            f"{r['exact_p50_ms']:<13.2f} {r['speedup_p50']:<8.1f} "
            f"{p['p50_ms']:6.2f} ({p['recall@10']:.4f})       "
            f"{r['build_s']:<8.1f} {r['scann_bytes_per_item']:<7.0f} {r['exact_gb_per_s']:.1f}"
        )
    lines.append(f"memory bandwidth (memcpy, read + write): {bandwidth:.1f} GB/s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k, 300 queries")
    parser.add_argument("--sizes", default="", help="comma-separated catalog sizes")
    parser.add_argument("--queries", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(RESULTS, "index.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    )
    num_queries = args.queries or (300 if args.quick else 1000)
    bandwidth = memory_bandwidth_gbs()
    print(f"memory bandwidth (memcpy, read + write): {bandwidth:.1f} GB/s", flush=True)
    results = {}
    for n in sizes:
        results[str(n)] = run_size(n, num_queries, bandwidth)
    meta = {"queries": num_queries, "dim": DIM, "k": K, "bandwidth_gb_per_s": bandwidth}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({**results, "_meta": meta}, f, indent=2, default=float)
    os.replace(tmp, args.out)
    plot(results, os.path.splitext(args.out)[0] + ".png")
    print(f"wrote {args.out}")
    print(table(results, bandwidth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
