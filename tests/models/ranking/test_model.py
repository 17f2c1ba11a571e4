"""RankingModel: mini-batch aware regularisation, shared tables, candidate scoring, DNN switch."""

import numpy as np
import pytest
import tensorflow as tf

from models.common.embeddings import MIXED, QR, EmbeddingSpec
from models.ranking import model as M
from models.ranking.config import RankingConfig
from models.ranking.layers import LocalActivationUnit, MaskedMeanPooling
from schemas import features as F

T = F.transformed_name
SIZES = {
    F.ITEM_ID: 4,
    F.PRIMARY_GENRE: 3,
    F.USER_ID: 3,
    F.GENDER: 2,
    F.OCCUPATION: 3,
    F.AGE: 8,
    F.HOUR_OF_DAY: 24,
    F.DAY_OF_WEEK: 7,
}
SMALL = dict(item_dim=2, genre_dim=2, user_dim=2, feature_dim=2, attention_units=(4,),
             head_units=(4,))  # fmt: skip


def batch():
    """Two rows; items {0, 2} as candidates, {2, 1} in the histories; genres {1} and {0, 1}."""
    return {
        T(F.ITEM_ID): tf.constant([0, 2], tf.int64),
        T(F.PRIMARY_GENRE): tf.constant([1, 1], tf.int64),
        F.YEAR_NORMALIZED: tf.constant([0.5, -1.0]),
        T(F.HISTORY_ITEM_IDS): tf.constant([[2, -1], [1, -1]], tf.int64),
        T(F.HISTORY_GENRES): tf.constant([[0, -1], [1, -1]], tf.int64),
        F.HISTORY_MASK: tf.constant([[1.0, 0.0], [1.0, 0.0]]),
        T(F.USER_ID): tf.constant([0, 1], tf.int64),
        T(F.GENDER): tf.constant([0, 1], tf.int64),
        T(F.OCCUPATION): tf.constant([2, 0], tf.int64),
        T(F.AGE): tf.constant([3, 0], tf.int64),
        F.HOUR_OF_DAY: tf.constant([5, 23], tf.int64),
        F.DAY_OF_WEEK: tf.constant([0, 6], tf.int64),
        F.LABEL: tf.constant([1, 0], tf.int64),
    }


def table(model, name):
    return model.tables[name].table.embeddings


def test_mba_regularisation_matches_a_hand_computation():
    counts = {name: np.ones(n) for name, n in SIZES.items()}
    counts[F.ITEM_ID] = np.array([2.0, 4.0, 1.0, 5.0])
    counts[F.PRIMARY_GENRE] = np.array([1.0, 2.0, 3.0])
    model = M.build_model(RankingConfig(mba_lambda=0.5, **SMALL), SIZES, counts)
    for layer in model.tables.values():
        layer.table.embeddings.assign(tf.zeros_like(layer.table.embeddings))
    table(model, F.ITEM_ID).assign([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    table(model, F.PRIMARY_GENRE).assign([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    # Items present: 0, 2 (candidates), 2, 1 (histories): |w0|^2/2 + |w1|^2/4 + |w2|^2/1
    #   = 1/2 + 4/4 + 2/1 = 3.5.  Genres present: 1, 0: |g0|^2/1 + |g1|^2/2 = 2 + 0.5 = 2.5.
    # Every other table is zero. lambda * (3.5 + 2.5) = 0.5 * 6 = 3.
    with tf.GradientTape() as tape:
        reg = model.mba_regularization(batch())
    assert float(reg) == pytest.approx(3.0)
    items, genres = tape.gradient(reg, [table(model, F.ITEM_ID), table(model, F.PRIMARY_GENRE)])
    # d/dw_j = 2 * lambda * w_j / n_j on present rows; absent rows (item 3, genre 2) get 0.
    np.testing.assert_allclose(
        tf.convert_to_tensor(items), [[0.5, 0.0], [0.0, 0.5], [1.0, 1.0], [0.0, 0.0]]
    )
    np.testing.assert_allclose(tf.convert_to_tensor(genres), [[1.0, 1.0], [0.0, 0.5], [0.0, 0.0]])


def test_loss_is_bce_plus_regularisation():
    model = M.build_model(RankingConfig(mba_lambda=0.1, **SMALL), SIZES)
    features = batch()
    labels = tf.cast(features[F.LABEL], tf.float32)
    bce = tf.keras.losses.binary_crossentropy(labels, model(features), from_logits=False)
    expected = float(bce) + float(model.mba_regularization(features))
    assert float(model.compute_loss(features)) == pytest.approx(expected, rel=1e-4)


def test_candidate_and_history_share_the_item_and_genre_tables():
    # Without recency positions, a history key is exactly the item's and genre's vectors.
    model = M.build_model(RankingConfig(recency_positions=False, **SMALL), SIZES)
    features = batch()
    features[T(F.HISTORY_ITEM_IDS)] = tf.constant([[0, -1], [2, -1]], tf.int64)
    features[T(F.HISTORY_GENRES)] = tf.constant([[1, -1], [1, -1]], tf.int64)
    query, _ = model.encode_items(features)
    keys = model.encode_user(features)["keys"]
    np.testing.assert_allclose(keys[:, 0], query)  # same ids -> same vectors
    np.testing.assert_array_equal(keys[:, 1], 0.0)  # padding
    names = [v.name for v in model.trainable_variables if "item_emb" in v.name]
    assert len(names) == 1


def test_score_candidates_matches_scoring_rows_one_by_one():
    model = M.build_model(RankingConfig(**SMALL), SIZES)
    features = batch()
    candidates = tf.constant([[0, 1, 3], [2, 2, 0]], tf.int64)  # [B=2, N=3]
    genres = tf.constant([[1, 0, 2], [1, 1, 0]], tf.int64)
    years = tf.constant([[0.1, 0.2, 0.3], [-0.5, 0.0, 1.0]])
    items = {T(F.ITEM_ID): candidates, T(F.PRIMARY_GENRE): genres, F.YEAR_NORMALIZED: years}
    scores = model.score_candidates(features, items).numpy()
    assert scores.shape == (2, 3)
    for n in range(3):
        row = dict(features, **{k: v[:, n] for k, v in items.items()})
        np.testing.assert_allclose(scores[:, n], model(row, training=False), atol=1e-6)


def test_base_dnn_is_the_same_network_mean_pooled():
    din = M.build_model(RankingConfig(**SMALL), SIZES)
    dnn = M.build_model(RankingConfig(pooling="mean", **SMALL), SIZES)
    assert isinstance(din.pooling, LocalActivationUnit)
    assert isinstance(dnn.pooling, MaskedMeanPooling)

    def shapes(model):  # variable name without the model's prefix -> shape
        return {v.name.split("/", 1)[-1]: tuple(v.shape) for v in model.variables}

    din_vars, dnn_vars = shapes(din), shapes(dnn)
    assert dnn_vars.items() <= din_vars.items()  # every DNN weight, same shape, is in DIN
    assert all(name.startswith("attention/") for name in din_vars.keys() - dnn_vars.keys())
    assert dnn(batch()).shape == (2,)


def ordered_rows():
    """Row 0's history is items 1, 2, 3 (oldest first); row 1 holds the same items with 3
    and 1 swapped, so its most recent item is 1; row 2's history is empty."""
    rows = {k: tf.repeat(v[:1], 3, axis=0) for k, v in batch().items()}
    rows[T(F.HISTORY_ITEM_IDS)] = tf.constant([[1, 2, 3], [3, 2, 1], [-1, -1, -1]], tf.int64)
    rows[T(F.HISTORY_GENRES)] = tf.constant([[0, 0, 0], [0, 0, 0], [-1, -1, -1]], tf.int64)
    rows[F.HISTORY_MASK] = tf.constant([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    return rows


def test_din_without_recency_positions_is_blind_to_the_history_order():
    # Attention pooling sums over the history: reordering it cannot change a score.
    config = RankingConfig(recency_positions=False, **SMALL)
    logits = M.build_model(config, SIZES).logits(ordered_rows()).numpy()
    assert logits[0] == pytest.approx(logits[1], abs=1e-6)


def test_recency_positions_add_each_items_recency_row_to_its_key():
    model = M.build_model(RankingConfig(**SMALL), SIZES)  # recency positions by default
    model.recency.table.embeddings.assign(
        0.01 * np.arange(M.RECENCY_ROWS * 4, dtype=np.float32).reshape(M.RECENCY_ROWS, 4)
    )
    features = ordered_rows()
    keys = model.encode_user(features)["keys"].numpy()
    item, genre = table(model, F.ITEM_ID).numpy(), table(model, F.PRIMARY_GENRE).numpy()
    rows = model.recency.table.embeddings.numpy()
    # Row 0: items 1, 2, 3, oldest first: recencies 2, 1, 0.
    for i, (item_id, recency) in enumerate([(1, 2), (2, 1), (3, 0)]):
        np.testing.assert_allclose(keys[0, i], np.r_[item[item_id], genre[0]] + rows[recency])
    np.testing.assert_array_equal(keys[2], 0.0)  # padding gets no recency row
    logits = model.logits(features).numpy()
    assert abs(logits[0] - logits[1]) > 1e-6  # the order now matters


def test_last_item_feeds_the_most_recent_key_and_its_product_with_the_candidate():
    model = M.build_model(RankingConfig(last_item=True, recency_positions=False, **SMALL), SIZES)
    features = ordered_rows()
    user = model.encode_user(features)
    item, genre = table(model, F.ITEM_ID).numpy(), table(model, F.PRIMARY_GENRE).numpy()
    np.testing.assert_allclose(user["last"][0], np.r_[item[3], genre[0]])  # newest of 1, 2, 3
    np.testing.assert_allclose(user["last"][1], np.r_[item[1], genre[0]])
    np.testing.assert_array_equal(user["last"][2], 0.0)  # empty history: zeros
    # The head's input grows by the last key and its product with the candidate's key.
    plain = RankingConfig(recency_positions=False, **SMALL)
    width = M.build_model(plain, SIZES).head.dense[0].kernel.shape[0]
    assert model.head.dense[0].kernel.shape[0] == width + 2 * (2 + 2)
    assert abs(np.subtract(*model.logits(features).numpy()[:2])) > 1e-6
    scores = model(features).numpy()
    candidates = {k: v[:, tf.newaxis] for k, v in features.items() if k in M.ITEM_KEYS}
    np.testing.assert_allclose(  # the [B, N] path broadcasts the last key over candidates
        model.score_candidates(features, candidates)[:, 0], scores, atol=1e-6
    )


@pytest.mark.parametrize("spec", [EmbeddingSpec(kind=QR, qr_buckets=2), EmbeddingSpec(kind=MIXED)])
def test_memory_efficient_item_and_user_embeddings(spec):
    model = M.build_model(RankingConfig(item_embedding=spec, user_embedding=spec, **SMALL), SIZES)
    out = model(batch())
    assert out.shape == (2,) and np.isfinite(out.numpy()).all()
    assert float(model.mba_regularization(batch())) > 0


def test_feature_counts_counts_candidates_and_histories():
    ds = tf.data.Dataset.from_tensors(batch()).repeat(2)
    counts = M.feature_counts(ds, SIZES)
    np.testing.assert_array_equal(counts[F.ITEM_ID], [2, 2, 4, 0])  # padding not counted
    np.testing.assert_array_equal(counts[F.PRIMARY_GENRE], [2, 6, 0])
