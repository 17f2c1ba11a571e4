"""Two-tower layers, config and model: shapes, masking, every loss option on tiny_data."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras

from models.common import data
from models.common import embeddings as E
from models.retrieval import losses, objectives, updates
from models.retrieval.config import RetrievalConfig
from models.retrieval.layers import (
    HISTORY,
    ITEM,
    USER,
    CandidateTower,
    FixedEmbedding,
    ItemCatalog,
    QueryTower,
)
from models.retrieval.model import build_model, dummy_features
from models.retrieval.sequence import HistoryEncoderSpec
from models.retrieval.trainer import embedding_memory, positives_dataset
from schemas import features as F

L = F.HISTORY_LENGTH
SIZES = {
    F.ITEM_ID: 30,
    F.USER_ID: 12,
    F.PRIMARY_GENRE: 6,
    F.GENDER: 3,
    F.OCCUPATION: 5,
    F.AGE: 8,
    F.HOUR_OF_DAY: 24,
    F.DAY_OF_WEEK: 7,
}
COUNTS = np.r_[np.arange(20, 0, -1), np.zeros(10)]  # 20 vocabulary items + 10 OOV buckets


def small(**overrides):
    values = dict(embedding_dim=8, feature_dim=4, tower_width=16, output_dim=8, batch_size=4)
    return RetrievalConfig().with_overrides(**{**values, **overrides})


def features(batch=3, history=((1, 2), (), (5,)), seed=0):
    """A hand-made transformed batch: histories padded with -1, mask 1 on real items."""
    rng = np.random.default_rng(seed)
    ids = -np.ones((batch, L), np.int64)
    for row, items in enumerate(history):
        ids[row, : len(items)] = items
    out = dummy_features(batch)
    out.update(
        {
            ITEM: tf.constant(rng.integers(0, 20, batch)),
            USER: tf.constant(rng.integers(0, 12, batch)),
            HISTORY: tf.constant(ids),
            F.HISTORY_MASK: tf.constant((ids >= 0).astype(np.float32)),
            F.HOUR_OF_DAY: tf.constant(rng.integers(0, 24, batch)),
            F.YEAR_NORMALIZED: tf.constant(rng.normal(size=batch).astype(np.float32)),
        }
    )
    out[F.transformed_name(F.GENRES)] = tf.sparse.from_dense(
        tf.constant([[1, 2], [3, 0], [0, 0]][:batch], tf.int64)
    )
    return out


def test_towers_shapes_and_unit_norm():
    model = build_model(small(), SIZES, COUNTS)
    batch = features()
    query, cand = model.query_tower(batch), model.candidate_tower(batch)
    assert query.shape == (3, 8) and cand.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cand, axis=1), 1.0, rtol=1e-5)
    assert model.query_tower.item_embedding is model.candidate_tower.item_embedding  # shared
    deep = build_model(small(tower_depth=3, tower_width=7), SIZES, COUNTS)
    assert [d.units for d in deep.query_tower.hidden] == [7, 7, 7]
    np.testing.assert_allclose(
        model.score(query, cand),
        query @ tf.transpose(cand) / model.config.tower.temperature,
        rtol=1e-5,
    )


def test_history_masking():
    model = build_model(small(), SIZES, COUNTS)
    batch = features(history=((1, 2), (), (5,)))
    base = model.query_tower(batch).numpy()
    changed = dict(batch)
    ids = batch[HISTORY].numpy().copy()
    ids[:, 2:] = 7  # padded (masked) positions now hold a real id
    ids[1, :] = 9  # the empty history too, still masked
    changed[HISTORY] = tf.constant(ids)
    np.testing.assert_allclose(model.query_tower(changed), base, atol=1e-6)
    assert np.all(np.isfinite(base))
    # An empty history pools to zeros: the same as a masked-out history of any ids.
    pooled = model.query_tower.item_embedding(tf.constant([[-1, -1]]))
    np.testing.assert_array_equal(pooled, np.zeros((1, 2, 8)))
    unmasked = dict(batch, **{F.HISTORY_MASK: tf.ones([3, L])})
    unmasked[HISTORY] = tf.constant(ids)
    assert not np.allclose(model.query_tower(unmasked), base)  # the history does matter


def test_towers_round_trip_their_config():
    model = build_model(small(), SIZES, COUNTS)
    for tower in (model.query_tower, model.candidate_tower):
        clone = type(tower).from_config(tower.get_config())
        assert clone.get_config() == tower.get_config()
    fixed = FixedEmbedding(5, 3)
    assert FixedEmbedding.from_config(fixed.get_config()).get_config() == fixed.get_config()
    assert isinstance(QueryTower, type) and isinstance(CandidateTower, type)


# --------------------------------------------------------------------------- tiny_data


@pytest.fixture(scope="module")
def tiny(tiny_data):
    """Transform output, sizes, counts, catalog and a few fixed training batches."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    sizes, counts = data.vocab_sizes(tft_output), data.item_positive_counts(tft_output)
    scan = data.make_dataset(tiny_data.raw("train"), tft_output, 512, shuffle=False, num_epochs=1)
    catalog = ItemCatalog.from_batches(scan, sizes[F.ITEM_ID])
    cfg = RetrievalConfig().with_overrides(batch_size=32)
    ds = positives_dataset(tiny_data.raw("train"), tft_output, cfg, counts, training=True)
    batches = list(ds.take(12))
    return dict(tft=tft_output, sizes=sizes, counts=counts, catalog=catalog, batches=batches)


def _train(model, batches, steps):
    ds = tf.data.Dataset.from_tensor_slices(list(range(len(batches)))).repeat()
    losses_ = []
    for _, i in zip(range(steps), ds.as_numpy_iterator(), strict=False):
        losses_.append(float(model.train_step(batches[i])["loss"]))
    return losses_


LOSS_OPTIONS = {
    "listwise_logq": dict(loss="listwise"),
    "listwise_plain": dict(loss="listwise", log_q=False, remove_accidental_hits=False),
    "mixed_uniform": dict(num_mixed_negatives=16, negative_distribution="uniform"),
    "mixed_unigram_hard": dict(num_mixed_negatives=16, num_hard_negatives=8),
    "pointwise": dict(loss="pointwise", negative_ratio=3),
    "triplet_hinge": dict(loss="triplet_hinge"),
    "triplet_logistic": dict(loss="triplet_logistic"),
    "sampled_softmax": dict(loss="sampled_softmax", num_sampled=64),
    "sampled_softmax_tapas": dict(
        loss="sampled_softmax", num_sampled=64, softmax_sampler="unigram", adaptive_top_m=16
    ),
    "sampled_softmax_per_row": dict(
        loss="sampled_softmax", num_sampled=64, adaptive_top_m=16, adaptive_sampling="per_row"
    ),
}


@pytest.mark.parametrize("name", sorted(LOSS_OPTIONS))
def test_each_loss_option_trains(tiny, name):
    cfg = RetrievalConfig().with_overrides(batch_size=32, learning_rate=0.02, **LOSS_OPTIONS[name])
    model = build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"])
    fixed = tiny["batches"][0]
    before = float(model.compute_loss(fixed, training=False))
    steps = _train(model, tiny["batches"], 24)
    after = float(model.compute_loss(fixed, training=False))
    assert np.all(np.isfinite(steps)) and np.isfinite(after)
    assert after < before, (name, before, after)


def test_log_q_uses_item_positive_counts(tiny):
    # The listwise loss alone: the history encoder's every-position loss is off here
    # (tests/models/retrieval/test_sequence.py derives that one by hand).
    cfg = RetrievalConfig().with_overrides(
        batch_size=32,
        remove_accidental_hits=False,
        history=HistoryEncoderSpec(position_targets=0.0),
    )
    model = build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"])
    counts = np.maximum(tiny["counts"], 1.0)
    np.testing.assert_allclose(model.item_probs, counts / counts.sum())
    batch = tiny["batches"][1]
    q, c = model.query_tower(batch), model.candidate_tower(batch)
    ids = batch[ITEM].numpy()
    expected = losses.listwise_loss(
        q, c, temperature=cfg.tower.temperature, log_q=np.log(32 * counts[ids] / counts.sum())
    )
    np.testing.assert_allclose(model.compute_loss(batch), expected, rtol=1e-5)
    plain = losses.listwise_loss(q, c, temperature=cfg.tower.temperature)
    assert not np.isclose(float(plain), float(expected))


def test_mixed_negatives_get_their_own_log_q(tiny, monkeypatch):
    # the listwise loss alone (see test_log_q_uses_item_positive_counts)
    cfg = RetrievalConfig().with_overrides(
        batch_size=32,
        num_mixed_negatives=3,
        remove_accidental_hits=False,
        history=HistoryEncoderSpec(position_targets=0.0),
    )
    model = build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"])
    sampled = tf.constant([0, 5, 9], tf.int64)
    monkeypatch.setattr(model.negative_sampler, "sample_tf", lambda m: (sampled, tf.zeros([m])))
    batch = tiny["batches"][2]
    q, c = model.query_tower(batch), model.candidate_tower(batch)
    p, s = model.item_probs, model.negative_sampler.probs  # data and count**0.75 distributions
    log_q = np.r_[np.log(32 * p[batch[ITEM].numpy()]), np.log(3 * s[[0, 5, 9]])]
    cands = tf.concat([c, model.embed_items(sampled)], axis=0)
    expected = losses.listwise_loss(q, cands, temperature=cfg.tower.temperature, log_q=log_q)
    np.testing.assert_allclose(model.compute_loss(batch), expected, rtol=1e-5)
    counts = tiny["counts"][: len(s)]
    np.testing.assert_allclose(s, counts**0.75 / (counts**0.75).sum(), rtol=1e-6)


def test_mined_negatives(tiny, tmp_path):
    vocab = updates.read_vocabularies(tiny["tft"])
    users, items = vocab[F.USER_ID], vocab[F.ITEM_ID]
    path = tmp_path / "mined.tsv"
    path.write_text(
        f"# blessed model\n{users[0]}\t{items[3]} {items[4]}\tunknown_item\nnobody\t{items[1]}\n"
    )
    table = updates.load_mined_negatives(str(path), tiny["tft"])
    assert table.shape == (len(users) + F.USER_OOV_BUCKETS, 2)
    assert table[0].tolist() == [3, 4] and np.all(table[1:] == -1)
    batch = dict(tiny["batches"][0])
    batch[USER] = tf.constant([0] * 16 + [1] * 16, tf.int64)
    for ratio, expected in ((1.0, 1.0), (0.0, 0.0), (0.5, 0.5)):
        cfg = RetrievalConfig().with_overrides(
            batch_size=32, loss="pointwise", negative_ratio=50, mined_ratio=ratio
        )
        model = build_model(
            cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"], mined=table
        )
        neg, log_q = objectives.explicit_negatives(model, batch, batch[ITEM])
        from_mined = (log_q.numpy() == 0.0) & np.isin(neg.numpy(), [3, 4])
        assert from_mined[:16].mean() == pytest.approx(expected, abs=0.1)
        assert not from_mined[16:].any()  # a user without mined items gets easy negatives
    steps = _train(model, tiny["batches"], 3)
    assert np.all(np.isfinite(steps))
    listwise = RetrievalConfig().with_overrides(batch_size=32, mined_negatives_path=str(path))
    model = build_model(
        listwise, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"], mined=table
    )
    assert np.isfinite(float(model.compute_loss(batch)))


def test_pretrained_init_freeze_and_input(tiny):
    rows = tiny["sizes"][F.ITEM_ID]
    matrix = np.random.default_rng(1).normal(size=(rows, 32)).astype(np.float32)
    cfg = RetrievalConfig().with_overrides(batch_size=32, pretrained="file.tsv", freeze_steps=3)
    model = build_model(
        cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"], pretrained=matrix
    )
    table = model.query_tower.item_embedding.weights[0]
    np.testing.assert_array_equal(table.numpy(), matrix)
    other = model.candidate_tower.projection.kernel.numpy()
    _train(model, tiny["batches"], 3)  # frozen: steps 0, 1, 2
    np.testing.assert_array_equal(table.numpy(), matrix)
    assert not np.array_equal(other, model.candidate_tower.projection.kernel.numpy())
    _train(model, tiny["batches"], 2)  # fine-tuning
    assert not np.array_equal(table.numpy(), matrix)

    cfg = RetrievalConfig().with_overrides(
        batch_size=32, pretrained="item2vec", pretrained_mode="input"
    )
    model = build_model(
        cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"], pretrained=matrix[:, :5]
    )
    fixed = model.query_tower.pretrained
    assert fixed is model.candidate_tower.pretrained and not fixed.trainable_weights
    _train(model, tiny["batches"], 2)
    np.testing.assert_array_equal(fixed.weights[0].numpy(), matrix[:, :5])


def test_item2vec_pretraining_on_transformed_data(tiny, tiny_data):
    vocab = ["a", "b", "c", "d"]
    batch = {
        F.LABEL: tf.constant([1, 0, 1]),
        ITEM: tf.constant([3, 2, 1]),
        HISTORY: tf.constant([[0, 1, 2, -1], [0, -1, -1, -1], [0, -1, -1, -1]]),
        F.HISTORY_MASK: tf.constant([[1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]], tf.float32),
    }
    sentences = updates.item2vec_sentences([batch], vocab, window=2)
    assert sentences == [["b", "d"], ["c", "d"], ["a", "b"]]
    cfg = RetrievalConfig().with_overrides(
        pretrained="item2vec", embedding_dim=8, item2vec_epochs=1
    )
    rows = tiny["sizes"][F.ITEM_ID]
    matrix = updates.pretrained_matrix(cfg, tiny_data.raw("train"), tiny["tft"], rows)
    assert matrix.shape == (rows, 8) and np.all(np.isfinite(matrix))


def test_memory_efficient_embeddings_per_id_feature(tiny):
    qr = E.EmbeddingSpec(kind=E.QR, qr_combiner="add")
    mixed = E.EmbeddingSpec(kind=E.MIXED)
    cfg = RetrievalConfig().with_overrides(batch_size=32, item_embedding=mixed, user_embedding=qr)
    model = build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"])
    assert isinstance(model.query_tower.item_embedding, E.MixedDimEmbedding)
    assert isinstance(model.query_tower.user_embedding, E.QREmbedding)
    report = embedding_memory(model, tiny["sizes"], cfg.tower.embedding_dim)
    assert report[F.ITEM_ID]["bytes"] < report[F.ITEM_ID]["full_bytes"]
    assert report[F.USER_ID]["bytes"] < report[F.USER_ID]["full_bytes"]
    assert report["total_bytes"] < report["total_full_bytes"]
    assert np.all(np.isfinite(_train(model, tiny["batches"], 3)))
    full = build_model(
        cfg.with_overrides(item_embedding=E.EmbeddingSpec()), tiny["sizes"], tiny["counts"]
    )
    assert embedding_memory(full, tiny["sizes"], 32)[F.ITEM_ID]["ratio"] == 1.0


def test_ema_momentum_exports_the_moving_average_of_each_steps_weights(tiny):
    """Hand-derived Polyak averaging: the average starts at the weights the first step
    sees (w0) and after step t is m * avg + (1 - m) * w_t; the end of `fit` (the
    trainer's path) overwrites every trainable weight with it. So after three steps the
    weight is m^3 w0 + m^2 (1-m) w1 + m (1-m) w2 + (1-m) w3."""
    m = 0.9
    cfg = RetrievalConfig().with_overrides(batch_size=32, learning_rate=0.05, ema_momentum=m)
    model = build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"])
    variable = next(v for v in model.trainable_variables if "kernel" in v.name)
    seen = [variable.numpy().copy()]
    record = tf_keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(variable.numpy().copy())
    )
    batches = tf.data.Dataset.from_tensors(tiny["batches"][0]).repeat()
    model.fit(batches, epochs=1, steps_per_epoch=3, callbacks=[record], verbose=0)
    assert len(seen) == 4 and not np.allclose(seen[1], seen[3])  # the steps moved it
    expected = m**3 * seen[0] + m**2 * (1 - m) * seen[1] + m * (1 - m) * seen[2] + (1 - m) * seen[3]
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)
    # 0 turns it off: the optimizer keeps no average.
    plain = build_model(cfg.with_overrides(ema_momentum=0.0), tiny["sizes"], tiny["counts"])
    assert not plain.optimizer.use_ema


@pytest.mark.parametrize("bad", [0.5, 1.0, -0.1])
def test_ema_momentum_outside_its_range_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"training\.ema_momentum .*\[0\.9, 1\)"):
        RetrievalConfig().with_overrides(ema_momentum=bad)
