"""Warm start across a reordered vocabulary: every kind of id table follows its ids or is
refused by name; never copied by shape (which hands each id another item's row)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from models.common import embeddings as E
from models.common.remap import TableRefusedError, carry_table, row_map
from models.ranking import warm_start
from models.ranking.config import RankingConfig
from models.ranking.model import build_model
from schemas import features as F

OLD = ["a", "b", "c", "d", "e", "f"]
NEW = ["d", "a", "f", "b", "c", "e"]  # the next span's frequencies: the same items reordered
OOV = 1


def _layer(kind, seed, **kw):
    """A built id layer of 6 vocabulary ids + 1 OOV id, dim 4, with random weights."""
    spec = E.EmbeddingSpec(kind=kind, **kw)
    layer = E.make_embedding(spec, len(OLD) + OOV, 4, name="item_emb")
    layer(tf.constant([0]))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    return layer


def _vectors(layer, ids):
    return layer(tf.constant(ids, tf.int64)).numpy()


def _carry(old_layer, new_layer, vocabs=(OLD, NEW), strict=False):
    old = {w.name: w.numpy() for w in old_layer.weights}
    report = {}
    handled = carry_table(new_layer, old, str, vocabs, OOV, report, strict)
    assert handled == {w.name for w in new_layer.weights}
    return report


def test_row_map_follows_tokens_and_keeps_oov_by_position():
    np.testing.assert_array_equal(row_map(OLD, NEW, 7, 7, 1), [3, 0, 5, 1, 2, 4, 6])
    np.testing.assert_array_equal(row_map(["a"], ["z", "a"], 2, 3, 1), [-1, 0, 1])


def test_full_table_rows_follow_their_ids():
    old, new = _layer(E.FULL, 0), _layer(E.FULL, 1)
    report = _carry(old, new)
    assert report["remapped"] == {new.table.embeddings.name: 7}
    old_ids = [OLD.index(t) for t in NEW] + [6]
    np.testing.assert_array_equal(_vectors(new, range(7)), _vectors(old, old_ids))


def test_mixed_dimension_rows_follow_their_ids_across_blocks():
    """Block 0 (ids 0-2) is full width, block 1 (ids 3-6) 2 wide, projected to 4."""
    kw = dict(mixed_boundaries=(0.3, 1.0), mixed_dims=(1.0, 0.5))
    old, new = _layer(E.MIXED, 0, **kw), _layer(E.MIXED, 1, **kw)
    assert old.ends == [3, 7] and old.projections[0] is None
    report = _carry(old, new)
    assert report["fitted"] == {"item_emb": 2}  # b and c: from the full block into block 1
    got = _vectors(new, range(7))
    want = _vectors(old, [OLD.index(t) for t in NEW] + [6])
    # d and f moved up into the full-width block, a and e stayed, OOV by position: exact.
    exact = [0, 1, 2, 5, 6]
    np.testing.assert_allclose(got[exact], want[exact], rtol=1e-5, atol=1e-6)
    # b and c moved down: the 2-d row whose projection is closest to the old vector.
    kernel = new.projections[1].kernel.numpy()
    residual = want[[3, 4]] - got[[3, 4]]
    np.testing.assert_allclose(residual @ kernel.T, 0, atol=1e-4)
    np.testing.assert_allclose(kernel, old.projections[1].kernel.numpy())


def test_a_shape_copy_would_have_misaligned_the_mixed_table():
    """The defect this guards: same shapes, so the old code copied rows position by position."""
    kw = dict(mixed_boundaries=(0.3, 1.0), mixed_dims=(1.0, 0.5))
    old = _layer(E.MIXED, 0, **kw)
    by_shape = _layer(E.MIXED, 1, **kw)
    for mine, theirs in zip(by_shape.weights, old.weights, strict=True):
        mine.assign(theirs)
    d_old, d_new = OLD.index("d"), NEW.index("d")
    assert not np.allclose(_vectors(by_shape, [d_new]), _vectors(old, [d_old]))


def test_qr_table_is_refused_by_name_when_ids_moved():
    old, new = _layer(E.QR, 0, qr_buckets=3), _layer(E.QR, 1, qr_buckets=3)
    fresh = [w.numpy() for w in new.weights]
    with pytest.raises(TableRefusedError, match=r"'item_emb' is a quotient-remainder .* 6 of"):
        _carry(old, new, strict=True)
    report = _carry(old, new)
    assert "item_emb" in report["refused"] and "id 0: 'a' -> 'd'" in report["refused"]["item_emb"]
    for w, before in zip(new.weights, fresh, strict=True):  # kept its fresh initialisation
        np.testing.assert_array_equal(w.numpy(), before)


def test_qr_table_is_copied_when_the_vocabulary_only_grew():
    old = _layer(E.QR, 0, qr_buckets=3)
    new = E.QREmbedding(len(OLD) + 2 + OOV, 4, buckets=3, name="item_emb")
    new(tf.constant([0]))
    report = _carry(old, new, vocabs=(OLD, OLD + ["g", "h"]))
    assert len(report["loaded"]) == 2 and not report.get("refused")
    np.testing.assert_array_equal(_vectors(new, range(6)), _vectors(old, range(6)))


def test_no_base_vocabulary_is_refused_not_copied():
    old, new = _layer(E.FULL, 0), _layer(E.FULL, 1)
    report = _carry(old, new, vocabs=(None, NEW))
    assert "has no vocabulary" in report["refused"]["item_emb"]
    assert not report.get("remapped")


class _Transform:
    """The part of TFTransformOutput warm_start reads: this run's vocabularies."""

    def __init__(self, vocabs):
        self.vocabs = vocabs

    def vocabulary_by_name(self, name):
        return self.vocabs[name]


def _sizes(n_items):
    return {
        F.ITEM_ID: n_items + F.ITEM_OOV_BUCKETS,
        F.USER_ID: 3 + F.USER_OOV_BUCKETS,
        F.PRIMARY_GENRE: 2 + F.CATEGORY_OOV_BUCKETS,
        F.GENDER: 2 + F.CATEGORY_OOV_BUCKETS,
        F.OCCUPATION: 2 + F.CATEGORY_OOV_BUCKETS,
        F.AGE: len(F.AGE_BUCKET_BOUNDARIES) + 2,
        F.HOUR_OF_DAY: 24,
        F.DAY_OF_WEEK: 7,
    }


def _base_ranker(tmp_path, config, vocabs):
    """A built ranker saved as warm_start reads one: model_variables + Transform's assets."""
    model = build_model(config, _sizes(len(vocabs[F.ITEM_VOCAB])), compile_model=False)
    module = tf.Module()
    module.model_variables = model.model_weights
    path = str(tmp_path / "base")
    tf.saved_model.save(module, path)
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    for name, tokens in vocabs.items():
        with open(os.path.join(path, "assets", name), "wb") as f:
            f.write(b"".join(t + b"\n" for t in tokens))
    return model, path


@pytest.mark.parametrize("kind", [E.FULL, E.MIXED, E.QR])
def test_ranker_warm_start_with_a_reordered_item_vocabulary(tmp_path, kind):
    spec = E.EmbeddingSpec(kind=kind, mixed_boundaries=(0.3, 1.0), mixed_dims=(1.0, 0.5))
    config = RankingConfig(item_embedding=spec, seed=0)
    old_vocabs = {
        F.ITEM_VOCAB: [t.encode() for t in OLD],
        F.USER_VOCAB: [b"u1", b"u2", b"u3"],
        F.GENRE_VOCAB: [b"g1", b"g2"],
        F.GENDER_VOCAB: [b"F", b"M"],
        F.OCCUPATION_VOCAB: [b"o1", b"o2"],
    }
    base, path = _base_ranker(tmp_path, config, old_vocabs)
    new_vocabs = {**old_vocabs, F.ITEM_VOCAB: [t.encode() for t in NEW]}
    fresh = build_model(dataclass_seed(config, 1), _sizes(len(NEW)), compile_model=False)
    transform = _Transform(new_vocabs)
    if kind == E.QR:
        with pytest.raises(TableRefusedError, match="'item_emb'"):
            warm_start.warm_start(fresh, path, transform, strict=True)
        report = warm_start.warm_start(fresh, path, transform)
        assert list(report["refused"]) == ["item_emb"]
        return
    report = warm_start.warm_start(fresh, path, transform, strict=True)
    assert not report["refused"] and not report["skipped"]
    moved = {j: OLD.index(t) for j, t in enumerate(NEW)}
    if kind == E.MIXED:  # ids that stayed in their block or moved into the full-width one
        ends = fresh.tables[F.ITEM_ID].ends
        moved = {j: i for j, i in moved.items() if j < ends[0] or (i < ends[0]) == (j < ends[0])}
    assert len(moved) >= 4
    got = _vectors(fresh.tables[F.ITEM_ID], list(moved))
    want = _vectors(base.tables[F.ITEM_ID], list(moved.values()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def dataclass_seed(config, seed):
    import dataclasses

    return dataclasses.replace(config, seed=seed)
