"""The raw-feature SavedModel: a save/load round trip, candidate scoring, unknown ids."""

import glob

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models.ranking import export, trainer
from models.ranking.config import RankingConfig
from schemas import features as F


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    """(in-memory model, TFTransformOutput, loaded SavedModel, serialized raw eval examples)."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    config = RankingConfig(epochs=1, batch_size=64)
    result = trainer.train(config, tft_output, tiny_data.raw("train"), tiny_data.raw("eval"), 10)
    path = export.export_serving_model(
        result.model, tft_output, str(tmp_path_factory.mktemp("export"))
    )
    files = glob.glob(tiny_data.raw("eval"))
    examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    return result.model, tft_output, tf.saved_model.load(path), examples[:12]


def serve(loaded, examples):
    out = loaded.signatures[export.SERVING_DEFAULT](examples=tf.constant(examples))
    return out[export.PROBABILITIES].numpy()


def test_round_trip_gives_the_in_memory_predictions(exported):
    model, tft_output, loaded, examples = exported
    raw = tf.io.parse_example(tf.constant(examples), tft_output.raw_feature_spec())
    expected = model(tft_output.transform_raw_features(raw), training=False).numpy()
    np.testing.assert_allclose(serve(loaded, examples), expected, rtol=1e-6, atol=1e-7)


def raw_columns(tft_output, examples):
    raw = tf.io.parse_example(tf.constant(examples), tft_output.raw_feature_spec())
    return {k: v for k, v in raw.items() if not isinstance(v, tf.SparseTensor)}


def test_score_candidates_agrees_with_serving_default(exported):
    _, tft_output, loaded, examples = exported
    raw = raw_columns(tft_output, examples[:4])
    scalar = lambda k: tf.reshape(raw[k], [-1])  # noqa: E731
    # Row i scores its own item first, then the items of the other rows.
    order = tf.constant([[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]])
    candidates = {k: tf.gather(scalar(k), order) for k in (F.ITEM_ID, F.PRIMARY_GENRE, F.YEAR)}
    user = {k: scalar(k) for k in (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP)}
    history = {k: raw[k] for k in (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES)}
    scores = loaded.signatures[export.SCORE_CANDIDATES](**user, **history, **candidates)
    scores = scores[export.SCORES].numpy()
    assert scores.shape == (4, 4)
    np.testing.assert_allclose(scores[:, 0], serve(loaded, examples[:4]), rtol=1e-5, atol=1e-6)


def test_precomputed_candidate_features_give_the_raw_scores(exported):
    """transform_candidates once per catalog + score_transformed_candidates == score_candidates."""
    _, tft_output, loaded, examples = exported
    raw = raw_columns(tft_output, examples[:4])
    scalar = lambda k: tf.reshape(raw[k], [-1])  # noqa: E731
    catalog = {k: scalar(k) for k in (F.ITEM_ID, F.PRIMARY_GENRE, F.YEAR)}
    catalog[F.ITEM_ID] = tf.concat([catalog[F.ITEM_ID][:3], ["never-seen"]], 0)  # an OOV item
    xf = loaded.signatures[export.TRANSFORM_CANDIDATES](**catalog)
    assert set(xf) == {
        F.transformed_name(F.ITEM_ID),
        F.transformed_name(F.PRIMARY_GENRE),
        F.YEAR_NORMALIZED,
    }
    order = tf.constant([[0, 1, 2, 3], [3, 2, 1, 0]])
    user = {k: scalar(k)[:2] for k in (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP)}
    user.update({k: raw[k][:2] for k in (F.HISTORY_ITEM_IDS, F.HISTORY_GENRES)})
    want = loaded.signatures[export.SCORE_CANDIDATES](
        **user, **{k: tf.gather(v, order) for k, v in catalog.items()}
    )[export.SCORES].numpy()
    got = loaded.signatures[export.SCORE_TRANSFORMED](
        **user, **{k: tf.gather(v, order) for k, v in xf.items()}
    )[export.SCORES].numpy()
    assert got.shape == (2, 4) and len(np.unique(got.round(6))) > 1
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("width", [0, 3, F.HISTORY_LENGTH + 5])
def test_unknown_ids_and_any_history_width_never_fail(exported, width):
    _, _, loaded, _ = exported
    row = ["never-seen"] * min(width, 2) + [F.PAD] * max(width - 2, 0)
    history = tf.reshape(tf.constant([row] * 2, tf.string), [2, width])
    scores = loaded.signatures[export.SCORE_CANDIDATES](
        **{F.USER_ID: tf.constant(["new-user", "u1"]), F.AGE: tf.constant([-1, 30], tf.int64)},
        **{F.GENDER: tf.constant(["?", "F"]), F.OCCUPATION: tf.constant(["?", "x"])},
        **{F.TIMESTAMP: tf.constant([0, 10**9], tf.int64)},
        **{F.HISTORY_ITEM_IDS: history, F.HISTORY_GENRES: history},
        **{
            F.ITEM_ID: tf.constant([["new-item"] * 3] * 2),
            F.PRIMARY_GENRE: tf.constant([["?"] * 3] * 2),
        },
        **{F.YEAR: tf.constant([[1990, -1, 2050]] * 2, tf.int64)},
    )[export.SCORES].numpy()
    assert scores.shape == (2, 3) and np.isfinite(scores).all()


def test_serving_default_fills_missing_features(exported):
    _, _, loaded, examples = exported
    example = tf.train.Example()
    example.features.feature[F.ITEM_ID].bytes_list.value.append(b"never-seen")
    probs = serve(loaded, [b"", example.SerializeToString(), examples[0]])
    assert probs.shape == (3,) and np.isfinite(probs).all()
