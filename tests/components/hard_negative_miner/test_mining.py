"""HardNegativeMiner's pure logic, on hand-made scores (no TFX)."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.hard_negative_miner import mining
from models.retrieval import updates
from schemas import features as F

# 5 catalog items, D = 2.
ITEMS = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, -0.6], [-1, 0]], np.float32)


def test_retrieve_excludes_seen_items_and_orders_by_score():
    # q0 = [1, 0]: scores [1, 0, .6, .8, -1]; item 0 seen -> 3 (.8), 2 (.6), 1 (0).
    # q1 = [0, 1]: scores [0, 1, .8, -.6, 0]; items 1, 2 seen -> 0 (0), 4 (0, tie: lower
    # index first), 3 (-.6).
    query = np.array([[1, 0], [0, 1]], np.float32)
    top, scores, valid = mining.retrieve(query, ITEMS, [[0], [1, 2]], top_n=3)
    np.testing.assert_array_equal(top, [[3, 2, 1], [0, 4, 3]])
    np.testing.assert_allclose(scores, [[0.8, 0.6, 0.0], [0.0, 0.0, -0.6]], atol=1e-6)
    assert valid.all()


def test_retrieve_marks_padding_when_too_few_items_are_left():
    # Items 0, 1, 2 seen: only 3 (.8) and 4 (-1) remain for top_n = 3.
    top, _, valid = mining.retrieve(np.array([[1, 0]], np.float32), ITEMS, [[0, 1, 2]], 3)
    np.testing.assert_array_equal(top[:, :2], [[3, 4]])
    np.testing.assert_array_equal(valid, [[True, True, False]])
    # top_n larger than the catalog: V columns.
    top, _, _ = mining.retrieve(np.array([[1, 0]], np.float32), ITEMS, [[]], 100)
    np.testing.assert_array_equal(top, [[0, 3, 2, 1, 4]])


def test_select_keeps_what_the_ranker_rejects_in_retrieval_order():
    # Retrieved (best first) items 3, 2, 1, 4; the ranker scores them .1, .9, .5, .7:
    # its top 2 are items 2 (.9) and 4 (.7); items 3 and 1 are hard negatives, 3 first.
    top = np.array([[3, 2, 1, 4]])
    valid = np.ones_like(top, bool)
    ranker = np.array([[0.1, 0.9, 0.5, 0.7]])
    assert mining.select_hard_negatives(top, valid, ranker, top_k=2, max_per_user=5) == [[3, 1]]
    assert mining.select_hard_negatives(top, valid, ranker, top_k=2, max_per_user=1) == [[3]]
    assert mining.select_hard_negatives(top, valid, ranker, top_k=4, max_per_user=5) == [[]]


def test_select_breaks_ranker_ties_by_retrieval_order_and_skips_padding():
    top = np.array([[0, 1, 2], [4, 3, 0]])
    valid = np.array([[True, True, True], [True, True, False]])
    ranker = np.array([[0.5, 0.5, 0.5], [0.1, 0.2, 99.0]])
    # Row 0: all tied, top 1 = the best retrieved (item 0). Row 1: the padding column's 99
    # is ignored; the ranker keeps item 3 (.2); item 4 is the hard negative.
    out = mining.select_hard_negatives(top, valid, ranker, top_k=1, max_per_user=5)
    assert out == [[1, 2], [4]]


def test_end_to_end_selection_on_hand_derived_scores():
    # q0 retrieves 3, 2, 1 (see above); the ranker prefers 1, then 3, then 2: top_k = 1
    # keeps item 1, so items 3 and 2 come out, in retrieval order.
    top, _, valid = mining.retrieve(np.array([[1, 0]], np.float32), ITEMS, [[0]], top_n=3)
    ranker = np.array([[0.4, 0.2, 0.9]])
    rows = mining.select_hard_negatives(top, valid, ranker, top_k=1, max_per_user=50)
    assert mining.negatives_by_user(["u0"], rows, list("abcde")) == {"u0": ["d", "c"]}


def test_latest_rows_and_seen_items():
    users, ts = ["a", "b", "a", "a", "b"], [5, 1, 9, 9, 0]
    assert mining.latest_rows(users, ts) == {"a": 2, "b": 1}
    seen = mining.seen_items(
        ["a", "a", "b"], ["x", "y", "z"], [1, 0, 0], [["p", ""], ["p", "q"], []]
    )
    # "y" is a label-0 target (low rating or sampled negative): not seen by itself.
    assert seen == {"a": {"x", "p", "q", ""}, "b": set()}


@pytest.mark.parametrize(
    "kwargs, field",
    [({"top_n": 0}, "top_n"), ({"top_k": 100}, "top_k"), ({"max_per_user": 0}, "max_per_user")],
)
def test_config_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=f"HardNegativeMiner.{field}"):
        mining.MiningConfig(**kwargs)


def test_tsv_format_and_atomic_write(tmp_path):
    text = mining.format_tsv({"u1": ["a", "b"], "u2": [], "u3": ["c"]})
    assert text == "u1\ta b\nu3\tc\n"
    path = str(tmp_path / mining.TSV_FILE)
    mining.write_atomic(path, "old\n")
    mining.write_atomic(path, text)
    assert open(path).read() == text
    assert os.listdir(tmp_path) == [mining.TSV_FILE]  # no temporary file left
    assert mining.has_negatives(path)
    mining.write_atomic(path, mining.format_tsv({}))
    assert not mining.has_negatives(path) and not mining.has_negatives(str(tmp_path / "none"))


def test_tsv_refuses_ids_it_cannot_hold():
    with pytest.raises(ValueError, match="item id 'a b'.*user 'u1'"):
        mining.format_tsv({"u1": ["a b"]})
    with pytest.raises(ValueError, match="user id 'u\\\\t1'"):
        mining.format_tsv({"u\t1": ["a"]})


def test_summarize():
    report = mining.summarize({"a": ["x", "y"], "b": [], "c": ["z"]}, users=4)
    assert report == {
        "users_mined": 4,
        "users_with_negatives": 2,
        "negatives": 3,
        "negatives_per_user": 0.75,
        "max_negatives_per_user": 2,
    }


def test_tsv_round_trip_through_the_trainer_loader(tiny_data, tmp_path):
    """What the miner writes is what `updates.load_mined_negatives` reads."""
    tft_output = tft.TFTransformOutput(tiny_data.transform_graph)
    vocabs = updates.read_vocabularies(tft_output)
    users, items = vocabs[F.USER_ID][:2], vocabs[F.ITEM_ID][:4]
    negatives = {users[0]: [items[2], items[0], "not-an-item", items[3]], users[1]: [items[1]]}
    path = str(tmp_path / mining.TSV_FILE)
    mining.write_atomic(path, mining.format_tsv(negatives))
    table = updates.load_mined_negatives(path, tft_output, max_per_user=2)
    assert table.shape == (len(vocabs[F.USER_ID]) + F.USER_OOV_BUCKETS, 2)
    np.testing.assert_array_equal(table[0], [2, 0])  # unknown item dropped, capped at 2
    np.testing.assert_array_equal(table[1], [1, -1])
    assert (table[2:] == -1).all()
    assert tf.io.gfile.exists(path)
