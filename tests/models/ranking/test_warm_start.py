"""Warm start from an exported ranker: same predictions, id rows follow their vocabulary."""

import glob

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from models.common.data import vocab_sizes
from models.ranking import export, warm_start
from models.ranking.model import build_model
from tests.models.ranking.conftest import TINY_CONFIG


def test_remap_rows_follows_tokens_and_keeps_oov_rows_by_position():
    old = np.array([[1.0], [2.0], [3.0], [9.0]])  # vocab a, b, c + 1 OOV row
    new = np.zeros((4, 1))  # vocab c, d, a + 1 OOV row
    copied = warm_start.remap_rows(old, [b"a", b"b", b"c"], new, [b"c", b"d", b"a"], 1)
    np.testing.assert_array_equal(new[:, 0], [3.0, 0.0, 1.0, 9.0])  # d keeps its init
    assert copied == 3


def test_warm_started_model_reproduces_the_base_model(tiny_data, ranker_run):
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    model = build_model(TINY_CONFIG, vocab_sizes(tft_output))
    report = warm_start.warm_start(model, ranker_run.serving_model_dir, tft_output)
    assert not report["skipped"]
    assert report["remapped"]["item_emb/table/embeddings:0"] > 0
    files = glob.glob(tiny_data.raw("eval"))
    examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(16)]
    loaded = tf.saved_model.load(ranker_run.serving_model_dir)
    expected = loaded.signatures[export.SERVING_DEFAULT](examples=tf.constant(examples))
    raw = tf.io.parse_example(tf.constant(examples), tft_output.raw_feature_spec())
    got = model(tft_output.transform_raw_features(raw), training=False)
    np.testing.assert_allclose(got, expected[export.PROBABILITIES], rtol=1e-6, atol=1e-7)
