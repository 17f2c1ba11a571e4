"""Hand-derived values of the popularity prior's columns.

Counts n = [0, e - 1, e^2 - 1, 0] (log(1 + n) = [0, 1, 2, 0], the last an OOV bucket),
beta = 0.1. Max log(1 + n) = 2, so s = COLUMN_MAX / 2 = 0.125: candidate column
[0, 0.125, 0.25, 0], query value beta / s = 0.8; the prior per item is
0.8 * [0, 0.125, 0.25, 0] = [0, 0.1, 0.2, 0] = beta * log(1 + n).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from models.retrieval.config import RetrievalConfig
from models.retrieval.layers import ItemCatalog
from models.retrieval.prior import PopularityPrior, make_prior
from schemas import features as F

COUNTS = [0.0, math.e - 1, math.e**2 - 1, 0.0]


def _close(value, expected, tol=1e-6):
    np.testing.assert_allclose(np.asarray(value), expected, rtol=tol, atol=tol)


def test_columns_and_scale():
    prior = PopularityPrior(0.1, COUNTS)
    _close(prior.scale, 0.125)
    _close(prior.column, [0.0, 0.125, 0.25, 0.0])
    _close(prior.query_value, 0.8)
    _close(prior.item_scores(), [0.0, 0.1, 0.2, 0.0])
    assert prior.describe()["max_count"] == int(math.e**2 - 1)


def test_dot_product_is_cosine_plus_beta_log1p_n():
    prior = PopularityPrior(0.1, COUNTS)
    q = tf.constant([[1.0, 0.0], [0.0, 1.0]])  # two queries
    c = tf.constant([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])  # items 2, 1, 7 (7 clips to 3)
    ids = tf.constant([2, 1, 7], tf.int64)
    qq, cc = prior.query(q), prior.candidates(c, ids)
    _close(qq, [[1.0, 0.0, 0.8], [0.0, 1.0, 0.8]])
    _close(cc, [[0.6, 0.8, 0.25], [1.0, 0.0, 0.125], [0.0, 1.0, 0.0]])
    # cos [[0.6, 1, 0], [0.8, 0, 1]] + prior [0.2, 0.1, 0] (an id past the table: the
    # last row, an OOV bucket with no events, adds 0; a negative id clips to row 0).
    _close(tf.matmul(qq, cc, transpose_b=True), [[0.8, 1.1, 0.0], [1.0, 0.1, 1.0]])
    _close(prior.candidates(c[:1], tf.constant([-1], tf.int64))[0, 2], 0.0)


def test_no_events_gives_a_zero_column():
    prior = PopularityPrior(0.03, [0, 0, 0])
    _close(prior.column, [0, 0, 0])
    _close(prior.item_scores(), [0, 0, 0])


@pytest.mark.parametrize(
    "beta, counts, message",
    [
        (0.0, COUNTS, "beta"),
        (float("nan"), COUNTS, "beta"),
        (0.1, [], "counts"),
        (0.1, [1.0, -1.0], "counts"),
        (0.1, [[1.0]], "counts"),
        (0.1, [1.0, float("inf")], "counts"),
    ],
)
def test_bad_input_is_refused(beta, counts, message):
    with pytest.raises(ValueError, match=message):
        PopularityPrior(beta, counts)


def test_make_prior_and_config():
    assert make_prior(0.0, COUNTS) is None
    assert make_prior(0.1, COUNTS).beta == 0.1
    assert RetrievalConfig().tower.popularity_prior == 0.03
    assert RetrievalConfig().with_overrides(popularity_prior=0).tower.popularity_prior == 0
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="tower.popularity_prior"):
            RetrievalConfig().with_overrides(popularity_prior=bad)


def test_catalog_counts_positives_not_low_ratings_or_sampled_negatives():
    ids = F.transformed_name(F.ITEM_ID)
    batch = {
        ids: tf.constant([0, 1, 1, 2, 2, 9, -1], tf.int64),
        F.transformed_name(F.GENRES): tf.sparse.from_dense(tf.zeros([7, 1], tf.int64)),
        F.transformed_name(F.PRIMARY_GENRE): tf.zeros([7], tf.int64),
        F.YEAR_NORMALIZED: tf.zeros([7]),
        # item 1: a low rating (label 0) and a positive; item 2: two sampled negatives;
        # 9 is outside the 4-row table and -1 is padding: neither counts.
        F.LABEL: tf.constant([1, 0, 1, 0, 0, 1, 1], tf.int64),
    }
    np.testing.assert_array_equal(ItemCatalog.from_batches([batch], 4).positives, [1, 1, 0, 0])
    # Two batches add up.
    twice = ItemCatalog.from_batches([batch, batch], 4).positives
    np.testing.assert_array_equal(twice, [2, 2, 0, 0])
