"""B4 client side: requests, the server subprocess and the load generators.

Requests are `serving_default` PredictRequests built with the official
tensorflow_serving.apis protos; the server is `python -m serving.server` on a free
loopback port; the load generators are a sequential loop (sync stub) and a closed loop
of C in-flight requests (grpc.aio, one channel), both with the official stubs.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np

from schemas import features as F
from schemas.serving import ITEM_IDS, SERVING_DEFAULT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = "recommender"
K = 10
CANDIDATES = 100  # the ranker's candidates per request (set at export)
TIMEOUT_S = 30.0
READY_TIMEOUT_S = 600.0
ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}


# -- requests -----------------------------------------------------------------------------
def _tensor(values: np.ndarray, dtype: str):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in values.shape]
    )
    if dtype == "string":
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            tensor_shape=shape,
            string_val=[str(v).encode() for v in values.ravel()],
        )
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_INT64, tensor_shape=shape, int64_val=values.ravel().tolist()
    )


def make_requests(item_ids: list[str], count: int, seed: int = 0) -> list:
    """`count` serving_default PredictRequests: a random user, 20 distinct random items."""
    from tensorflow_serving.apis import predict_pb2

    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(count):
        history = rng.choice(len(item_ids), size=F.HISTORY_LENGTH, replace=False)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.model_spec.signature_name = SERVING_DEFAULT
        fields = {
            F.USER_ID: (np.array([f"bench-user-{rng.integers(1 << 20)}"]), "string"),
            F.AGE: (np.array([rng.integers(18, 70)]), "int64"),
            F.GENDER: (np.array([rng.choice(["M", "F"])]), "string"),
            F.OCCUPATION: (np.array([rng.choice(["student", "engineer", "other"])]), "string"),
            F.TIMESTAMP: (np.array([int(time.time())]), "int64"),
            F.HISTORY_ITEM_IDS: (np.array([[item_ids[i] for i in history]]), "string"),
        }
        for key, (values, dtype) in fields.items():
            request.inputs[key].CopyFrom(_tensor(values, dtype))
        requests.append(request)
    return requests


def read_item_ids(model_dir: str) -> list[str]:
    """Catalog ids from the export's assets.extra/items.tsv."""
    path = os.path.join(model_dir, "1", "assets.extra", "items.tsv")
    with open(path) as f:
        return [line.split("\t", 1)[0] for line in f if line.strip()]


def answer_ok(response) -> bool:
    """A full answer: K item ids, none empty."""
    ids = response.outputs[ITEM_IDS].string_val
    return len(ids) == K and all(ids)


# -- the server ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> dict:
    """VmRSS and VmHWM (peak) of a process, MiB, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


class Server:
    """`python -m serving.server` in a subprocess, on a free loopback port."""

    def __init__(self, model_base_path: str, log_path: str, flags=()):
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "serving.server", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--model-name", MODEL_NAME]
        cmd += ["--model-base-path", model_base_path, *flags]
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env={**os.environ, **ENV}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Polls GetModelStatus until AVAILABLE; returns the seconds it took."""
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

        start = time.perf_counter()
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(self.target))
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL_NAME
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        while time.perf_counter() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                status = stub.GetModelStatus(request, timeout=2.0).model_version_status
                if any(s.state == available for s in status):
                    return time.perf_counter() - start
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not AVAILABLE after {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> int:
        """SIGTERM, wait for a graceful exit (kill after 60 s); returns the exit code."""
        self.proc.terminate()
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


# -- load generators ----------------------------------------------------------------------
def run_sequential(target: str, requests: list, count: int):
    """One request at a time; returns (latencies ms, wall s, error counts)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    latencies, errors = [], Counter()
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        start = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            try:
                ok = answer_ok(stub.Predict(requests[i % len(requests)], timeout=TIMEOUT_S))
            except grpc.RpcError as exc:
                errors[exc.code().name] += 1
                continue
            latencies.append(1e3 * (time.perf_counter() - t))
            if not ok:
                errors["BAD_ANSWER"] += 1
        return latencies, time.perf_counter() - start, errors


async def _closed_loop(target: str, requests: list, count: int, concurrency: int):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    latencies, errors, ticket = [], Counter(), itertools.count()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def worker():
            while (i := next(ticket)) < count:
                t = time.perf_counter()
                try:
                    response = await stub.Predict(requests[i % len(requests)], timeout=TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                latencies.append(1e3 * (time.perf_counter() - t))
                if not answer_ok(response):
                    errors["BAD_ANSWER"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - start, errors


def run_concurrent(target: str, requests: list, count: int, concurrency: int):
    """`concurrency` requests in flight (closed loop); returns (latencies, wall s, errors)."""
    return asyncio.run(_closed_loop(target, requests, count, concurrency))


def run_in_process(model_dir: str, requests: list, count: int) -> dict[str, list[float]]:
    """Latencies (ms) of the model alone, through the server's Servable (no gRPC), per
    signature: serving_default, retrieve (query tower + search + exclusion) and rank
    (the ranker on 100 random catalog items), calls interleaved."""
    import gc

    import tensorflow as tf

    from serving.servable import Servable

    servable = Servable(os.path.join(model_dir, "1"), 1)
    arrays = [{k: tf.make_ndarray(v) for k, v in r.inputs.items()} for r in requests]
    ids = np.array([i.encode() for i in read_item_ids(model_dir)], dtype=object)
    rng = np.random.default_rng(2)
    ranked = [
        {**a, "candidate_item_ids": ids[rng.choice(len(ids), (1, CANDIDATES), replace=False)]}
        for a in arrays[:50]
    ]
    calls = {
        SERVING_DEFAULT: arrays,
        "retrieve": arrays,
        "rank": ranked,
    }
    latencies = {name: [] for name in calls}
    for i in range(count + 20):
        for name, inputs in calls.items():
            t = time.perf_counter()
            servable.run(servable.signatures[name], inputs[i % len(inputs)])
            if i >= 20:  # the first 20 rounds warm up
                latencies[name].append(1e3 * (time.perf_counter() - t))
    del servable
    gc.collect()
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the model's own capacity ---------------------------------------------------------------
CAPACITY_THREADS = 8


def _capacity_main(model_dir: str, count: int, repeats: int) -> dict:
    """In this (fresh) process, with the server's TF thread settings: `serving_default`
    called by CAPACITY_THREADS threads at once through the server's Servable, no gRPC, once
    per TF executor the server offers; median requests/s and CPU ms per request."""
    import threading

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # serving.server's default
    from serving import servable as S

    requests = [
        {k: tf.make_ndarray(v) for k, v in r.inputs.items()}
        for r in make_requests(read_item_ids(model_dir), 50, seed=3)
    ]
    servables = {e: S.Servable(os.path.join(model_dir, "1"), 1, e) for e in (S.AUTO, S.DEFAULT)}
    runs = {e: [] for e in servables}
    per_thread = max(1, count // CAPACITY_THREADS)

    def work(servable, offset):
        signature = servable.signatures[SERVING_DEFAULT]
        for i in range(per_thread):
            servable.run(signature, requests[(i + offset) % len(requests)])

    for servable in servables.values():
        work(servable, 0)  # warm-up
    for _ in range(repeats):  # executors interleaved, so load changes hit both alike
        for executor, servable in servables.items():
            threads = [
                threading.Thread(target=work, args=(servable, 7 * j))
                for j in range(CAPACITY_THREADS)
            ]
            wall, cpu = time.perf_counter(), time.process_time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done = per_thread * CAPACITY_THREADS
            runs[executor].append(
                (done / (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu) / done)
            )
    return {
        e: {
            "rps": float(np.median([r[0] for r in rs])),
            "cpu_ms": float(np.median([r[1] for r in rs])),
        }
        for e, rs in runs.items()
    }


def model_capacity(model_dir: str, count: int, repeats: int) -> dict:
    """`_capacity_main` in a fresh process (TF's thread settings are fixed at its start):
    {executor: {"rps", "cpu_ms"}}. What the model alone sustains on this machine's cores,
    to set against the server's figures (the difference is the RPC path)."""
    import json

    code = (
        "import json, sys; from bench.serving_client import _capacity_main; "
        "print('CAPACITY ' + json.dumps(_capacity_main(sys.argv[1], int(sys.argv[2]), "
        "int(sys.argv[3]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, model_dir, str(count), str(repeats)],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("CAPACITY ")]
    if out.returncode or not lines:
        raise RuntimeError(f"model capacity run failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("CAPACITY ") :])
