"""The causal self-attention history encoder: recency positions, masks, causality, export."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models.common.history import last_state
from models.retrieval.sequence import HistoryEncoderSpec, SequenceEncoder, causal_mask

MASK = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_causal_mask_allows_only_earlier_valid_keys():
    m = causal_mask(MASK).numpy().astype(int)
    assert m[0].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    assert m[1].tolist() == [[1, 0, 0, 0]] * 4  # only position 0 is valid
    assert m[2].sum() == 0


def _encoder(**kw):
    tf_keras.utils.set_random_seed(0)
    enc = SequenceEncoder(num_layers=2, num_heads=2, dropout=0.0, max_length=4, **kw)
    vectors = tf.random.normal([3, 4, 8]) * tf.cast(MASK, tf.float32)[..., tf.newaxis]
    return enc, vectors


def test_a_later_item_never_changes_an_earlier_state():
    enc, vectors = _encoder()
    before = enc(vectors, MASK).numpy()
    changed = tf.tensor_scatter_nd_update(vectors, [[0, 2]], [tf.ones(8)])
    after = enc(changed, MASK).numpy()
    np.testing.assert_allclose(after[0, :2], before[0, :2], atol=1e-6)  # causal
    assert np.abs(after[0, 2] - before[0, 2]).max() > 1e-3  # the item's own state moves
    np.testing.assert_allclose(after[1:], before[1:], atol=1e-6)  # other rows untouched


def test_padding_is_never_attended_and_states_are_zero_there():
    enc, vectors = _encoder()
    before = enc(vectors, MASK).numpy()
    # Garbage in a padded slot (row 1, position 3) must change nothing.
    noisy = tf.tensor_scatter_nd_update(vectors, [[1, 3]], [10 * tf.ones(8)])
    after = enc(noisy, MASK).numpy()
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert np.all(before[0, 3] == 0) and np.all(before[2] == 0)


def test_the_same_history_gives_the_same_last_state_whatever_its_padding():
    # Recency positions: [a, b] in a length-4 and a length-3 row are the same history.
    tf_keras.utils.set_random_seed(0)
    enc = SequenceEncoder(num_layers=1, num_heads=1, dropout=0.0, max_length=4)
    items = tf.random.normal([2, 8])
    long = tf.concat([items, tf.zeros([2, 8])], 0)[tf.newaxis]  # [1, 4, 8]
    short = tf.concat([items, tf.zeros([1, 8])], 0)[tf.newaxis]  # [1, 3, 8]
    a = last_state(enc(long, tf.constant([[1, 1, 0, 0]])), tf.constant([[1, 1, 0, 0]]))
    b = last_state(enc(short, tf.constant([[1, 1, 0]])), tf.constant([[1, 1, 0]]))
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_get_config_round_trip_rebuilds_the_same_layer():
    enc, vectors = _encoder()
    out = enc(vectors, MASK)
    clone = SequenceEncoder.from_config(enc.get_config())
    clone(vectors, MASK)
    clone.set_weights(enc.get_weights())
    np.testing.assert_allclose(clone(vectors, MASK).numpy(), out.numpy(), atol=1e-6)


def test_width_not_a_multiple_of_heads_is_a_clear_error():
    enc = SequenceEncoder(num_layers=1, num_heads=3, dropout=0.0, max_length=4)
    with pytest.raises(ValueError, match="not a multiple of num_heads 3"):
        enc(tf.zeros([1, 4, 8]), tf.ones([1, 4]))


@pytest.mark.parametrize(
    "kwargs, field",
    [({"kind": "lstm"}, "kind"), ({"num_layers": 0}, "num_layers"), ({"dropout": 1.0}, "dropout")],
)
def test_spec_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"HistoryEncoderSpec.{field}"):
        HistoryEncoderSpec(**kwargs)


def _sa_model(**history):
    from models.retrieval.model import build_model
    from tests.models.retrieval.test_model import COUNTS, SIZES, small

    spec = {
        "kind": "self_attention",
        "num_layers": 1,
        "num_heads": 2,
        "dropout": 0.0,
        "position_sample": 1.0,
    }  # every pair, unless a test asks for a share
    return build_model(small(history=HistoryEncoderSpec(**{**spec, **history})), SIZES, COUNTS)


def test_the_whole_history_prefix_query_is_the_query_towers_output():
    from schemas import features as F
    from tests.models.retrieval.test_model import features

    model = _sa_model(position_targets=1.0)
    batch = features(history=((1, 2, 3), (), (5,)))
    select = np.zeros((3, F.HISTORY_LENGTH), bool)
    select[0, 2] = select[2, 0] = True  # the most recent position of rows 0 and 2
    prefix = model.query_tower.prefix_queries(batch, tf.constant(select)).numpy()
    whole = model.query_tower(batch).numpy()
    assert prefix.shape == (2, 8)
    np.testing.assert_allclose(prefix, whole[[0, 2]], atol=1e-5)
    # An earlier prefix differs: it sees fewer items (and, as in SASRec's left-padded
    # windows, keeps its positions relative to the window's most recent item).
    select[:] = False
    select[0, 1] = True
    earlier = model.query_tower.prefix_queries(batch, tf.constant(select)).numpy()
    assert np.abs(earlier[0] - whole[0]).max() > 1e-3


def test_training_queries_and_prefix_queries_share_one_encoder_pass():
    # With dropout on, two encoder passes draw two masks, and the most recent prefix's
    # query would differ from the batch query: one pass gives them the same mask.
    from schemas import features as F
    from tests.models.retrieval.test_model import features

    model = _sa_model(position_targets=1.0, dropout=0.5)
    batch = features(history=((1, 2, 3), (), (5,)))
    select = np.zeros((3, F.HISTORY_LENGTH), bool)
    select[0, 2] = select[2, 0] = True
    whole, prefix = model.query_tower.queries(batch, tf.constant(select), training=True)
    np.testing.assert_allclose(prefix.numpy(), whole.numpy()[[0, 2]], atol=1e-5)
    again, _ = model.query_tower.queries(batch, training=True)
    assert np.abs(again.numpy() - whole.numpy()).max() > 1e-4  # dropout is really on


def test_prefix_queries_need_a_history_encoder():
    from models.retrieval.model import build_model
    from schemas import features as F
    from tests.models.retrieval.test_model import COUNTS, SIZES, features, small

    model = build_model(small(history=HistoryEncoderSpec(kind="mean")), SIZES, COUNTS)
    batch = features(history=((1, 2, 3),))
    with pytest.raises(ValueError, match="history_encoder"):
        model.query_tower.prefix_queries(batch, tf.ones([1, F.HISTORY_LENGTH], tf.bool))


def test_position_loss_by_hand_softmax_over_the_distinct_next_items():
    from models.retrieval.layers import HISTORY
    from tests.models.retrieval.test_model import features

    model = _sa_model(position_targets=1.0)
    # Pairs (prefix -> next): row 0: (1)->2, (1,2)->1; row 2: (5)->2. Distinct next: [2, 1].
    batch = features(history=((1, 2, 1), (), (5, 2)))
    loss = float(model._position_loss(batch, training=False))
    history = batch[HISTORY].numpy()
    select = np.zeros(history.shape, bool)
    select[0, 0] = select[0, 1] = select[2, 0] = True
    q = model.query_tower.prefix_queries(batch, tf.constant(select)).numpy()  # [3, D]
    items = model.embed_items(tf.constant([2, 1], tf.int64)).numpy()  # [2, D]
    probs = model.item_probs[[2, 1]]
    logits = q @ items.T / model.config.tower.temperature - np.log(probs)[None, :]
    labels = [0, 1, 0]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean([log_softmax[r, c] for r, c in enumerate(labels)])
    assert loss == pytest.approx(expected, rel=1e-5)


def test_position_sample_keeps_about_that_share_of_the_pairs():
    from tests.models.retrieval.test_model import features

    model = _sa_model(position_targets=1.0, position_sample=0.5)
    batch = features(history=(tuple(range(1, 20)),) * 3)  # 3 x 18 pairs
    losses = {float(model._position_loss(batch, training=False)) for _ in range(5)}
    assert len(losses) > 1  # a fresh random subset each step
    full = _sa_model(position_targets=1.0)
    assert len({float(full._position_loss(batch, training=False)) for _ in range(3)}) == 1


def test_a_step_whose_sample_keeps_no_pair_adds_zero_and_trains():
    # At a small share a short batch can keep no (prefix, next) pair at all: the loss
    # is then 0, not a softmax over no classes (which TF refuses).
    from tests.models.retrieval.test_model import features

    model = _sa_model(position_targets=1.0, position_sample=1e-9)
    batch = features(history=((1, 2, 3), (4, 5)))
    assert float(model._position_loss(batch, training=True)) == 0.0
    assert np.isfinite(float(model.compute_loss(batch, training=True)))
