"""Sampling distributions, the candidate sampler and positive re-sampling.

Statistical checks use n draws and a tolerance of >= 5 binomial standard
deviations, sqrt(p (1 - p) / n); with fixed seeds they are deterministic anyway.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from models.retrieval import samplers
from schemas import features as F

ITEM = F.transformed_name(F.ITEM_ID)


def test_log_uniform_probs_match_the_formula_and_sum_to_one():
    # V = 4: P(k) = ln((k + 2) / (k + 1)) / ln 5, ln 5 = 1.609438
    # P(0) = ln 2 / ln 5 = 0.430677, P(1) = ln 1.5 / ln 5 = 0.251930,
    # P(2) = ln(4/3) / ln 5 = 0.178747, P(3) = ln 1.25 / ln 5 = 0.138647
    probs = samplers.log_uniform_probs(4)
    np.testing.assert_allclose(probs, [0.430677, 0.251930, 0.178747, 0.138647], atol=1e-6)
    assert math.isclose(samplers.log_uniform_probs(1000).sum(), 1.0, rel_tol=1e-12)


def test_unigram_probs():
    # counts [16, 1, 0] ** 0.75 = [8, 1, 0] -> [8/9, 1/9, 0]
    np.testing.assert_allclose(samplers.unigram_probs([16, 1, 0]), [8 / 9, 1 / 9, 0.0])
    np.testing.assert_allclose(samplers.unigram_probs([16, 1, 0], power=1.0), [16 / 17, 1 / 17, 0])
    with pytest.raises(ValueError):
        samplers.unigram_probs([0, 0])


PROBS = np.array([0.5, 0.3, 0.2, 0.0])
N_DRAWS = 20_000
TOL = 0.02  # > 5 sd: sd <= sqrt(0.25 / 20000) = 0.0035


def _frequencies(ids):
    return np.bincount(np.asarray(ids), minlength=len(PROBS)) / len(ids)


def test_numpy_sampler_distribution_and_log_counts():
    sampler = samplers.CandidateSampler(PROBS, seed=3)
    ids, log_count = sampler.sample(N_DRAWS)
    assert ids.dtype == np.int64 and log_count.dtype == np.float32
    np.testing.assert_allclose(_frequencies(ids), PROBS, atol=TOL)
    # log expected count = log(m * p): e.g. id 0 -> ln(20000 * 0.5) = ln 10000 = 9.210340
    np.testing.assert_allclose(log_count, np.log(N_DRAWS * PROBS[ids]), rtol=1e-6)
    assert np.all(log_count[ids == 0] == np.float32(math.log(10_000)))


def test_numpy_sampler_is_deterministic_given_the_seed():
    a, b = samplers.CandidateSampler(PROBS, seed=7), samplers.CandidateSampler(PROBS, seed=7)
    np.testing.assert_array_equal(a.sample(50)[0], b.sample(50)[0])
    assert not np.array_equal(a.sample(50)[0], samplers.CandidateSampler(PROBS, 8).sample(50)[0])


def test_tf_sampler_distribution_and_stateless_determinism():
    sampler = samplers.CandidateSampler(PROBS, seed=0)
    ids, log_count = sampler.sample_tf(N_DRAWS, seed=tf.constant([1, 2], tf.int64))
    assert ids.dtype == tf.int64 and log_count.dtype == tf.float32
    np.testing.assert_allclose(_frequencies(ids.numpy()), PROBS, atol=TOL)
    np.testing.assert_allclose(log_count.numpy(), np.log(N_DRAWS * PROBS[ids.numpy()]), rtol=1e-5)
    again, _ = sampler.sample_tf(N_DRAWS, seed=tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(ids.numpy(), again.numpy())


def test_tf_sampler_inside_tf_function_advances_and_repeats_with_the_seed():
    def draws(seed):
        sampler = samplers.CandidateSampler(PROBS, seed=seed)
        fn = tf.function(lambda: sampler.sample_tf(100)[0])
        return fn().numpy(), fn().numpy()

    first, second = draws(5)
    assert not np.array_equal(first, second)  # the generator advances between calls
    again_first, again_second = draws(5)  # same seed, same sequence
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)


def test_positive_keep_probability_decreases_with_count():
    # counts [1000, 100, 10, 1, 0], total 1111, t = 0.01: t / f = 0.01 * 1111 / count
    # 1000: t/f = 0.01111 -> sqrt 0.105404 + 0.011110 = 0.116514
    # 100:  t/f = 0.1111 -> 0.333317 + 0.1111 = 0.444417
    # 10:   t/f = 1.111 -> min(1, 1.054 + 1.111) = 1; 1 and 0 (no positives) -> 1
    keep = samplers.positive_keep_probability([1000, 100, 10, 1, 0], threshold=0.01)
    np.testing.assert_allclose(keep, [0.116514, 0.444417, 1.0, 1.0, 1.0], atol=1e-5)
    many = samplers.positive_keep_probability(np.arange(1, 2001), threshold=1e-4)
    assert np.all(np.diff(many) <= 0) and many[-1] < many[0]


def test_cold_item_weights():
    # min_count 5: counts 1 and 4 are cold (x2); 0 (never a positive), 5 and 100 are not.
    weights = samplers.cold_item_weights([0, 1, 4, 5, 100], min_count=5, boost=2.0)
    np.testing.assert_array_equal(weights, [1.0, 2.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="boost"):
        samplers.cold_item_weights([1], boost=0.5)


def _dataset(ids, labels=None):
    features = {ITEM: np.asarray(ids, np.int64)}
    if labels is not None:
        features[F.LABEL] = np.asarray(labels, np.int64)
    return tf.data.Dataset.from_tensor_slices(features)


def _items(dataset):
    return np.array([int(x[ITEM]) for x in dataset.as_numpy_iterator()])


def test_resample_positives_drops_and_repeats_with_the_expected_rates():
    # item 0 kept with p = 0.25 (4000 copies -> 1000 expected, sd 27.4);
    # item 1 repeated 2.5 times (1000 -> 2000 + Binomial(1000, 0.5): 2500, sd 15.8);
    # item 2 untouched (1000 -> exactly 1000); item 7 is outside the tables -> kept once.
    ids = [0] * 4000 + [1] * 1000 + [2] * 1000 + [7]
    keep, repeat = [0.25, 1.0, 1.0], [1.0, 2.5, 1.0]
    out = samplers.resample_positives(_dataset(ids), keep, repeat, ITEM, seed=1)
    counts = np.bincount(_items(out), minlength=8)
    assert abs(counts[0] - 1000) < 150
    assert abs(counts[1] - 2500) < 80
    assert counts[2] == 1000 and counts[7] == 1
    again = samplers.resample_positives(_dataset(ids), keep, repeat, ITEM, seed=1)
    np.testing.assert_array_equal(_items(out), _items(again))


def test_resample_positives_leaves_negatives_alone_with_a_label_key():
    # keep probability 0 drops every positive of item 0; the label-0 rows pass once.
    ds = _dataset([0, 0, 0, 0], labels=[1, 0, 1, 0])
    out = samplers.resample_positives(ds, [0.0], None, ITEM, seed=0, label_key=F.LABEL)
    assert [int(x[F.LABEL]) for x in out.as_numpy_iterator()] == [0, 0]
