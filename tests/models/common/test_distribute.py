"""models/common/distribute.py: TF_CONFIG reading, the chief's output, strategy names in
both configs, and the gradient scaling that makes a 2-replica step equal a 1-replica step."""

import json
import os
import subprocess
import sys

import pytest

from models.common import distribute
from models.ranking.config import RankingConfig
from models.retrieval.config import RetrievalConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def tf_config(monkeypatch, task_type, index, chief=False):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    if chief:
        cluster["chief"] = ["127.0.0.1:3"]
    spec = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    monkeypatch.setenv(distribute.TF_CONFIG, json.dumps(spec))


def test_chief_is_worker_zero_without_a_chief_task(monkeypatch):
    monkeypatch.delenv(distribute.TF_CONFIG, raising=False)
    assert distribute.is_chief()
    tf_config(monkeypatch, "worker", 0)
    assert distribute.is_chief()
    tf_config(monkeypatch, "worker", 1)
    assert not distribute.is_chief()
    tf_config(monkeypatch, "worker", 0, chief=True)
    assert not distribute.is_chief()
    tf_config(monkeypatch, "chief", 0, chief=True)
    assert distribute.is_chief()


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "TF_CONFIG is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' object"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}', "needs 'task'"),
    ],
)
def test_a_broken_tf_config_is_named(monkeypatch, raw, message):
    monkeypatch.setenv(distribute.TF_CONFIG, raw)
    with pytest.raises(ValueError, match=message):
        distribute.is_chief()


def test_output_dir_is_the_real_one_only_on_the_chief(monkeypatch, tmp_path):
    real = str(tmp_path / "serving")
    monkeypatch.delenv(distribute.TF_CONFIG, raising=False)
    with distribute.output_dir(real) as out:
        assert out == real
    tf_config(monkeypatch, "worker", 1)
    with distribute.output_dir(real) as out:
        assert out != real and not out.startswith(str(tmp_path))
        os.makedirs(out)
        open(os.path.join(out, "saved_model.pb"), "w").close()
    assert not os.path.exists(out) and not os.path.exists(real)


def test_both_configs_name_an_unknown_strategy():
    with pytest.raises(ValueError, match=r"RetrievalConfig\.training\.strategy must be one of"):
        RetrievalConfig().with_overrides(strategy="tpu")
    with pytest.raises(ValueError, match="ranking config: strategy must be one of"):
        RankingConfig(strategy="tpu")
    assert RetrievalConfig().with_overrides(strategy="multi_worker").training.strategy == (
        "multi_worker"
    )
    assert RankingConfig.from_dict({"strategy": "mirrored"}).strategy == "mirrored"


# Two logical CPUs make MirroredStrategy run 2 replicas in one process. One SGD step of
# the DIN ranker (PReLU: no batch statistics; no MBA: no per-batch id sets) on a global
# batch of 4 must move every weight as the 1-replica step on the same 4 rows does: the
# optimizer sums the replicas' gradients, so each replica's mean loss must count 1/2.
_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_keras
from models.common import distribute
from models.ranking import model as M
from models.ranking.config import RankingConfig
from schemas import features as F

T = F.transformed_name
sizes = {F.ITEM_ID: 5, F.PRIMARY_GENRE: 3, F.USER_ID: 4, F.GENDER: 2, F.OCCUPATION: 3,
         F.AGE: 8, F.HOUR_OF_DAY: 24, F.DAY_OF_WEEK: 7}
i = lambda v: tf.constant(v, tf.int64)
batch = {
    T(F.ITEM_ID): i([0, 2, 4, 1]), T(F.PRIMARY_GENRE): i([1, 1, 0, 2]),
    F.YEAR_NORMALIZED: tf.constant([0.5, -1.0, 0.2, 0.0]),
    T(F.HISTORY_ITEM_IDS): i([[2, 3], [1, -1], [0, 4], [3, -1]]),
    T(F.HISTORY_GENRES): i([[0, 2], [1, -1], [1, 0], [2, -1]]),
    F.HISTORY_MASK: tf.constant([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]),
    T(F.USER_ID): i([0, 1, 2, 3]), T(F.GENDER): i([0, 1, 1, 0]),
    T(F.OCCUPATION): i([2, 0, 1, 1]), T(F.AGE): i([3, 0, 7, 5]),
    F.HOUR_OF_DAY: i([1, 5, 23, 0]), F.DAY_OF_WEEK: i([0, 6, 3, 2]), F.LABEL: i([1, 0, 0, 1]),
}
config = RankingConfig(item_dim=3, genre_dim=2, user_dim=2, feature_dim=2,
                       attention_units=(4,), head_units=(4,), activation="prelu",
                       mba_lambda=0.0, lr_decay=False, seed=3)

def step(strategy):
    with strategy.scope():
        model = M.build_model(config, sizes, compile_model=False)
        before = [v.numpy() for v in model.trainable_variables]
        model.compile(optimizer=tf_keras.optimizers.SGD(1.0))
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    return [a - v.numpy() for a, v in zip(before, model.trainable_variables)], model

single, _ = step(tf.distribute.get_strategy())
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
double, model = step(mirrored)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "moved": float(max(np.abs(d).max() for d in single)),
    "diff": float(max(np.abs(a - b).max() for a, b in zip(single, double))),
    "ratio": float(sum(np.abs(b).sum() for b in double) / sum(np.abs(a).sum() for a in single)),
}))
"""


def test_two_replicas_take_the_one_replica_step():
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["moved"] > 1e-3  # the step moved the weights
    # Without the 1/replicas scaling the 2-replica step is twice as long (ratio 2).
    assert out["ratio"] == pytest.approx(1.0, abs=1e-4)
    assert out["diff"] < 1e-5
