"""Both trainers under MultiWorkerMirroredStrategy: two local worker processes (TF_CONFIG on
127.0.0.1), as Vertex AI Training or a TFJob starts them, train together; the chief's
export has the signatures, inputs and outputs of a single-worker export; the other worker
leaves nothing in the Trainer's directories."""

import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models.ranking.config import RankingConfig
from models.retrieval.config import RetrievalConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
WORKER = "tests.models.distributed_worker"

TRAINERS = {
    "retrieval": (
        "models.retrieval.trainer",
        lambda strategy: RetrievalConfig()
        .with_overrides(batch_size=32, epochs=1, steps_per_epoch=4, strategy=strategy)
        .to_dict(),
    ),
    # One full pass (no train_steps): the workers' last batches differ in number.
    "ranking": (
        "models.ranking.trainer",
        lambda strategy: RankingConfig(
            epochs=1, batch_size=64, strategy=strategy, warm_start=False
        ).to_dict(),
    ),
}


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def fn_args(tiny_data, root, name, strategy):
    return {
        "train_files": [tiny_data.raw("train")],
        "eval_files": [tiny_data.raw("eval")],
        "transform_output": tiny_data.transform_graph,
        "serving_model_dir": os.path.join(root, "model", "Format-Serving"),
        "model_run_dir": os.path.join(root, "model_run"),
        "eval_steps": 2,
        "custom_config": {name: TRAINERS[name][1](strategy)},
    }


def start(jobs, tf_config=None, scratch=None):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if scratch:
        env["TMPDIR"] = scratch  # where a non-chief worker's throwaway export goes
    spec = json.dumps([{"run_fn": TRAINERS[name][0], "fn_args": args} for name, args in jobs])
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, spec],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, what):
    try:
        out, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"{what} timed out:\n{out[-3000:]}")
    assert process.returncode == 0, f"{what} failed:\n{out[-4000:]}"
    return out


def contract(loaded):
    """{signature: (input specs, output specs)} of a loaded SavedModel."""
    out = {}
    for name, fn in loaded.signatures.items():
        inputs = {k: (v.dtype, tuple(v.shape)) for k, v in fn.structured_input_signature[1].items()}
        outputs = {k: (v.dtype, tuple(v.shape)) for k, v in fn.structured_outputs.items()}
        out[name] = (inputs, outputs)
    return out


def raw_examples(tiny_data, n=6):
    files = glob.glob(tiny_data.raw("eval"))
    return tf.stack(list(tf.data.TFRecordDataset(files, compression_type="GZIP").take(n)))


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """Both trainers on two workers, and alone on one, side by side (3 processes)."""
    root = tmp_path_factory.mktemp("multi_worker")
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    shared = {n: fn_args(tiny_data, str(root / "multi" / n), n, "multi_worker") for n in TRAINERS}
    single = {n: fn_args(tiny_data, str(root / "single" / n), n, "default") for n in TRAINERS}
    scratch = [str(root / f"tmp{i}") for i in range(2)]
    for d in scratch:
        os.makedirs(d)
    workers = [
        start(shared.items(), {"cluster": cluster, "task": {"type": "worker", "index": i}}, d)
        for i, d in enumerate(scratch)
    ]
    reference = start(single.items())
    logs = [finish(p, f"worker {i}") for i, p in enumerate(workers)]
    finish(reference, "single worker")
    return shared, single, scratch, logs


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_two_workers_train_and_export_the_single_worker_contract(runs, tiny_data, name):
    shared, single, scratch, logs = runs
    with open(os.path.join(shared[name]["model_run_dir"], "training_summary.json")) as f:
        summary = json.load(f)
    assert summary["strategy"] == {"name": "multi_worker", "replicas": 2}, logs[0][-2000:]
    # The non-chief's exports went to its scratch directory and were deleted.
    assert os.listdir(scratch[1]) == []
    assert os.listdir(scratch[0]) == []  # the chief wrote none there

    multi = tf.saved_model.load(shared[name]["serving_model_dir"])
    alone = tf.saved_model.load(single[name]["serving_model_dir"])
    assert contract(multi) == contract(alone)
    serialized = raw_examples(tiny_data)
    got = multi.signatures["serving_default"](examples=serialized)
    want = alone.signatures["serving_default"](examples=serialized)
    assert set(got) == set(want)
    for key, value in got.items():
        assert value.dtype == want[key].dtype and value.shape == want[key].shape, key
        if value.dtype.is_floating:
            assert np.all(np.isfinite(value.numpy())), key
