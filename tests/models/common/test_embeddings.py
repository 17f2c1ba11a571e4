"""Memory-efficient embeddings: shapes, parameter counts, distinct vectors, padding."""

import numpy as np
import pytest
import tensorflow as tf

from models.common import embeddings as E


def vectors(layer, n):
    return layer(tf.range(n)).numpy()


@pytest.mark.parametrize("combiner, width", [("multiply", 8), ("add", 8), ("concat", 4)])
def test_qr_shapes_params_distinct(combiner, width):
    # 100 ids, m = 10 buckets: quotient table 10 x width, remainder table 10 x width.
    layer = E.QREmbedding(100, 8, buckets=10, combiner=combiner)
    out = layer(tf.constant([[0, 5, -1]]))
    assert out.shape == (1, 3, 8)
    assert layer.count_params() == 10 * width + 10 * width
    assert E.memory_report(layer, 100, 8)["ratio"] == pytest.approx(20 * width / 800)
    vecs = vectors(layer, 100)
    assert len({v.tobytes() for v in vecs}) == 100  # distinct ids, distinct vectors
    np.testing.assert_array_equal(out[0, 2], np.zeros(8))  # padding


def test_qr_default_buckets_and_composition():
    layer = E.QREmbedding(1000, 4, combiner="add")
    assert layer.buckets == 32  # ceil(sqrt(1000))
    ids = tf.constant([37])
    expected = layer.quotient(ids // 32) + layer.remainder(ids % 32)
    np.testing.assert_allclose(layer(ids), expected)


def test_mixed_dim_blocks():
    # 100 ids: blocks [0, 10) at width 8, [10, 40) at width 4, [40, 100) at width 2.
    layer = E.MixedDimEmbedding(100, 8, boundaries=(0.1, 0.4, 1.0), dims=(1.0, 0.5, 0.25))
    out = layer(tf.constant([[3, 25, 99, -1]]))
    assert out.shape == (1, 4, 8)
    assert (layer.starts, layer.ends) == ([0, 10, 40], [10, 40, 100])
    # Tables 10*8 + 30*4 + 60*2, projections 4*8 + 2*8 (the full-width block has none).
    assert layer.count_params() == 80 + 120 + 120 + 32 + 16
    # The batched lookup may take another matmul kernel: equal to float32 rounding.
    np.testing.assert_allclose(
        out[0, 1], layer.projections[1](layer.tables[1](tf.constant([15])))[0], rtol=1e-5
    )
    assert len({v.tobytes() for v in vectors(layer, 100)}) == 100
    np.testing.assert_array_equal(out[0, 3], np.zeros(8))


def test_full_embedding_and_factory():
    layer = E.make_embedding(E.EmbeddingSpec(), 50, 6, name="items")
    assert isinstance(layer, E.FullEmbedding) and layer(tf.constant([1])).shape == (1, 6)
    assert layer.count_params() == 300
    assert isinstance(E.make_embedding(E.EmbeddingSpec(kind=E.QR), 50, 6, "q"), E.QREmbedding)
    assert isinstance(
        E.make_embedding(E.EmbeddingSpec(kind=E.MIXED), 50, 6, "m"), E.MixedDimEmbedding
    )


def test_layers_round_trip_their_config():
    for layer in (
        E.QREmbedding(100, 8, 10, "concat"),
        E.MixedDimEmbedding(100, 8),
        E.FullEmbedding(10, 4),
    ):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_bad_spec_names_the_field():
    with pytest.raises(ValueError, match="embedding.kind"):
        E.EmbeddingSpec(kind="hashed")
    with pytest.raises(ValueError, match="mixed_boundaries"):
        E.EmbeddingSpec(kind=E.MIXED, mixed_boundaries=(0.5, 0.2, 1.0))
