"""Small SavedModels with the combined model's signatures (DESIGN §5) for the server tests.

Each version adds its number to the ranker `scores`, so a hot swap is observable. The
`scann` variant retrieves with ScaNN's TF ops, like the combined model's scann variant.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import tensorflow as tf

from schemas import features as F
from schemas.serving import QUERY_SPEC

DIM = 4
RANK_SPEC = {**QUERY_SPEC, F.ITEM_ID: tf.TensorSpec([None, None], tf.string, F.ITEM_ID)}
EXAMPLES = "examples"


def item_ids(num_items: int) -> list[str]:
    """The toy catalog: "i0", "i1", ..."""
    return [f"i{n}" for n in range(num_items)]


class ToyRecommender(tf.Module):
    """Dot-product retrieval over a fixed catalog, a version-shifted "ranker" score.

    Args:
        version: added to `scores`.
        num_items: catalog size.
        k: items returned by serving_default.
        n_retrieve: items returned by retrieve.
    """

    def __init__(self, version: int, num_items: int = 50, k: int = 5, n_retrieve: int = 10):
        super().__init__()
        rng = np.random.default_rng(0)
        self.items = tf.constant(item_ids(num_items))
        self.item_emb = tf.Variable(rng.normal(size=(num_items, DIM)).astype(np.float32))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.items, tf.range(num_items, dtype=tf.int64)),
            default_value=-1,
        )
        self.offset = tf.constant(float(version))
        self.k, self.n_retrieve = k, n_retrieve

    def query(self, f: dict) -> tf.Tensor:
        """Query vectors [batch, DIM]: mean history embedding + user and age terms."""
        idx = self.table.lookup(f[F.HISTORY_ITEM_IDS])  # [B, L]
        known = tf.cast(idx >= 0, tf.float32)[..., None]
        hist = tf.gather(self.item_emb, tf.maximum(idx, 0)) * known  # [B, L, DIM]
        mean = tf.reduce_sum(hist, 1) / tf.maximum(tf.reduce_sum(known, 1), 1.0)
        user = tf.one_hot(tf.strings.to_hash_bucket_fast(f[F.USER_ID], DIM), DIM)
        age = tf.cast(f[F.AGE], tf.float32)[:, None] * 0.001
        return mean + 0.1 * user + age

    def retrieval_scores(self, f: dict) -> tf.Tensor:
        """Scores [batch, num_items]; history items get -1e9 (excluded)."""
        scores = tf.matmul(self.query(f), self.item_emb, transpose_b=True)
        seen = tf.reduce_any(f[F.HISTORY_ITEM_IDS][:, :, None] == self.items[None, None, :], 1)
        return tf.where(seen, -1e9, scores)

    def top(self, f: dict, k: int):
        values, indices = tf.math.top_k(self.retrieval_scores(f), k)
        return tf.gather(self.items, indices), values

    def recommend(self, f: dict) -> dict:
        ids, retrieval = self.top(f, self.k)
        return {"item_ids": ids, "scores": retrieval + self.offset, "retrieval_scores": retrieval}

    @tf.function(input_signature=[QUERY_SPEC])
    def serving_default(self, f):
        return self.recommend(f)

    @tf.function(input_signature=[QUERY_SPEC])
    def retrieve(self, f):
        ids, retrieval = self.top(f, self.n_retrieve)
        return {"item_ids": ids, "retrieval_scores": retrieval}

    @tf.function(input_signature=[RANK_SPEC])
    def rank(self, f):
        cand = tf.gather(self.item_emb, tf.maximum(self.table.lookup(f[F.ITEM_ID]), 0))
        scores = tf.reduce_sum(self.query(f)[:, None, :] * cand, -1)  # [B, C]
        return {"scores": scores + self.offset}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, EXAMPLES)])
    def serve_tf_examples(self, examples):
        spec = {
            F.USER_ID: tf.io.FixedLenFeature([], tf.string, F.UNKNOWN),
            F.AGE: tf.io.FixedLenFeature([], tf.int64, F.MISSING_INT),
            F.HISTORY_ITEM_IDS: tf.io.VarLenFeature(tf.string),
        }
        parsed = tf.io.parse_example(examples, spec)
        parsed[F.HISTORY_ITEM_IDS] = tf.sparse.to_dense(parsed[F.HISTORY_ITEM_IDS], F.PAD)
        return self.recommend(parsed)

    def signatures(self) -> dict:
        """The exported signatures."""
        return {
            "serving_default": self.serving_default,
            "retrieve": self.retrieve,
            "rank": self.rank,
            "serve_tf_examples": self.serve_tf_examples,
        }


class ToyScannRecommender(ToyRecommender):
    """The same retrieval through a ScaNN brute-force searcher (Scann> TF ops)."""

    def __init__(self, version: int, num_items: int = 50, k: int = 5):
        super().__init__(version, num_items, k)
        import scann

        db = self.item_emb.numpy()
        searcher = scann.scann_ops.builder(db, k, "dot_product").score_brute_force().build()
        self.scann_state = searcher.serialize_to_module()  # tracked: exported with the model

    @tf.function(input_signature=[QUERY_SPEC])
    def serving_default(self, f):
        from scann.scann_ops.py import scann_ops

        searcher = scann_ops.searcher_from_module(self.scann_state)
        indices, scores = searcher.search_batched(self.query(f))
        return {"item_ids": tf.gather(self.items, indices), "scores": scores + self.offset}

    def signatures(self) -> dict:
        return {"serving_default": self.serving_default}


def export(module: ToyRecommender, base_path: str, version: int) -> str:
    """Writes `base_path/<version>` atomically (temp dir, then rename), as the pusher does."""
    final = os.path.join(base_path, str(version))
    tmp = os.path.join(base_path, f".tmp-{version}")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures=module.signatures())
    os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp, "assets.extra", "items.tsv"), "w") as f:
        f.writelines(f"{item}\tTitle of {item}\n" for item in item_ids(50))
    os.rename(tmp, final)
    return final


def query_batch(rows: int = 2, length: int = 3, seed: int = 0) -> dict:
    """A valid QUERY_SPEC batch: name -> np.ndarray."""
    rng = np.random.default_rng(seed)
    hist = rng.choice(np.array(item_ids(50) + [F.PAD], dtype=object), size=(rows, length))
    genres = np.full((rows, length), "Drama", dtype=object)
    return {
        F.USER_ID: np.array([f"u{rng.integers(100)}" for _ in range(rows)], dtype=object),
        F.AGE: rng.integers(18, 60, size=rows).astype(np.int64),
        F.GENDER: np.array(["F"] * rows, dtype=object),
        F.OCCUPATION: np.array(["writer"] * rows, dtype=object),
        F.TIMESTAMP: np.full(rows, 890000000, dtype=np.int64),
        F.HISTORY_ITEM_IDS: hist.astype(object),
        F.HISTORY_GENRES: genres,
    }


def write_warmup(version_dir: str, requests: list) -> None:
    """Writes TF Serving warm-up records (PredictionLog) into `assets.extra/`."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())
