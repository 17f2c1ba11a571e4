"""item2vec pretraining, the pretrained-vector file format and table initialisation."""

import numpy as np
import pytest
import tensorflow as tf

from models.common import example_codec
from models.retrieval import item2vec
from schemas import features as F


def _cosines(vectors, a, b):
    va = np.stack([vectors[i] for i in a])
    vb = np.stack([vectors[i] for i in b])
    va /= np.linalg.norm(va, axis=1, keepdims=True)
    vb /= np.linalg.norm(vb, axis=1, keepdims=True)
    return va @ vb.T


def test_skipgram_pairs_within_window():
    # sequence [0, 1, 2], window 1: (0,1) (1,2) and the reverse (1,0) (2,1)
    targets, contexts = item2vec.skipgram_pairs([np.array([0, 1, 2])], window=1)
    assert sorted(zip(targets.tolist(), contexts.tolist(), strict=True)) == [
        (0, 1),
        (1, 0),
        (1, 2),
        (2, 1),
    ]


def test_item2vec_separates_two_disjoint_clusters():
    rng = np.random.default_rng(0)
    a = [f"a{i}" for i in range(10)]
    b = [f"b{i}" for i in range(10)]
    # 40 users, each consuming 30 random items of one cluster only.
    sequences = [list(rng.choice(a if u % 2 else b, 30)) for u in range(40)]
    cfg = item2vec.Item2VecConfig(dim=16, window=2, epochs=8, batch_size=256, seed=0)
    vectors = item2vec.train_item2vec(sequences, cfg)
    assert set(vectors) == set(a) | set(b)
    assert all(v.shape == (16,) for v in vectors.values())
    within = np.concatenate(
        [_cosines(vectors, c, c)[~np.eye(10, dtype=bool)] for c in (a, b)]
    ).mean()
    across = _cosines(vectors, a, b).mean()
    assert within > across + 0.3, (within, across)


def _write_examples(path, rows):
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(example_codec.encode(row, F.SEQUENCE_FEATURES).SerializeToString())


def test_read_sequences_orders_positives_by_time(tmp_path):
    rows = [
        {F.USER_ID: "u1", F.ITEM_ID: "i3", F.TIMESTAMP: 30, F.LABEL: 1},
        {F.USER_ID: "u1", F.ITEM_ID: "i1", F.TIMESTAMP: 10, F.LABEL: 1},
        {F.USER_ID: "u1", F.ITEM_ID: "neg", F.TIMESTAMP: 10, F.LABEL: 0},  # skipped
        {F.USER_ID: "u2", F.ITEM_ID: "i2", F.TIMESTAMP: 5, F.LABEL: 1},
        {F.USER_ID: "u1", F.ITEM_ID: "i2", F.TIMESTAMP: 20, F.LABEL: 1},
    ]
    _write_examples(str(tmp_path / "part.gz"), rows)
    assert item2vec.read_sequences(str(tmp_path / "*.gz")) == [["i1", "i2", "i3"], ["i2"]]


def test_save_and_load_round_trip(tmp_path):
    vectors = {
        "a": np.array([0.1, -2.5, 3.0], np.float32),
        "b b": np.array([1e-8, 0, 7], np.float32),
    }
    path = str(tmp_path / "vectors.tsv")
    item2vec.save_pretrained(path, vectors)
    loaded = item2vec.load_pretrained(path)
    assert list(loaded) == ["a", "b b"]
    for key, vec in vectors.items():
        np.testing.assert_array_equal(loaded[key], vec)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a\t1 2\nb 3 4\n", r"line 2: expected 'id<TAB>v1 v2 \.\.\.'"),
        ("a\t1 2\nb\t3 x\n", r"line 2 \(id 'b'\): a value is not a number"),
        ("# comment\na\t1 2\n\nb\t1 2 3\n", r"line 4 \(id 'b'\): dimension 3, expected 2 .*line 2"),
        ("a\t1 2\na\t3 4\n", r"line 2: duplicate id 'a'"),
        ("a\t1 nan\n", r"line 1 \(id 'a'\): the vector is empty or not finite"),
        ("\n# nothing\n", r"no vectors found"),
    ],
)
def test_load_pretrained_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        item2vec.load_pretrained(str(path))


def test_init_matrix_aligns_rows_and_counts_coverage():
    vectors = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    matrix, covered = item2vec.init_matrix(vectors, [b"b", "zz", "a"], dim=2, seed=0, num_rows=5)
    assert matrix.shape == (5, 2) and matrix.dtype == np.float32 and covered == 2
    np.testing.assert_array_equal(matrix[0], [3.0, 4.0])  # bytes ids are decoded
    np.testing.assert_array_equal(matrix[2], [1.0, 2.0])
    assert np.all(np.abs(matrix[[1, 3, 4]]) <= 0.05)  # unknown id and OOV rows: small random
    again, _ = item2vec.init_matrix(vectors, [b"b", "zz", "a"], dim=2, seed=0, num_rows=5)
    np.testing.assert_array_equal(matrix, again)
    with pytest.raises(ValueError, match="dimension 2, not 3"):
        item2vec.init_matrix(vectors, ["a"], dim=3)
