"""The trainers' `tf.distribute` strategy, chosen by name in their config.

- "default": TF's default strategy (one device; what a run_fn without a strategy uses).
- "mirrored": `MirroredStrategy`, one replica per local GPU (the CPU when there is none).
- "multi_worker": `MultiWorkerMirroredStrategy` across the workers of `TF_CONFIG`
  (Vertex AI Training and Kubeflow's TFJob set it; see README "Scale"). Every worker runs
  the same run_fn; the chief writes the model and reports, the other workers write theirs
  to a scratch directory that is then deleted (saving may run collectives, so every
  worker saves).

Batch sizes stay global: Keras splits each batch over the replicas, so a two-tower batch
of 256 on two workers scores each query against its own replica's 128 in-batch
candidates. A custom `train_step` divides its loss by `replicas()` before the gradient,
as Keras' compiled losses do, because the optimizer sums the replicas' gradients.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

DEFAULT, MIRRORED, MULTI_WORKER = "default", "mirrored", "multi_worker"
STRATEGIES = (DEFAULT, MIRRORED, MULTI_WORKER)
TF_CONFIG = "TF_CONFIG"

_created: dict[str, tf.distribute.Strategy] = {}


def cluster() -> dict:
    """TF_CONFIG parsed ({} when unset); ValueError naming it when it is not JSON of a
    cluster and a task."""
    raw = os.environ.get(TF_CONFIG, "").strip()
    if not raw:
        return {}
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{TF_CONFIG} is not JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise ValueError(f"{TF_CONFIG} needs a 'cluster' object, got {raw[:200]!r}")
    task = spec.get("task") or {}
    if "type" not in task or "index" not in task:
        raise ValueError(
            f"{TF_CONFIG} needs 'task': {{'type': ..., 'index': ...}}, got {raw[:200]!r}"
        )
    return spec


def is_chief() -> bool:
    """True unless TF_CONFIG names this task as a non-chief: the 'chief' task, or worker 0
    of a cluster without one (TF's convention)."""
    spec = cluster()
    if not spec:
        return True
    task = spec["task"]
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and int(task["index"]) == 0 and "chief" not in spec["cluster"]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of a config name; one instance per name per process (TF allows
    MultiWorkerMirroredStrategy to be created once, before other TF ops run).
    Raises ValueError for an unknown name, RuntimeError when multi_worker comes too late."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == DEFAULT:
        return tf.distribute.get_strategy()  # the current scope's, else TF's default
    if name in _created:
        return _created[name]
    if name == MIRRORED:
        strategy = tf.distribute.MirroredStrategy()
    else:
        spec = cluster()
        if not spec:
            print(f"strategy=multi_worker without {TF_CONFIG}: one worker", flush=True)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:  # "Collective ops must be configured at program startup"
            raise RuntimeError(
                "strategy=multi_worker: MultiWorkerMirroredStrategy must be created before "
                f"this process runs any TF op ({e}); start the trainer in a fresh process"
            ) from e
    _created[name] = strategy
    return strategy


def replicas() -> int:
    """Replicas in sync of the current strategy (1 outside any)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def scaled_gradients(model, inputs) -> tuple[list, list, dict]:
    """tfrs.Model.train_step's loss, regularisation and total, and the gradients of
    total / replicas() (the optimizer sums the replicas' gradients; 1 replica: the
    plain gradients). Returns (gradients, trainable variables, the three losses)."""
    with tf.GradientTape() as tape:
        loss = model.compute_loss(inputs, training=True)
        regularization_loss = tf.add_n([tf.constant(0.0)] + list(model.losses))
        total_loss = loss + regularization_loss
        scaled_loss = total_loss / replicas()
    variables = model.trainable_variables
    losses = {"loss": loss, "regularization_loss": regularization_loss, "total_loss": total_loss}
    return tape.gradient(scaled_loss, variables), variables, losses


def workers(strategy: tf.distribute.Strategy) -> int:
    """Number of workers of `strategy` (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def shard_policy(dataset: tf.data.Dataset, strategy, n_files: int) -> tf.data.Dataset:
    """Sets the multi-worker auto-shard policy: by file when every worker gets a file,
    else by data (each worker reads everything and keeps every n-th batch)."""
    n = workers(strategy)
    if n <= 1:
        return dataset
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    files_enough = n_files >= n
    options.experimental_distribute.auto_shard_policy = policy.FILE if files_enough else policy.DATA
    return dataset.with_options(options)


def file_count(patterns) -> int:
    """Files matched by a glob or list of globs."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return sum(len(tf.io.gfile.glob(p)) for p in patterns)


@contextlib.contextmanager
def output_dir(path: str):
    """Yields `path` on the chief; on another worker a scratch directory, deleted after.
    Every worker writes (SavedModel saving may run collectives); only the chief's stays."""
    if is_chief():
        yield path
        return
    scratch = tempfile.mkdtemp(prefix="worker_output_")
    try:
        yield os.path.join(scratch, os.path.basename(path.rstrip("/")) or "out")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
