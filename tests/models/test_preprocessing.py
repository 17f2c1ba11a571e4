"""preprocessing_fn run through tf.Transform on three rows, with exact outputs."""

import functools

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models import preprocessing
from models.common import data
from schemas import features as F
from schemas.schema import load_schema

L = F.HISTORY_LENGTH


def pad(xs, fill=F.PAD):
    return list(xs) + [fill] * (L - len(xs))


ROWS = [
    dict(
        user_id="u1",
        item_id="A",
        label=1,
        event=1,
        timestamp=0,
        age=30,
        gender="F",
        occupation="artist",
        genres=["Action", "Drama"],
        genre="Action",
        year=1990,
        history_item_ids=pad(["C"]),
        history_genres=pad(["Comedy"]),
        history_length=1,
        history_length_bucket="1-4",
    ),
    dict(
        user_id="u2",
        item_id="B",
        label=0,
        event=0,
        timestamp=90000,
        age=-1,
        gender=F.UNKNOWN,
        occupation="artist",
        genres=["Drama"],
        genre="Drama",
        year=-1,
        history_item_ids=pad(["A", "C"]),
        history_genres=pad(["Action", "Comedy"]),
        history_length=2,
        history_length_bucket="1-4",
    ),
    dict(
        user_id="u1",
        item_id="A",
        label=1,
        event=1,
        timestamp=392400,
        age=17,
        gender="F",
        occupation="doctor",
        genres=["Drama"],
        genre="Drama",
        year=2000,
        history_item_ids=pad([]),
        history_genres=pad([]),
        history_length=0,
        history_length_bucket="0",
    ),
    # C is in the histories above: as in BehaviorSequenceGen's output, where every history
    # item is an earlier event's target, it is a target too (here a sampled negative).
    dict(
        user_id="u1",
        item_id="C",
        label=0,
        event=0,
        timestamp=0,
        age=30,
        gender="F",
        occupation="artist",
        genres=["Comedy"],
        genre="Comedy",
        year=-1,
        history_item_ids=pad([]),
        history_genres=pad([]),
        history_length=0,
        history_length_bucket="0",
    ),
]


def run_transform(tmp_path, rows=ROWS, custom_config=None):
    """Analyzes `rows` with tf.Transform (custom_config bound as TFX binds it), then
    applies the saved graph to them."""
    fn = functools.partial(preprocessing.preprocessing_fn, custom_config=custom_config)
    spec = schema_utils.schema_as_feature_spec(load_schema()).feature_spec
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
        data = p | beam.Create(
            [{k: v if isinstance(v, list) else [v] for k, v in r.items()} for r in rows]
        )
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / "tf"))
    tft_out = tft.TFTransformOutput(str(tmp_path / "tf"))
    raw = {}
    for name, feature in spec.items():
        values = [r[name] for r in rows]
        if isinstance(feature, tf.io.VarLenFeature):
            raw[name] = tf.ragged.constant(values).to_sparse()
        else:
            raw[name] = tf.constant(
                [v if isinstance(v, list) else [v] for v in values], dtype=feature.dtype
            )
    out = tft_out.transform_raw_features(raw)
    rows = [
        {
            k: (
                v.numpy()[i]
                if not isinstance(v, tf.SparseTensor)
                else tf.sparse.to_dense(v).numpy()[i][: len(rows[i][F.GENRES])]
            )
            for k, v in out.items()
        }
        for i in range(len(rows))
    ]
    return tft_out, rows


def test_exact_outputs(tmp_path):
    tft_out, (r1, r2, r3, r4) = run_transform(tmp_path)
    idx = F.transformed_name
    # Item vocab, counted over the targets only: A 2, then C 1 and B 1 (ties in reverse
    # lexicographic order) -> A=0, C=1, B=2; the histories are looked up in it.
    assert [r[idx(F.ITEM_ID)] for r in (r1, r2, r3, r4)] == [0, 2, 0, 1]
    np.testing.assert_array_equal(r1[idx(F.HISTORY_ITEM_IDS)], [1] + [-1] * (L - 1))
    np.testing.assert_array_equal(r2[idx(F.HISTORY_ITEM_IDS)], [0, 1] + [-1] * (L - 2))
    np.testing.assert_array_equal(r3[idx(F.HISTORY_ITEM_IDS)], [-1] * L)
    np.testing.assert_array_equal(r2[F.HISTORY_MASK], [1, 1] + [0] * (L - 2))
    # Genre vocab over the targets' genres and primary genres (not the histories):
    # Drama 4, then Comedy 2 and Action 2 (reverse lexicographic) -> 0, 1, 2.
    assert list(r1[idx(F.GENRES)]) == [2, 0] and list(r3[idx(F.GENRES)]) == [0]
    assert [r[idx(F.PRIMARY_GENRE)] for r in (r1, r2, r3, r4)] == [2, 0, 0, 1]
    np.testing.assert_array_equal(r2[idx(F.HISTORY_GENRES)], [2, 1] + [-1] * (L - 2))
    # Users u1 (3) u2 (1); gender F (3) then __unknown__; occupation artist (3), doctor.
    assert [r[idx(F.USER_ID)] for r in (r1, r2, r3)] == [0, 1, 0]
    assert [r[idx(F.GENDER)] for r in (r1, r2, r3)] == [0, 1, 0]
    assert [r[idx(F.OCCUPATION)] for r in (r1, r2, r3)] == [0, 0, 1]
    # Age buckets (0 = missing): 30 -> [25, 35) -> 3; 17 -> below 18 -> 1.
    assert [r[idx(F.AGE)] for r in (r1, r2, r3)] == [3, 0, 1]
    # Years 1990, 2000: mean 1995, std 5; missing -> 0.
    np.testing.assert_allclose([r[F.YEAR_NORMALIZED] for r in (r1, r2, r3)], [-1, 0, 1])
    # 1970-01-01 00:00 was a Thursday (3); t=90000 is Fri 01:00; t=392400 is Mon 13:00.
    assert [(r[F.DAY_OF_WEEK], r[F.HOUR_OF_DAY]) for r in (r1, r2, r3)] == [(3, 0), (4, 1), (0, 13)]
    assert [r[F.LABEL] for r in (r1, r2, r3)] == [1, 0, 1]
    assert [r[F.EVENT] for r in (r1, r2, r3)] == [1, 0, 1]  # passed through for the trainer
    # Uncapped: every item is in the vocabulary, none beyond it (A is the one positive).
    assert data.item_oov_report(tft_out)["items_beyond"] == 0
    assert data.item_oov_report(tft_out)["positive_events"] == 2
    # The positive counts for log-Q: A is positive twice, nothing else.
    assert tft_out.vocabulary_by_name(F.ITEM_POSITIVE_FREQ_VOCAB) == [b"2 A"]
    assert tft_out.vocabulary_by_name(F.ITEM_VOCAB) == [b"A", b"C", b"B"]


def test_a_capped_item_vocabulary_sends_the_rest_to_oov_and_counts_them(tmp_path):
    # Target counts: A 2, C 1, B 1 (C before B: reverse lexicographic); B is now a positive.
    rows = [dict(r) for r in ROWS]
    rows[1].update(label=1, event=1)
    config = {preprocessing.ITEM_VOCABULARY_SIZE: 2}
    tft_out, (r1, r2, r3, _) = run_transform(tmp_path, rows, config)
    idx = F.transformed_name(F.ITEM_ID)
    assert tft_out.vocabulary_by_name(F.ITEM_VOCAB) == [b"A", b"C"]
    assert r1[idx] == r3[idx] == 0
    assert 2 <= r2[idx] < 2 + F.ITEM_OOV_BUCKETS  # B hashes into a bucket after A, C
    # Positives: A twice, B once; B is beyond the vocabulary.
    assert data.item_oov_report(tft_out) == {
        "vocabulary": 2,
        "items_beyond": 1,
        "positive_events_beyond": 1,
        "positive_events": 3,
        "oov_buckets": F.ITEM_OOV_BUCKETS,
    }


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_a_bad_vocabulary_size_is_named(bad):
    with pytest.raises(ValueError, match="item_vocabulary_size must be an int >= 1"):
        preprocessing.preprocessing_fn({}, {preprocessing.ITEM_VOCABULARY_SIZE: bad})
