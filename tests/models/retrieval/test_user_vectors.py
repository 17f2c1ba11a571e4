"""Pretrained user vectors: hand-computed means, file alignment and errors, init/freeze and
input modes (models/retrieval/user_vectors.py)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from models.common import data
from models.retrieval import item2vec, updates, user_vectors
from models.retrieval.config import RetrievalConfig
from models.retrieval.layers import ITEM, USER, ItemCatalog
from models.retrieval.model import build_model
from models.retrieval.trainer import positives_dataset
from schemas import features as F


def test_user_positive_items_skips_label_0():
    # users [0, 0, 1, 1, 0, 9], items [0, 1, 2, 3, 2, 1], labels [1, 1, 1, 1, 0, 1]:
    # (0, 2) is a sampled negative (label 0); user 9 is outside the 3-row table.
    batch = {
        USER: np.array([0, 0, 1, 1, 0, 9]),
        ITEM: np.array([0, 1, 2, 3, 2, 1]),
        F.LABEL: np.array([1, 1, 1, 1, 0, 1]),
    }
    assert user_vectors.user_positive_items([batch], 3, 4) == {0: {0, 1}, 1: {2, 3}}


def test_mean_of_items_by_hand():
    # Items 0..3 = [1, 2], [3, 4], [5, 6], [9, 9]; item 3 has no pretrained vector.
    # user 0 {0, 1}: ([1, 2] + [3, 4]) / 2 = [2, 3]
    # user 1 {2, 3}: item 3 is not covered, so [5, 6] alone
    # user 2 {3}: nothing covered -> a random row in [-0.05, 0.05], not covered
    # user 3: no positives -> random, not covered
    items = np.array([[1, 2], [3, 4], [5, 6], [9, 9]], np.float32)
    covered = np.array([True, True, True, False])
    matrix, users = user_vectors.mean_of_items({0: {0, 1}, 1: {2, 3}, 2: {3}}, items, covered, 4)
    np.testing.assert_array_equal(matrix[:2], [[2, 3], [5, 6]])
    assert users.tolist() == [True, True, False, False]
    assert np.all(np.abs(matrix[2:]) <= 0.05)


def test_align_counts_unknown_ids():
    vectors = {"u1": np.array([1.0, 0.0]), "u2": np.array([0.0, 1.0]), "ghost": np.ones(2)}
    matrix, covered, report = user_vectors.align(vectors, [b"u2", b"u1", b"u3"], num_rows=4)
    np.testing.assert_array_equal(matrix[:2], [[0, 1], [1, 0]])
    assert covered.tolist() == [True, True, False, False]
    assert report == {
        "source_ids": 3,
        "vocabulary": 3,
        "covered": 2,
        "unknown_ids": 1,
        "unknown_examples": ["ghost"],
    }


def test_file_errors_name_the_line(tmp_path):
    bad_dim = tmp_path / "users.tsv"
    bad_dim.write_text("# users\nu1\t1 2 3\nu2\t1 2\n")
    with pytest.raises(ValueError, match=r"line 2 \(id 'u1'\): dimension 3, expected 2"):
        item2vec.load_pretrained(str(bad_dim), expected_dim=2)
    with pytest.raises(ValueError, match=r"line 3 \(id 'u2'\): dimension 2, expected 3"):
        item2vec.load_pretrained(str(bad_dim))  # the first vector's dimension
    malformed = tmp_path / "malformed.tsv"
    malformed.write_text("u1\t1 2\nu2 1 2\n")
    with pytest.raises(ValueError, match="line 2: expected 'id<TAB>v1 v2 ...'"):
        item2vec.load_pretrained(str(malformed))


def test_config_checks():
    with pytest.raises(ValueError, match="pretrained_users 'mean_of_items' needs pretrained"):
        RetrievalConfig().with_overrides(pretrained_users="mean_of_items")
    from models.common.embeddings import QR, EmbeddingSpec

    with pytest.raises(ValueError, match="pretrained_mode 'init' with pretrained_users"):
        RetrievalConfig().with_overrides(
            pretrained_users="u.tsv", user_embedding=EmbeddingSpec(kind=QR)
        )
    qr = EmbeddingSpec(kind=QR)
    RetrievalConfig().with_overrides(
        pretrained_users="u.tsv", pretrained_mode="input", user_embedding=qr
    )


@pytest.fixture(scope="module")
def tiny(tiny_data):
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    sizes, counts = data.vocab_sizes(tft_output), data.item_positive_counts(tft_output)
    scan = data.make_dataset(tiny_data.raw("train"), tft_output, 512, shuffle=False, num_epochs=1)
    catalog = ItemCatalog.from_batches(scan, sizes[F.ITEM_ID])
    cfg = RetrievalConfig().with_overrides(batch_size=32)
    ds = positives_dataset(tiny_data.raw("train"), tft_output, cfg, counts, training=True)
    files = tiny_data.raw("train")
    batches = list(ds.take(6))
    return dict(
        tft=tft_output, sizes=sizes, counts=counts, catalog=catalog, batches=batches, files=files
    )


def _build(cfg, tiny, **pretrained):
    return build_model(cfg, tiny["sizes"], tiny["counts"], catalog=tiny["catalog"], **pretrained)


def _tables(cfg, tiny):
    return user_vectors.pretrained_tables(cfg, tiny["files"], tiny["tft"], tiny["sizes"])


def _train(model, batches, steps):
    for step in range(steps):
        model.train_step(batches[step % len(batches)])


def test_frozen_user_table_moves_only_after_the_freeze_steps(tiny):
    rows = tiny["sizes"][F.USER_ID]
    users = np.random.default_rng(3).normal(size=(rows, 32)).astype(np.float32)
    cfg = RetrievalConfig().with_overrides(batch_size=32, pretrained_users="u.tsv", freeze_steps=3)
    model = _build(cfg, tiny, pretrained_users=users)
    table = model.query_tower.user_embedding.weights[0]
    np.testing.assert_array_equal(table.numpy(), users)
    projection = model.query_tower.projection.kernel.numpy()
    _train(model, tiny["batches"], 3)  # steps 0, 1, 2: frozen
    np.testing.assert_array_equal(table.numpy(), users)
    assert not np.array_equal(projection, model.query_tower.projection.kernel.numpy())
    _train(model, tiny["batches"], 2)  # fine-tuning
    assert not np.array_equal(table.numpy(), users)


def test_input_mode_feeds_fixed_user_vectors(tiny):
    rows = tiny["sizes"][F.USER_ID]
    users = np.random.default_rng(4).normal(size=(rows, 5)).astype(np.float32)
    cfg = RetrievalConfig().with_overrides(
        batch_size=32, pretrained_users="u.tsv", pretrained_mode="input"
    )
    model = _build(cfg, tiny, pretrained_users=users)
    fixed = model.query_tower.pretrained_users
    assert fixed is not None and not fixed.trainable_weights
    batch = tiny["batches"][0]
    before = model.query_tower(batch).numpy()
    fixed.set_weights([users + 1.0])  # the vectors are an input: the query changes
    assert not np.allclose(before, model.query_tower(batch).numpy())
    fixed.set_weights([users])
    _train(model, tiny["batches"], 2)
    np.testing.assert_array_equal(fixed.weights[0].numpy(), users)
    config = model.query_tower.get_config()
    assert config["pretrained_users"]["config"]["dim"] == 5


def test_pretrained_tables_from_files(tiny, tmp_path, capsys):
    vocabs = updates.read_vocabularies(tiny["tft"])
    known = vocabs[F.USER_ID][:3]
    path = tmp_path / "users.tsv"
    path.write_text("".join(f"{u}\t1 2 3 4\n" for u in known) + "nobody\t0 0 0 0\n")
    cfg = RetrievalConfig().with_overrides(pretrained_users=str(path), pretrained_mode="input")
    items, users, report = _tables(cfg, tiny)
    assert items is None and users.shape == (tiny["sizes"][F.USER_ID], 4)
    np.testing.assert_array_equal(users[:3], [[1, 2, 3, 4]] * 3)
    assert report["unknown_ids"] == 1 and report["covered"] == 3
    assert "'unknown_ids': 1" in capsys.readouterr().out
    cfg = RetrievalConfig().with_overrides(
        pretrained_users=str(path), embedding_dim=8
    )  # "init": width 8
    with pytest.raises(ValueError, match=r"users.tsv, line 1 .*dimension 4, expected 8"):
        _tables(cfg, tiny)


def test_pretrained_tables_mean_of_items(tiny, tmp_path):
    vocabs = updates.read_vocabularies(tiny["tft"])
    rng = np.random.default_rng(5)
    item_file = tmp_path / "items.tsv"
    vectors = {i: rng.normal(size=8) for i in vocabs[F.ITEM_ID][::2]}  # half the items
    item2vec.save_pretrained(str(item_file), vectors)
    cfg = RetrievalConfig().with_overrides(
        pretrained=str(item_file), pretrained_users="mean_of_items", embedding_dim=8
    )
    items, users, report = _tables(cfg, tiny)
    batches = data.make_dataset(tiny["files"], tiny["tft"], 512, shuffle=False, num_epochs=1)
    seen = user_vectors.user_positive_items(
        ({k: b[k].numpy() for k in (USER, ITEM, F.LABEL)} for b in batches),
        tiny["sizes"][F.USER_ID],
        tiny["sizes"][F.ITEM_ID],
    )
    num_vocab = len(vocabs[F.ITEM_ID])
    covered = {u: [i for i in r if i < num_vocab and i % 2 == 0] for u, r in seen.items()}
    user, rows = next((u, r) for u, r in sorted(covered.items()) if len(r) >= 2)
    expected = np.mean([vectors[vocabs[F.ITEM_ID][i]] for i in rows], axis=0)
    np.testing.assert_allclose(users[user], expected, rtol=1e-5)
    assert 0 < report["covered"] <= report["users_with_positives"]
    model = _build(cfg, tiny, pretrained=items, pretrained_users=users)
    np.testing.assert_allclose(model.query_tower.user_embedding.weights[0].numpy(), users)
    assert tf.reduce_all(tf.math.is_finite(model.compute_loss(tiny["batches"][0])))
