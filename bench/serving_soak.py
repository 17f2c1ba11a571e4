"""Soak: the server's RSS over N hot swaps under load (issue 20, item 10).

A model with the combined model's memory shape (a 100k-key item vocabulary and a 20k-key
user vocabulary as hash tables, a [100k, 32] embedding) is pushed N times as versions
2..N+1 while a client sends Predict requests without pause. After each swap, once the old
version is unloaded, the server's RSS is read from /proc. The same soak runs against the
server of a baseline commit (before the fix: restored tables were never destroyed) and
against this tree, side by side in one run.

    python -m bench.serving_soak [--swaps 30] [--baseline-commit 8151324]

Writes bench/results/serving_soak.json and .png; prints per-swap growth after swap 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
WORK = os.path.join(REPO, ".work", "bench", "soak")
MODEL = "soak"
ITEMS, USERS, DIM = 100_000, 20_000, 32


def export_template(path: str) -> None:
    """Writes the soak model (vocabulary tables + embeddings) to `path` with a manifest."""
    import tensorflow as tf

    from schemas import model_version

    class SoakModel(tf.Module):
        def __init__(self):
            items = tf.constant([f"item{i}" for i in range(ITEMS)])
            users = tf.constant([f"user{i}" for i in range(USERS)])
            init = tf.lookup.KeyValueTensorInitializer
            self.items = tf.lookup.StaticHashTable(init(items, tf.range(ITEMS, dtype=tf.int64)), -1)
            self.users = tf.lookup.StaticHashTable(init(users, tf.range(USERS, dtype=tf.int64)), -1)
            rng = np.random.default_rng(0)
            self.item_emb = tf.Variable(rng.normal(size=(ITEMS, DIM)).astype(np.float32))
            self.user_emb = tf.Variable(rng.normal(size=(USERS, DIM)).astype(np.float32))

        spec = [
            tf.TensorSpec([None], tf.string, "user_id"),
            tf.TensorSpec([None, None], tf.string, "history_item_ids"),
        ]

        @tf.function(input_signature=spec)
        def serving_default(self, user_id, history_item_ids):
            user = tf.gather(self.user_emb, tf.maximum(self.users.lookup(user_id), 0))
            hist = tf.gather(self.item_emb, tf.maximum(self.items.lookup(history_item_ids), 0))
            query = user + tf.reduce_mean(hist, 1)  # [B, DIM]
            scores, ids = tf.math.top_k(tf.matmul(query, self.item_emb, transpose_b=True), 10)
            return {"item_ids": ids, "scores": scores}

    module = SoakModel()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serving_default})
    model_version.write_manifest(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def copy_version(template: str, base: str, version: int) -> None:
    tmp = os.path.join(base, f".tmp-{version}")
    shutil.copytree(template, tmp)
    os.rename(tmp, os.path.join(base, str(version)))


class Client:
    """Sends Predict requests without pause; counts answers and failures."""

    def __init__(self, port: int):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(["user1", "user7"]))
        hist = [["item1", "item2", "item3"], ["item9", "x", ""]]
        request.inputs["history_item_ids"].CopyFrom(tf.make_tensor_proto(hist))
        self.request, self.ok, self.failed, self.last_version = request, 0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.stub.Predict(self.request, timeout=30)
                self.ok += 1
                self.last_version = response.model_spec.version.value
            except Exception as exc:  # noqa: BLE001 - counted once the server answered
                if self.ok:
                    self.failed.append(str(exc)[:200])
                time.sleep(0.1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.channel.close()


def unloaded(port: int, version: int) -> bool:
    """Whether `version` is END (unloaded) in GetModelStatus."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        states = {s.version: s.state for s in stub.GetModelStatus(request).model_version_status}
    return states.get(version) == get_model_status_pb2.ModelVersionStatus.State.END


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


def soak(label: str, pythonpath: str, template: str, swaps: int) -> dict:
    """Starts a server from `pythonpath`, swaps `swaps` times; RSS after each swap."""
    base = tempfile.mkdtemp(prefix=f"soak-{label}-", dir=WORK)
    copy_version(template, base, 1)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=pythonpath, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable, "-m", "serving.server", "--host", "127.0.0.1", "--port", str(port),
            "--model-name", MODEL, "--model-base-path", base, "--poll-seconds", "0.3"]  # fmt: skip
    log = open(os.path.join(WORK, f"server-{label}.log"), "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(argv, cwd=pythonpath, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = Client(port)
    rss = []
    try:
        client.start()
        wait(lambda: client.last_version == 1, 300, f"{label}: version 1 served")
        rss.append(rss_mib(server.pid))
        for version in range(2, swaps + 2):
            copy_version(template, base, version)
            wait(lambda v=version: client.last_version == v, 300, f"{label}: version {version}")
            wait(lambda v=version: unloaded(port, v - 1), 300, f"{label}: {version - 1} unloaded")
            time.sleep(0.3)
            rss.append(rss_mib(server.pid))
            print(f"{label}: swap {version - 1:2d}: RSS {rss[-1]:7.1f} MiB", flush=True)
    finally:
        client.stop()
        server.terminate()
        server.wait(timeout=60)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    return {"rss_mib": rss, "requests_ok": client.ok, "requests_failed": len(client.failed),
            "failures": client.failed[:5], **summarize(rss)}  # fmt: skip


def _slope(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.polyfit(np.arange(len(values)), values, 1)[0]) if len(values) > 1 else 0.0


def summarize(rss: list[float]) -> dict:
    """Growth after the second swap: total MiB, and least-squares slopes (MiB / swap) over
    every swap from the second and over the last half of the swaps.

    Args:
        rss: RSS after version 1 loaded (index 0) and after each swap (index i).
    """
    tail = rss[2:]
    if len(tail) < 2:
        return {"growth_after_swap2_mib": 0.0, "slope_mib_per_swap": 0.0,
                "slope_last_half_mib_per_swap": 0.0}  # fmt: skip
    return {
        "growth_after_swap2_mib": round(float(tail[-1] - tail[0]), 1),
        "slope_mib_per_swap": round(_slope(tail), 2),
        "slope_last_half_mib_per_swap": round(_slope(rss[len(rss) // 2 :]), 2),
    }


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, result in results.items():
        rss = result["rss_mib"]
        slope, last = result["slope_mib_per_swap"], result["slope_last_half_mib_per_swap"]
        text = f"{label}: {slope:+.2f} MiB/swap from swap 2, {last:+.2f} over the last half"
        ax.plot(range(len(rss)), rss, marker="o", ms=3, label=text)
    ax.axvline(2, color="grey", ls=":", lw=1)
    ax.set_xlabel("hot swaps (0: version 1 loaded)")
    ax.set_ylabel("server RSS, MiB")
    ax.set_title(f"Server RSS over hot swaps under load ({ITEMS // 1000}k-key vocabulary)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def baseline_tree(commit: str) -> str:
    """serving/ and schemas/ of `commit`, extracted into .work (for its server)."""
    path = os.path.join(WORK, f"baseline-{commit}")
    if not os.path.isdir(path):
        os.makedirs(path)
        archive = subprocess.run(["git", "archive", commit, "serving", "schemas"], cwd=REPO,
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", path], input=archive, check=True)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serving_soak", description=__doc__)
    p.add_argument("--swaps", type=int, default=30)
    p.add_argument("--baseline-commit", default="", help="also soak this commit's server")
    p.add_argument("--out", default=os.path.join(RESULTS, "serving_soak.json"))
    p.add_argument("--replot", action="store_true", help="re-summarize and re-plot --out only")
    args = p.parse_args(argv)
    if args.replot:
        with open(args.out) as f:
            saved = json.load(f)
        results = {k: {**r, **summarize(r["rss_mib"])} for k, r in saved["runs"].items()}
        return report(results, {**saved, "runs": results}, args.out)
    os.makedirs(WORK, exist_ok=True)
    template = os.path.join(WORK, "template")
    if not os.path.isdir(template):
        print(f"exporting the soak model to {template} ...", flush=True)
        export_template(template)
    runs = {}
    if args.baseline_commit:
        runs[f"before ({args.baseline_commit})"] = baseline_tree(args.baseline_commit)
    runs["this tree"] = REPO
    results = {label: soak(label, path, template, args.swaps) for label, path in runs.items()}
    saved = {"swaps": args.swaps, "items": ITEMS, "users": USERS, "dim": DIM,
             "machine": "2 cores shared by ~6 sessions (loaded)", "runs": results}  # fmt: skip
    return report(results, saved, args.out)


def report(results: dict, saved: dict, out: str) -> int:
    """Writes the JSON and the PNG, prints the table."""
    png = os.path.splitext(out)[0] + ".png"
    plot(results, png)
    with open(out, "w") as f:
        json.dump(saved, f, indent=2)
    cols = ("RSS start", "swap 2", "end", "MiB/swap", "last half", "failed/ok")
    print(f"\n{'server':<20} " + " ".join(f"{c:>9}" for c in cols))
    for label, r in results.items():
        rss = r["rss_mib"]
        failed = f"{r['requests_failed']}/{r['requests_ok']}"
        slope, last = r["slope_mib_per_swap"], r["slope_last_half_mib_per_swap"]
        values = (rss[0], rss[2], rss[-1], slope, last)
        print(f"{label:<20} " + " ".join(f"{v:9.1f}" for v in values) + f" {failed:>9}")
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
