"""BENCHMARKS B5: wall time of the whole local pipeline per component, and peak RSS.

Runs `python -m pipeline run` cold (fresh work dir, no cache) on the synthetic
default data and on ML-100K, each in a child process, and reads the per-component
times from the run's summary (MLMD execution times). The local runner runs
independent components at once in worker processes (`--workers`, default 2), so
peak RSS is the largest sum over the whole process tree (sampled every 0.2 s),
with the same for PSS (shared pages split, not counted per process) and the
largest single process beside it. CPU seconds over wall seconds
says how many of the 2 cores the run kept busy. Each dataset runs `--repeats` times
(default 3): the run of median wall time is reported, every run's wall time beside it,
and the peaks are the largest of any run. Writes bench/results/pipeline.json and
pipeline.png.

    python -m bench.pipeline [--quick] [--ml100k PATH] [--workers N] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from pipeline.cli import run_directory
from pipeline.config import LOCAL_WORKERS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
DEFAULT_ML100K = os.path.join(REPO, "..", "shared", "data", "ml-100k")


class TreeRss:
    """Samples the resident memory of a process and all its descendants: the sum of
    their RSS (`peak_bytes`; pages shared between them, such as TF's libraries,
    count once per process) and of their PSS (`peak_pss_bytes`; shared pages split
    between the processes that map them: what the tree takes from the machine).
    `peak_processes` is what made up the RSS peak, `peak_at_s` when it came,
    `peak_one_process_bytes` the largest single process.

    RSS is read every `every_s` (/proc/PID/statm: cheap); PSS, which walks every
    mapping of a process (smaps_rollup), only on a sample that sets a new RSS peak and
    otherwise every `pss_every_s`, so `peak_pss_bytes` can miss a PSS peak shorter than
    that. Reading PSS on every sample cost 16-21% of one of the 2 cores at 0.2 s, taken
    from the run being measured. `sampler_cpu_s` is what the sampler itself used.

    `cpu_s()` sums each process's user + system CPU seconds as last sampled. The
    runner's components run in processes forked from a fork server that outlives the
    runner, so the OS's own count (getrusage of waited-for children) misses them; this
    misses only each process's last sampling interval."""

    def __init__(self, pid: int, every_s: float = 0.2, pss_every_s: float = 2.0):
        self.peak_bytes = self.peak_pss_bytes = self.peak_one_process_bytes = 0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU s
        self._roles: dict[tuple[int, float], str] = {}
        self.peak_processes: list[dict] = []
        self.peak_at_s = self.sampler_cpu_s = 0.0
        self._root, self._every, self._start = psutil.Process(pid), every_s, time.time()
        self._pss_every, self._pss_at = pss_every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _role(self, p: psutil.Process) -> str:
        key = (p.pid, p.create_time())
        if key not in self._roles:
            self._roles[key] = _role(p.cmdline(), p == self._root, p.ppid() == self._root.pid)
        return self._roles[key]

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self._sample_once()
            self.sampler_cpu_s = time.thread_time()

    def _sample_once(self) -> None:
        rows = []
        try:
            procs = [self._root, *self._root.children(recursive=True)]
            for p in procs:
                rss, cpu = p.memory_info().rss, p.cpu_times()
                self._cpu[(p.pid, p.create_time())] = cpu.user + cpu.system
                rows.append((p, self._role(p), rss))
        except psutil.Error:  # a process ended between listing and reading
            return
        total = sum(r[2] for r in rows)
        self.peak_one_process_bytes = max(self.peak_one_process_bytes, *(r[2] for r in rows))
        now = time.time()
        if total <= self.peak_bytes and now - self._pss_at < self._pss_every:
            return
        try:
            pss = [p.memory_full_info().pss for p, _, _ in rows]
        except psutil.Error:
            return
        self._pss_at = now
        self.peak_pss_bytes = max(self.peak_pss_bytes, sum(pss))
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_at_s = total, round(now - self._start, 1)
            self.peak_processes = [
                {"process": role, "rss_gib": round(r / 2**30, 2), "pss_gib": round(s / 2**30, 2)}
                for (_, role, r), s in sorted(zip(rows, pss, strict=True), key=lambda x: -x[0][2])
                if r >= 2**26  # 64 MiB: leaves out the launchers and trackers
            ]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_s(self) -> float:
        return sum(self._cpu.values())


PEAK_KEYS = ("peak_rss_gib", "peak_pss_gib", "peak_rss_one_process_gib")


def _role(cmdline: list[str], root: bool, root_child: bool = False) -> str:
    """A process of the run, by what it is: the CLI, the fork server, a component's
    process, a Beam worker..."""
    line = " ".join(cmdline)
    if root:
        return "pipeline CLI (runner)"
    if "multiprocessing.forkserver import main" in line:  # forked children keep its argv
        return "fork server" if root_child else "component process"
    for marker, role in (
        ("--multiprocessing-fork", "runner worker"),
        ("sdk_worker_main", "Beam worker"),
        ("models.serving.canary", "canary"),
    ):
        if marker in line:
            return role
    return line[-60:]


def run_once(
    data: str, tag: str, workers: int, extra_args=(), keep_work: str | None = None
) -> dict:
    """One cold run in a child process; returns wall time, peak RSS and component times
    (and, when the run got that far, the index's metrics and the push decision).
    `extra_args` go to `python -m pipeline run`, e.g. ("--until", "Transform").
    `keep_work`: an empty or new directory to run in and keep (its pipeline root can then
    be profiled stage by stage, e.g. with bench.trainer_run or bench.ranking_eval)."""
    if keep_work and os.path.isdir(keep_work) and os.listdir(keep_work):
        raise SystemExit(f"--keep-work {keep_work}: the directory is not empty")
    with contextlib.nullcontext(keep_work) if keep_work else tempfile.TemporaryDirectory() as work:
        os.makedirs(work, exist_ok=True)
        cmd = [sys.executable, "-m", "pipeline", "run", "--data", data, "--work-dir", work]
        cmd += ["--no-cache", "--workers", str(workers), *extra_args]
        start = time.time()
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        rss = TreeRss(proc.pid)
        output = proc.communicate()[0]
        wall = time.time() - start
        rss.stop()
        cpu = rss.cpu_s()
        if proc.returncode:
            sys.stderr.write(output[-6000:])
            raise SystemExit(f"{tag}: the pipeline failed (exit {proc.returncode})")
        summary = json.load(open(os.path.join(run_directory(work, data), "summary.json")))
    return {
        "wall_s": round(wall, 1),
        "pipeline_s": summary["wall_s"],
        "workers": workers,
        "cpu_s": round(cpu, 1),
        "cores_busy": round(cpu / wall, 2),
        "peak_rss_gib": round(rss.peak_bytes / 2**30, 2),
        "peak_pss_gib": round(rss.peak_pss_bytes / 2**30, 2),
        "peak_rss_one_process_gib": round(rss.peak_one_process_bytes / 2**30, 2),
        "peak_at_s": rss.peak_at_s,
        "peak_processes": rss.peak_processes,
        "sampler_cpu_s": round(rss.sampler_cpu_s, 1),
        "components": {k: v["seconds"] for k, v in summary["components"].items()},
        "counts": summary["counts"],
        **{k: summary[k] for k in ("index", "push") if summary.get(k)},
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle of an even count), with every run's
    wall time beside it and the peaks as the largest of any run (memory must fit in all).
    """
    if not runs:
        raise ValueError("median_run needs at least one run")
    chosen = sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]
    peaks = {key: max(r[key] for r in runs) for key in PEAK_KEYS}
    return {**chosen, **peaks, "repeats": len(runs), "wall_s_runs": [r["wall_s"] for r in runs]}


def _cell(value) -> str:
    return "/".join(f"{v:.0f}" for v in value) if isinstance(value, list) else str(value)


def plot(results: dict, path: str) -> None:
    """Stacked bars of seconds per component for each dataset, one colour per component
    in every row, and each run's wall time marked: components that ran side by side sum
    to more than the wall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = list(dict.fromkeys(c for r in results.values() for c in r["components"]))
    palette = plt.get_cmap("tab20").colors
    colour = {c: palette[i % len(palette)] for i, c in enumerate(comps)}
    fig, ax = plt.subplots(figsize=(11, 2.5 + 0.6 * len(results)))
    for row, r in enumerate(results.values()):
        left = 0.0
        for comp in comps:
            secs = r["components"].get(comp, 0.0)
            ax.barh(row, secs, left=left, color=colour[comp], label=comp if row == 0 else None)
            left += secs
        wall = r["wall_s"]
        ax.plot([wall, wall], [row - 0.45, row + 0.45], color="black", linewidth=2)
        ax.annotate(f"wall {wall:.0f} s", (wall, row + 0.45), fontsize=8, ha="center", va="bottom")
    ax.set_yticks(range(len(results)), list(results))
    ax.set_xlabel("seconds per component (cold run; the black mark is the run's wall time)")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    """Runs B5 and prints a table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="synthetic:small instead of default")
    p.add_argument("--ml100k", default=DEFAULT_ML100K)
    p.add_argument(
        "--workers", type=int, default=LOCAL_WORKERS, help="the local runner's worker processes"
    )
    p.add_argument(
        "--datasets",
        default="synthetic,ml-100k",
        help="comma-separated subset; the last results of the others are kept",
    )
    p.add_argument(
        "--repeats",
        type=int,
        help="cold runs per dataset; the median run is reported (default 3, 1 with --quick)",
    )
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        p.error(f"--repeats {repeats}: need at least 1")
    wanted = set(args.datasets.split(","))
    datasets = {"synthetic": "synthetic:small" if args.quick else "synthetic"}
    if os.path.exists(os.path.join(args.ml100k, "u.data")):
        datasets["ml-100k"] = f"movielens-100k:{os.path.abspath(args.ml100k)}"
    else:
        print(f"ML-100K not found at {args.ml100k}: skipping it")
    path = os.path.join(RESULTS, "pipeline.json")
    results = {}
    if os.path.exists(path) and not args.quick:
        with open(path) as f:
            results = {k: v for k, v in json.load(f).items() if k in datasets and k not in wanted}
    for name, data in datasets.items():
        if name not in wanted:
            continue
        runs = []
        for i in range(repeats):
            print(f"running the pipeline on {data} (cold, run {i + 1}/{repeats}) ...", flush=True)
            before = os.getloadavg()
            runs.append(run_once(data, name, args.workers))
            runs[-1]["load_before"] = [round(x, 2) for x in before]
            print(f"  wall {runs[-1]['wall_s']} s, peak RSS {runs[-1]['peak_rss_gib']} GiB")
        results[name] = median_run(runs)
        results[name]["measured"] = time.strftime("%Y-%m-%d %H:%M")
    os.makedirs(RESULTS, exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(RESULTS, "pipeline.png"))
    comps = list(dict.fromkeys(c for r in results.values() for c in r["components"]))
    print(f"\n{'component':<30}" + "".join(f"{n:>14}" for n in results))
    for c in comps:
        print(f"{c:<30}" + "".join(f"{r['components'].get(c, 0):>14.1f}" for r in results.values()))
    for key in ("wall_s", "wall_s_runs", "cpu_s", "cores_busy", "peak_rss_gib", "peak_pss_gib"):
        cells = (r.get(key, "-") for r in results.values())
        print(f"{key:<30}" + "".join(f"{_cell(v):>14}" for v in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
