"""run_fn end to end on tiny_data, the exported SavedModel, warm start and incremental updates."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models.retrieval import export, trainer, updates
from models.retrieval.config import RetrievalConfig
from models.retrieval.prior import PopularityPrior
from schemas import features as F

BASE = RetrievalConfig().with_overrides(
    batch_size=32, epochs=2, steps_per_epoch=6, num_mixed_negatives=16
)


def fn_args(tiny_data, root, config, base_model=None):
    custom = {"retrieval": config.to_dict(), "other_trainer": {"ignored": True}}
    return tiny_data.trainer_args(root, custom, base_model=base_model, eval_steps=2)


@pytest.fixture(scope="module")
def first_run(tiny_data, tmp_path_factory):
    """run_fn with item2vec-initialised items and mean-of-items users (frozen 2 steps)
    and mixed negatives."""
    config = BASE.with_overrides(
        pretrained="item2vec",
        freeze_steps=2,
        item2vec_epochs=1,
        pretrained_users="mean_of_items",
    )
    args = fn_args(tiny_data, str(tmp_path_factory.mktemp("first")), config)
    trainer.run_fn(args)
    return args


def saved_variables(serving_dir):
    return {v.name: v.numpy() for v in tf.saved_model.load(serving_dir).model_variables}


def test_run_fn_writes_model_curve_and_summary(first_run, tiny_data):
    loaded = tf.saved_model.load(first_run.serving_model_dir)
    assert {"serving_default", "query_embedding", "candidate_embedding"} <= set(loaded.signatures)
    with open(os.path.join(first_run.model_run_dir, trainer.CURVE_FILE), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(first_run.model_run_dir, trainer.SUMMARY_FILE)) as f:
        summary = json.load(f)
    assert summary["steps"] == 12 and len(summary["epochs"]) == 2
    assert summary["examples_per_sec"] > 0 and np.isfinite(summary["final_loss"])
    memory = summary["embedding_memory"]
    assert memory[F.ITEM_ID]["full_bytes"] == memory[F.ITEM_ID]["bytes"] > 0
    assert summary["config"]["embeddings"]["pretrained"] == "item2vec"
    users = summary["pretrained_users"]
    assert users["source"] == "mean_of_items" and 0 < users["covered"] <= users["vocabulary"]
    npz = np.load(export.item_embeddings_path(first_run.serving_model_dir))
    # The popularity prior's column follows the unit-norm tower output (prior.py).
    dim = BASE.tower.output_dim
    assert npz["embeddings"].shape == (len(npz["ids"]), dim + 1)
    assert npz["ids"][0] == summary_vocab(first_run)[0]
    np.testing.assert_allclose(np.linalg.norm(npz["embeddings"][:, :dim], axis=1), 1.0, rtol=1e-5)
    # Its products with the query's beta / s are beta * log(1 + n), n counted here from
    # the raw training examples: positives (label 1), not low ratings or sampled negatives.
    prior = summary["popularity_prior"]
    assert prior["beta"] == BASE.tower.popularity_prior == 0.03
    with open(os.path.join(first_run.serving_model_dir, "assets.extra", "retrieval.json")) as f:
        assert json.load(f)["popularity_prior"] == prior
    positives = positive_counts(tiny_data)
    n = np.array([positives.get(i, 0) for i in npz["ids"]], np.float64)
    assert n.max() == prior["max_count"] and (n > 0).mean() > 0.5
    query_value = prior["beta"] / prior["scale"]
    np.testing.assert_allclose(
        npz["embeddings"][:, dim] * query_value, 0.03 * np.log1p(n), atol=1e-6
    )


def positive_counts(tiny_data) -> dict:
    """item id -> positive examples (label 1) in the raw training examples."""
    spec = {F.ITEM_ID: tf.io.FixedLenFeature([], tf.string)}
    spec[F.LABEL] = tf.io.FixedLenFeature([], tf.int64)
    counts: dict = {}
    files = glob.glob(tiny_data.raw("train"))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096):
        parsed = tf.io.parse_example(record, spec)
        for item, label in zip(parsed[F.ITEM_ID].numpy(), parsed[F.LABEL].numpy(), strict=True):
            counts[item.decode()] = counts.get(item.decode(), 0) + int(label == 1)
    return counts


def summary_vocab(args):
    return updates.read_vocabularies(tft.TFTransformOutput(args.transform_output))[F.ITEM_ID]


def raw_examples(tiny_data, n=6):
    files = glob.glob(tiny_data.raw("eval"))
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").take(n))
    return tf.stack(records)


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    """An in-memory model (3 training steps) and its export, side by side."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    args = fn_args(tiny_data, str(tmp_path_factory.mktemp("export")), BASE)
    model, _, _ = trainer.prepare_model(BASE, args, tft_output)
    counts = data_counts(tft_output)
    ds = trainer.positives_dataset(args.train_files, tft_output, BASE, counts, training=True)
    model.fit(ds.repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    export.export_serving_model(model, tft_output, args.serving_model_dir, _prior(tft_output))
    return model, tft_output, tf.saved_model.load(args.serving_model_dir), args


def _prior(tft_output) -> PopularityPrior:
    """Hand-set counts per item id row (vocabulary + OOV): log(1 + n) = id % 3, so the
    column is (id % 3) / 8 (COLUMN_MAX 0.25 over max log(1 + n) = 2) and beta / s = 0.8:
    the prior is 0.1 * (id % 3)."""
    from models.common import data

    return PopularityPrior(0.1, np.expm1(np.arange(data.vocab_sizes(tft_output)[F.ITEM_ID]) % 3))


def data_counts(tft_output):
    from models.common import data

    return data.item_positive_counts(tft_output)


def test_saved_model_matches_in_memory_model(exported, tiny_data):
    model, tft_output, loaded, args = exported
    serialized = raw_examples(tiny_data)
    raw = tf.io.parse_example(serialized, tft_output.raw_feature_spec())
    transformed = tft_output.transform_raw_features(raw, drop_unused_features=True)
    expected_q = model.query_tower(transformed).numpy()
    expected_c = model.candidate_tower(transformed).numpy()
    scalar = lambda name: tf.reshape(raw[name], [-1])  # noqa: E731
    query = loaded.signatures["query_embedding"](
        **{name: scalar(name) for name in (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP)},
        **{name: raw[name] for name in (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES)},
    )["embedding"]
    # The towers' outputs, then the prior's columns: beta / s = 0.8 on the query side,
    # (id % 3) / 8 on the candidate side (the fixture's hand-set counts).
    np.testing.assert_allclose(query[:, :-1], expected_q, atol=1e-5)
    np.testing.assert_allclose(query[:, -1], 0.8, atol=1e-6)
    served = loaded.signatures["serving_default"](examples=serialized)["embedding"]
    np.testing.assert_allclose(served, query, atol=1e-5)
    candidate = loaded.signatures["candidate_embedding"](
        item_id=scalar(F.ITEM_ID),
        genres=tf.sparse.to_dense(raw[F.GENRES], default_value=F.PAD),
        genre=scalar(F.PRIMARY_GENRE),
        year=scalar(F.YEAR),
    )["embedding"]
    np.testing.assert_allclose(candidate[:, :-1], expected_c, atol=1e-5)
    ids = transformed[F.transformed_name(F.ITEM_ID)].numpy().reshape(-1)
    np.testing.assert_allclose(candidate[:, -1], (ids % 3) / 8, atol=1e-6)
    # Every vocabulary item by its id alone: vocabulary row i gets (i % 3) / 8.
    vocab = updates.read_vocabularies(tft_output)[F.ITEM_ID]
    size = len(vocab)
    every = loaded.signatures["candidate_embedding"](
        item_id=tf.constant(vocab),
        genres=tf.fill([size, 1], F.PAD),
        genre=tf.fill([size], F.PAD),
        year=tf.zeros([size], tf.int64),
    )["embedding"]
    np.testing.assert_allclose(every[:, -1], (np.arange(size) % 3) / 8, atol=1e-6)
    npz = np.load(export.item_embeddings_path(args.serving_model_dir))
    np.testing.assert_allclose(npz["embeddings"][ids], candidate, atol=1e-5)


def test_unknown_ids_and_odd_shapes_do_not_fail(exported):
    _, _, loaded, _ = exported
    query = loaded.signatures["query_embedding"](
        user_id=tf.constant(["never-seen", ""]),
        age=tf.constant([200, -1], tf.int64),
        gender=tf.constant(["?", ""]),
        occupation=tf.constant(["astronaut", ""]),
        timestamp=tf.constant([0, 2_000_000_000], tf.int64),
        history_item_ids=tf.constant([["no-such-item"] * 25 + [""] * 5, [""] * 30]),
        history_genres=tf.constant([["Nope"] * 25 + [""] * 5, [""] * 30]),
    )["embedding"].numpy()
    assert query.shape == (2, BASE.tower.output_dim + 1) and np.all(np.isfinite(query))
    short = loaded.signatures["query_embedding"](
        user_id=tf.constant(["u"]),
        age=tf.constant([30], tf.int64),
        gender=tf.constant(["F"]),
        occupation=tf.constant(["x"]),
        timestamp=tf.constant([5], tf.int64),
        history_item_ids=tf.zeros([1, 0], tf.string),
        history_genres=tf.zeros([1, 0], tf.string),
    )["embedding"]
    assert short.shape == (1, BASE.tower.output_dim + 1)
    candidate = loaded.signatures["candidate_embedding"](
        item_id=tf.constant(["brand-new", ""]),
        genres=tf.constant([["Space Opera", ""], ["", ""]]),
        genre=tf.constant(["Space Opera", ""]),
        year=tf.constant([3000, -1], tf.int64),
    )["embedding"].numpy()
    assert np.all(np.isfinite(candidate))
    # Unknown ids hash into OOV rows: their prior is the hand-set one of those rows.
    assert set(np.round(candidate[:, -1] * 8).astype(int)) <= {0, 1, 2}
    empty = tf.train.Example().SerializeToString()
    assert loaded.signatures["serving_default"](examples=tf.constant([empty]))[
        "embedding"
    ].shape == (1, 33)


def test_remap_rows_by_hand():
    old = np.arange(8, dtype=np.float32).reshape(4, 2)  # rows a, b, c, oov
    new = -np.ones((5, 2), np.float32)  # rows c, a, d, oov1, oov2
    copied = updates.remap_rows(old, ["a", "b", "c"], new, ["c", "a", "d"], num_oov=1)
    np.testing.assert_array_equal(new, [[4, 5], [0, 1], [-1, -1], [-1, -1], [6, 7]])
    assert copied == 3


def test_warm_start_loads_weights(exported, tiny_data):
    model, tft_output, _, args = exported
    args = fn_args(tiny_data, os.path.dirname(os.path.dirname(args.serving_model_dir)), BASE)
    fresh, _, _ = trainer.prepare_model(BASE, args, tft_output)
    report = updates.warm_start(fresh, args.serving_model_dir, tft_output)
    assert not report["skipped"] and len(report["remapped"]) == 5  # item, user, 3 categories
    for mine, theirs in zip(fresh.weights, model.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_warm_start_skips_tables_of_another_width(exported, tiny_data):
    """A changed embedding size must not break the next run: those tables start fresh."""
    _, tft_output, _, args = exported
    narrow = BASE.with_overrides(embedding_dim=8)
    fresh, _, _ = trainer.prepare_model(narrow, args, tft_output)
    report = updates.warm_start(fresh, args.serving_model_dir, tft_output)
    id_tables = {
        "query_tower/item_embedding/table/embeddings:0",
        "query_tower/user_embedding/table/embeddings:0",
    }
    assert id_tables <= set(report["skipped"]) and not id_tables & set(report["remapped"])


def test_full_update_warm_starts_and_trains_one_epoch(first_run, tiny_data, tmp_path):
    args = fn_args(tiny_data, str(tmp_path), BASE, base_model=first_run.serving_model_dir)
    trainer.run_fn(args)
    with open(os.path.join(args.model_run_dir, trainer.SUMMARY_FILE)) as f:
        summary = json.load(f)
    assert len(summary["epochs"]) == 1 and summary["warm_start"]["skipped"] == 0
    assert summary["base_model"] == first_run.serving_model_dir


def test_incremental_update_changes_only_id_embeddings(first_run, tiny_data, tmp_path):
    path = tmp_path / "mined.tsv"
    vocab = updates.read_vocabularies(tft.TFTransformOutput(tiny_data.transform_graph))
    path.write_text("".join(f"{u}\t{vocab[F.ITEM_ID][3]}\n" for u in vocab[F.USER_ID]))
    config = BASE.with_overrides(mode="incremental", mined_negatives_path=str(path))
    args = fn_args(tiny_data, str(tmp_path), config, base_model=first_run.serving_model_dir)
    trainer.run_fn(args)
    before = saved_variables(first_run.serving_model_dir)
    after = saved_variables(args.serving_model_dir)
    assert before.keys() == after.keys()
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed == {
        "query_tower/item_embedding/table/embeddings:0",
        "query_tower/user_embedding/table/embeddings:0",
    }
