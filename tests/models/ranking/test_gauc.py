"""AUC and GAUC in numpy, worked out by hand."""

import math

import numpy as np
import pytest

from models.ranking.gauc import GAUC, auc, gauc, user_hash
from schemas import features as F


def test_auc_counts_ties_as_half():
    # Positive/negative pairs: (0.9, 0.1) 1, (0.9, 0.4) 1, (0.4, 0.1) 1, (0.4, 0.4) 1/2 -> 3.5 / 4.
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.4]) == pytest.approx(0.875)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    # User a: positive 0.2 beats one of two negatives (0.1, not 0.5) -> AUC 0.5, 3 impressions.
    # User b: 0.9 > 0.3 -> AUC 1, 2 impressions. User c has only a positive: skipped.
    # GAUC = (3 * 0.5 + 2 * 1) / 5 = 0.7.
    labels = [1, 0, 0, 1, 0, 1]
    scores = [0.2, 0.5, 0.1, 0.9, 0.3, 0.7]
    users = np.array(["a", "a", "a", "b", "b", "c"])
    value, n = gauc(labels, scores, users)
    assert value == pytest.approx(0.7)
    assert n == 2
    # Order does not matter.
    perm = [5, 3, 0, 4, 2, 1]
    assert gauc(np.take(labels, perm), np.take(scores, perm), users[perm])[0] == pytest.approx(0.7)


def test_gauc_weights_a_user_by_the_sum_of_its_example_weights():
    # Same users as above; user a's examples weigh 2 each (6 in all), user b's 1 each (2).
    # GAUC = (6 * 0.5 + 2 * 1) / 8 = 0.625.
    labels = [1, 0, 0, 1, 0, 1]
    scores = [0.2, 0.5, 0.1, 0.9, 0.3, 0.7]
    users = ["a", "a", "a", "b", "b", "c"]
    value, n = gauc(labels, scores, users, weights=[2, 2, 2, 1, 1, 5])
    assert value == pytest.approx(0.625) and n == 2


def _inputs(user, label, score, weight=1.0):
    """One example as TFMA hands it to a metric combiner (StandardMetricInputs)."""
    from tensorflow_model_analysis.metrics import metric_types

    return metric_types.StandardMetricInputs(
        labels=np.array([float(label)]),
        predictions=np.array([score], np.float32),
        example_weights=np.array([weight]),
        features={F.USER_ID: np.array([user.encode()], dtype=object)},
    )


def _combiner(**kwargs):
    (computation,) = GAUC().computations(**kwargs)
    return computation


def test_the_tfma_combiner_merges_pickled_parts_into_the_hand_derived_gauc():
    import pickle

    computation = _combiner()
    assert computation.preprocessors  # asks TFMA for the user-id feature
    combiner = computation.combiner
    rows = [
        ("a", 1, 0.2),
        ("a", 0, 0.5),
        ("b", 1, 0.9),
        ("a", 0, 0.1),
        ("b", 0, 0.3),
        ("c", 1, 0.7),
    ]
    # Split across two accumulators (two bundles, maybe two processes), user a in both.
    parts = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i, (user, label, score) in enumerate(rows):
        parts[i % 2] = combiner.add_input(parts[i % 2], _inputs(user, label, score))
    parts = [pickle.loads(pickle.dumps(p)) for p in parts]
    merged = combiner.merge_accumulators(parts)
    (value,) = combiner.extract_output(merged).values()
    assert value == pytest.approx(0.7)  # (3 * 0.5 + 2 * 1) / 5, as worked out above
    empty = combiner.extract_output(combiner.create_accumulator())
    assert all(math.isnan(v) for v in empty.values())


def test_the_tfma_combiner_names_a_missing_user_id_and_refuses_a_query_key():
    from tensorflow_model_analysis.metrics import metric_types

    combiner = _combiner().combiner
    bare = metric_types.StandardMetricInputs(
        labels=np.array([1.0]), predictions=np.array([0.5]), features={}
    )
    with pytest.raises(ValueError, match=F.USER_ID):
        combiner.add_input(combiner.create_accumulator(), bare)
    with pytest.raises(ValueError, match="without query_key"):
        _combiner(query_key=F.USER_ID)


def test_user_hash_is_stable_across_types_and_processes():
    import subprocess
    import sys

    assert user_hash(b"42") == user_hash("42") == user_hash(42) == user_hash(np.array([b"42"]))
    assert user_hash(b"42") != user_hash(b"43")
    code = "from models.ranking.gauc import user_hash; print(user_hash(b'42'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout.split()[-1]) == user_hash(b"42")  # Python's own hash is salted
