"""The canary's golden requests and its comparison rules (hand-made answers)."""

import numpy as np
import pytest

from models.serving import canary
from schemas import features as F
from schemas import serving as C


def _answer(ids, final, probs=None):
    """An answer ordered by `final`; ranker probabilities default to exp(final)."""
    ids = np.array([[i.encode() for i in row] for row in ids], dtype=object)
    final = np.array(final, np.float32)
    probs = np.exp(final) if probs is None else np.array(probs, np.float32)
    return {
        C.ITEM_IDS: ids,
        C.SCORES: probs,
        C.RETRIEVAL_SCORES: np.zeros_like(final),
        C.FINAL_SCORES: final,
    }


def test_exact_answers_must_match_up_to_ties():
    expected = _answer([["a", "b", "c"]], [[0.9, 0.5, 0.5]])
    # b and c tie at the cut: returning c before b, or d (also 0.5) instead, is fine.
    assert canary.compare(_answer([["a", "c", "b"]], [[0.9, 0.5, 0.5]]), expected, True, 1.0) == []
    assert canary.compare(_answer([["a", "d", "c"]], [[0.9, 0.5, 0.5]]), expected, True, 1.0) == []
    # a is above the cut: it must be there, and the scores must agree.
    problems = canary.compare(_answer([["x", "b", "c"]], [[0.9, 0.5, 0.5]]), expected, True, 1.0)
    assert problems == ["request 0: missing [b'a']"]
    # Each score must agree: the final score (the order) and the ranker's probability.
    answer = _answer([["a", "b", "c"]], [[0.8, 0.5, 0.5]], np.exp([[0.9, 0.5, 0.5]]))
    problems = canary.compare(answer, expected, True, 1.0)
    assert len(problems) == 1 and problems[0].startswith("request 0: final_scores")
    answer = _answer([["a", "b", "c"]], [[0.9, 0.5, 0.5]], [[0.1, 0.2, 0.3]])
    problems = canary.compare(answer, expected, True, 1.0)
    assert len(problems) == 1 and problems[0].startswith("request 0: scores")


def test_empty_slots_must_agree_in_number():
    expected = _answer([["a", "", ""]], [[0.9, 0.0, 0.0]])
    problems = canary.compare(_answer([["a", "b", ""]], [[0.9, 0.1, 0.0]]), expected, True, 1.0)
    assert problems == ["request 0: 2 items returned, expected 1"]


def test_approximate_answers_need_the_mean_overlap():
    expected = _answer([["a", "b"], ["c", "d"]], [[0.9, 0.8], [0.7, 0.6]])
    answer = _answer([["a", "x"], ["c", "d"]], [[0.9, 0.1], [0.7, 0.6]])  # overlap 0.5, 1.0
    assert canary.compare(answer, expected, False, 0.75) == []
    problems = canary.compare(answer, expected, False, 0.8)
    assert problems == ["mean overlap with the exact two-stage answer 0.750 < 0.8"]


def test_golden_requests_add_the_edge_cases_and_pad_histories():
    queries = {
        F.USER_ID: np.array([b"u1", b"u2", b"u3"], object),
        F.AGE: np.array([20, 30, 40]),
        F.GENDER: np.array([b"F", b"M", b"F"], object),
        F.OCCUPATION: np.array([b"x", b"y", b"z"], object),
        F.TIMESTAMP: np.array([5, 6, 7]),
        F.HISTORY_ITEM_IDS: np.array([[b"i1", b""], [b"i2", b"i3"], [b"", b""]], object),
    }
    catalog = [f"c{i}" for i in range(100)]
    batch = canary.golden_requests(queries, catalog, count=2, seed=0)
    assert len(batch[F.USER_ID]) == 2 + 4
    long_row = batch[F.HISTORY_ITEM_IDS][-1]
    assert batch[F.HISTORY_ITEM_IDS].shape[1] == 2 * F.HISTORY_LENGTH + 5 == len(long_row)
    assert list(batch[F.HISTORY_ITEM_IDS][-3]) == [b""] * len(long_row)  # the empty history
    assert batch[F.AGE].dtype == np.int64 and batch[F.USER_ID].dtype == object
    assert set(batch[F.USER_ID][:2]) <= {b"u1", b"u2", b"u3"}


def test_the_cli_wants_one_golden_and_one_verdict_per_model(capsys):
    with pytest.raises(SystemExit):
        canary.main(["--model", "a", "--model", "b", "--golden", "g", "--out", "o"])
    assert "one --golden and one --out per --model" in capsys.readouterr().err
