"""BENCHMARKS B4: the combined model behind the TF-Serving-compatible gRPC server.

For catalogs of 10k and 100k items (the tiny pipeline run's trained models, the catalog
grown with synthetic items: bench/serving_model.py), and each serving variant (portable:
stock TF ops, the required keys; scann: ScaNN ops, keys `*_scann`):
1. the model called in-process through the server's own Servable (no gRPC): the model's
   compute time, to separate it from the RPC path;
2. `python -m serving.server` started as a subprocess, ready when GetModelStatus says
   AVAILABLE; warm-up; then per repeat: sequential requests, and closed loops of 8 and
   32 in-flight requests (grpc.aio), all `serving_default` with a history of 20 random
   catalog ids and a random user (K=10, 100 candidates reranked, set at export), over
   loopback with the official tensorflow_serving.apis stubs; SIGTERM.
Medians over repeats; server VmRSS/VmHWM from /proc; machine load per run; the work per
request (bytes searched, ranker FLOPs) against measured memory bandwidth and matmul rate.
Writes bench/results/serving.json and serving.png, prints a table last.

    python -m bench.serving [--quick] [--sizes 10000,100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter

import numpy as np

from bench import serving_client as C
from bench import serving_model as M

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
WORK = os.path.join(REPO, ".work", "bench-serving")
PIPELINE_ROOT = os.path.join(WORK, "runs", "synthetic-tiny", "pipeline_root")
FULL = {
    "seq": 1000,
    "c8": 2000,
    "c32": 2000,
    "warmup": 300,
    "inproc": 300,
    "capacity": 1600,
    "repeats": 3,
}
# (label, exported variant, key suffix, extra server flags); the first gives the required keys.
CONFIGS = (
    ("portable", "portable", "", ()),
    ("scann", "scann", "_scann", ()),
    ("portable+batching", "portable", "_batching", ("--batching",)),
)
QUICK = {
    "seq": 300,
    "c8": 400,
    "c32": 400,
    "warmup": 100,
    "inproc": 100,
    "capacity": 400,
    "repeats": 1,
}


# -- statistics (pure) --------------------------------------------------------------------
def percentile(values, q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy's default) of a non-empty list."""
    if len(values) == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(np.asarray(values, np.float64), q))


def summarize(latencies_ms, wall_s: float | None = None) -> dict:
    """p50/p90/p99/mean in ms of one run, and requests/s when its wall time is given (NaNs
    when no request succeeded)."""
    if len(latencies_ms) == 0:
        nan = float("nan")
        return {"n": 0, "p50_ms": nan, "p90_ms": nan, "p99_ms": nan, "mean_ms": nan, "rps": 0.0}
    out = {
        "n": len(latencies_ms),
        "p50_ms": percentile(latencies_ms, 50),
        "p90_ms": percentile(latencies_ms, 90),
        "p99_ms": percentile(latencies_ms, 99),
        "mean_ms": float(np.mean(latencies_ms)),
    }
    if wall_s is not None:
        out["rps"] = len(latencies_ms) / wall_s if wall_s > 0 else float("nan")
    return out


def median_of(runs: list[dict], key: str) -> float:
    """The median of `key` over repeated runs."""
    return float(np.median([r[key] for r in runs]))


# -- one (N, variant) -----------------------------------------------------------------------
def bench_variant(model_dir: str, plan: dict, log_path: str, flags=()) -> tuple[dict, dict]:
    """In-process model latency, then the server: ready time, warm-up, repeats, memory."""
    requests = C.make_requests(C.read_item_ids(model_dir), 500, seed=1)
    print(f"    in-process model: {plan['inproc']} calls", flush=True)
    in_process = C.run_in_process(model_dir, requests, plan["inproc"])
    result = {"in_process": {name: summarize(lat) for name, lat in in_process.items()}}
    print(f"    model capacity: {C.CAPACITY_THREADS} threads, no gRPC", flush=True)
    result["capacity"] = C.model_capacity(model_dir, plan["capacity"], plan["repeats"])
    result["load_before"] = os.getloadavg()
    server = C.Server(model_dir, log_path, flags)
    try:
        result["ready_s"] = server.wait_ready()
        result["memory_loaded"] = C.memory_mib(server.proc.pid)
        print(f"    server ready in {result['ready_s']:.1f} s; warm-up", flush=True)
        C.run_sequential(server.target, requests, plan["warmup"])
        C.run_concurrent(server.target, requests, plan["warmup"], 32)
        errors, runs, samples = Counter(), {"seq": [], "c8": [], "c32": []}, {}
        for r in range(plan["repeats"]):
            for phase, conc in (("seq", 1), ("c8", 8), ("c32", 32)):
                cpu = C.cpu_seconds(server.proc.pid), time.process_time()
                if conc == 1:
                    lat, wall, err = C.run_sequential(server.target, requests, plan[phase])
                else:
                    lat, wall, err = C.run_concurrent(server.target, requests, plan[phase], conc)
                done = max(1, len(lat))
                errors.update(err)
                runs[phase].append(
                    {
                        **summarize(lat, wall),
                        "errors": sum(err.values()),
                        "server_cpu_ms": 1e3 * (C.cpu_seconds(server.proc.pid) - cpu[0]) / done,
                        "client_cpu_ms": 1e3 * (time.process_time() - cpu[1]) / done,
                        "load": os.getloadavg()[0],
                    }
                )
                samples.setdefault(phase, []).extend(lat)
                s = runs[phase][-1]
                print(
                    f"    repeat {r + 1} {phase:>3}: p50 {s['p50_ms']:.2f} ms, "
                    f"p99 {s['p99_ms']:.2f} ms, {s['rps']:.0f} req/s, errors {s['errors']}",
                    flush=True,
                )
        result["memory"] = C.memory_mib(server.proc.pid)
    finally:
        result["exit_code"] = server.stop()
    result.update(runs=runs, errors=dict(errors), load_after=os.getloadavg())
    return result, samples


def reduce_variant(result: dict, suffix: str) -> dict:
    """The required keys (with `suffix`) and a few extras from one variant's runs."""
    runs = result["runs"]
    out = {
        "p50_ms": median_of(runs["seq"], "p50_ms"),
        "p99_ms": median_of(runs["seq"], "p99_ms"),
        "rps_c8": median_of(runs["c8"], "rps"),
        "p50_ms_c8": median_of(runs["c8"], "p50_ms"),
        "p99_ms_c8": median_of(runs["c8"], "p99_ms"),
        "rps_c32": median_of(runs["c32"], "rps"),
        "p50_ms_c32": median_of(runs["c32"], "p50_ms"),
        "p99_ms_c32": median_of(runs["c32"], "p99_ms"),
        "errors": int(sum(result["errors"].values())),
        "server_rss_mib": round(result["memory"]["VmRSS"], 1),
        "server_peak_rss_mib": round(result["memory"]["VmHWM"], 1),
        "server_cpu_ms_per_request_c8": median_of(runs["c8"], "server_cpu_ms"),
        "client_cpu_ms_per_request_c8": median_of(runs["c8"], "client_cpu_ms"),
    }
    for name, key in (("serving_default", "model"), ("retrieve", "retrieve"), ("rank", "rank")):
        out[f"{key}_p50_ms"] = result["in_process"][name]["p50_ms"]
        out[f"{key}_p99_ms"] = result["in_process"][name]["p99_ms"]
    # What 2 otherwise idle cores could serve if only the server's CPU time counted.
    out["rps_2core_ceiling"] = 2e3 / out["server_cpu_ms_per_request_c8"]
    # The model alone (8 threads, no gRPC) per executor; the server's CPU beyond the model's
    # is its RPC path (gRPC, protos, request checks).
    for executor, figures in result["capacity"].items():
        out[f"model_rps_8_threads_{executor}"] = figures["rps"]
        out[f"model_cpu_ms_{executor}"] = figures["cpu_ms"]
    model_cpu = result["capacity"]["auto"]["cpu_ms"]
    out["rpc_path_cpu_ms"] = out["server_cpu_ms_per_request_c8"] - model_cpu
    return {f"{k}{suffix}": v for k, v in out.items()}


def physical_bound(cost: dict, variant: str, machine: dict) -> dict:
    """Bytes and FLOPs per request and the time they take at the measured machine rates."""
    read = cost[f"search_bytes_{variant}"]
    flops = cost["ranker_flops"]
    bound_ms = 1e3 * (read / (machine["memory_gbs"] * 1e9) + flops / (machine["gflops"] * 1e9))
    return {"search_mb": read / 1e6, "ranker_mflops": flops / 1e6, "bound_ms": bound_ms}


def measure_machine() -> dict:
    """memcpy bandwidth (GB/s, best of 5) and float32 matmul rate (GFLOP/s, numpy, best of 20)."""
    from bench.index import memory_bandwidth_gbs

    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    best = min(_timed(lambda: a @ a) for _ in range(20))
    return {"memory_gbs": memory_bandwidth_gbs(256), "gflops": 2 * 512**3 / best / 1e9}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- report -------------------------------------------------------------------------------
def plot(samples: dict, path: str) -> None:
    """Latency CDFs per N: sequential and c8, per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({n for n, _ in samples}, key=int)
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        for (size, variant), phases in sorted(samples.items()):
            if size != n:
                continue
            for phase, style in (("seq", "-"), ("c8", "--")):
                lat = np.sort(phases[phase])
                ax.plot(
                    lat, np.arange(1, len(lat) + 1) / len(lat), style, label=f"{variant} {phase}"
                )
        ax.set(title=f"{int(n):,} items", xlabel="latency (ms, log)", ylabel="CDF", xscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict) -> str:
    """The short table printed last."""
    head = (
        f"{'N':>7} {'config':>17} {'p50':>6} {'p99':>6} {'rps c8':>7} {'p99 c8':>7} "
        f"{'rps c32':>7} {'p99 c32':>7} {'err':>4} {'RSS MiB':>8} {'model p50':>9} {'bound':>6} "
        f"{'CPU/req':>7} {'model':>6} {'model rps':>9}"
    )
    lines = [head + "   (ms, medians)"]
    for n, entry in results.items():
        for variant, _, sfx, _ in CONFIGS:
            if f"p50_ms{sfx}" not in entry:
                continue
            g = {k[: -len(sfx)] if sfx else k: v for k, v in entry.items() if k.endswith(sfx)}
            lines.append(
                f"{n:>7} {variant:>17} {g['p50_ms']:6.2f} {g['p99_ms']:6.2f} {g['rps_c8']:7.0f} "
                f"{g['p99_ms_c8']:7.2f} {g['rps_c32']:7.0f} {g['p99_ms_c32']:7.2f} "
                f"{g['errors']:4d} {g['server_rss_mib']:8.0f} {g['model_p50_ms']:9.2f} "
                f"{g['bound_ms']:6.3f} {g['server_cpu_ms_per_request_c8']:7.2f} "
                f"{g.get('model_cpu_ms_auto', float('nan')):6.2f} "
                f"{g.get('model_rps_8_threads_auto', float('nan')):9.0f}"
            )
    lines.append(
        "CPU/req: server CPU ms per request at c8; model: CPU ms per request and model rps: "
        "requests/s of the model alone (8 threads through the Servable, no gRPC)"
    )
    return "\n".join(lines)


def verdict(entry: dict, sfx: str = "") -> str:
    """The B4 targets at 100k items for one config (its key suffix, "" = portable)."""
    checks = {
        "p50 <= 10 ms": entry[f"p50_ms{sfx}"] <= 10,
        "p99 <= 25 ms": entry[f"p99_ms{sfx}"] <= 25,
        ">= 300 req/s at c8": entry[f"rps_c8{sfx}"] >= 300,
        "no errors": entry[f"errors{sfx}"] == 0,
    }
    return ", ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in checks.items())


# -- main ---------------------------------------------------------------------------------
def ensure_pipeline_run() -> None:
    """Runs the tiny pipeline up to the assembler unless its models exist (MLMD caches)."""
    try:
        M.pipeline_inputs(PIPELINE_ROOT)
        return
    except FileNotFoundError:
        pass
    cmd = [sys.executable, "-m", "pipeline", "run", "--data", "synthetic:tiny"]
    cmd += ["--work-dir", WORK, "--ranking-min-auc", "0", "--until", "RecommenderAssembler"]
    print("running the tiny pipeline once: " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=REPO, env={**os.environ, **C.ENV}, check=True)


def run_size(n: int, plan: dict, machine: dict, samples: dict, configs, flags) -> dict:
    """Every config at one catalog size; the JSON entry for N."""
    print(f"== {n:,} items", flush=True)
    built = M.build_models(os.path.join(WORK, "models"), n, PIPELINE_ROOT)
    entry = {"variant": "portable", "uptime_start": uptime(), "machine": machine}
    for label, variant, sfx, config_flags in configs:
        print(f"  {label}", flush=True)
        log = os.path.join(WORK, f"server-{n}-{label}.log")
        model_dir, server_flags = built["dirs"][variant], [*config_flags, *flags]
        result, samples[(str(n), label)] = bench_variant(model_dir, plan, log, server_flags)
        entry.update(reduce_variant(result, sfx))
        entry.update(
            {f"{k}{sfx}": v for k, v in physical_bound(built["cost"], variant, machine).items()}
        )
        entry[f"rpc_overhead_p50_ms{sfx}"] = entry[f"p50_ms{sfx}"] - entry[f"model_p50_ms{sfx}"]
        entry[f"model_x_bound{sfx}"] = entry[f"model_p50_ms{sfx}"] / entry[f"bound_ms{sfx}"]
        entry[f"repeats{sfx}"] = result["runs"]
        entry[f"in_process{sfx}"] = result["in_process"]
        entry[f"server{sfx}"] = {
            k: result[k]
            for k in (
                "ready_s",
                "memory_loaded",
                "memory",
                "exit_code",
                "load_before",
                "load_after",
            )
        }
    entry["uptime_end"] = uptime()
    entry["cost"] = {k: v for k, v in built["cost"].items() if k != "sources"}
    entry["model_dirs"] = built["dirs"]
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10k items only, fewer requests")
    p.add_argument(
        "--sizes",
        help="comma-separated catalog sizes (default 10000,100000); rows of other sizes "
        "already in the result file are kept (the PNG shows the measured sizes only)",
    )
    p.add_argument("--repeats", type=int)
    p.add_argument("--no-batching", action="store_true", help="skip the --batching server")
    p.add_argument("--server-flag", action="append", default=[], help="extra serving.server flag")
    args = p.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.repeats:
        plan["repeats"] = args.repeats
    sizes = [int(s) for s in (args.sizes or ("10000" if args.quick else "10000,100000")).split(",")]
    configs = CONFIGS[:2] if args.no_batching else CONFIGS
    os.makedirs(RESULTS, exist_ok=True)
    ensure_pipeline_run()
    machine = measure_machine()
    print(f"machine: {machine}; {uptime()}", flush=True)
    results, samples = {}, {}
    for n in sizes:
        results[str(n)] = run_size(n, plan, machine, samples, configs, args.server_flag)
    name = "serving_quick" if args.quick else "serving"
    path = os.path.join(RESULTS, f"{name}.json")
    results = merge_results(path, results)
    write_json(results, path)
    plot(samples, os.path.join(RESULTS, f"{name}.png"))
    print(f"wrote bench/results/{name}.json and {name}.png")
    print(table(results))
    if "100000" in results:
        for label, _, sfx, _ in configs:
            print(f"B4 targets at 100k ({label}): " + verdict(results["100000"], sfx))
    return 0


def merge_results(path: str, results: dict) -> dict:
    """`results` plus the rows of other sizes already in `path`, by size."""
    kept = {}
    if os.path.exists(path):
        with open(path) as f:
            kept = {n: row for n, row in json.load(f).items() if n not in results}
    return dict(sorted({**kept, **results}.items(), key=lambda item: int(item[0])))


def write_json(results: dict, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
