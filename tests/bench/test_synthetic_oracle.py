"""bench/synthetic_oracle.py and the generator's latents it reads."""

import numpy as np
import pandas as pd
import pytest

from bench import synthetic_oracle as O
from pipeline.sources import synthetic
from schemas import features as F


def _tables(rows):
    events = pd.DataFrame(rows, columns=[F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP])
    return synthetic.Tables(interactions=events, items=None, users=None)


def test_oracle_ranks_by_the_logits_excluding_earlier_items_by_hand():
    # 4 items on a line; user u0's target (its last rating >= 4) is its 3rd event, i2.
    vectors = np.array([[3.0], [2.0], [1.0], [0.0]])
    log_pop = np.zeros(4)
    queries = np.ones((4, 1))  # logits 3, 2, 1, 0 for every event
    tables = _tables([
        ("u0", "i0", 5.0, 1), ("u0", "i3", 2.0, 2), ("u0", "i2", 4.0, 3), ("u0", "i1", 1.0, 4),
        ("u1", "i1", 3.0, 1),  # no positive: not scored
    ])  # fmt: skip
    latents = synthetic.Latents(vectors, log_pop, queries)
    # i0 and i3 came before the target: excluded. i1 (logit 2) beats i2 (1): rank 1.
    m = O.oracle_metrics(tables, latents, k=1)
    assert m == {"users": 1, "hr@1": 0.0, "ndcg@1": 0.0}
    m = O.oracle_metrics(tables, latents, k=2)
    assert m["hr@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / np.log2(3))
    # Popularity enters the logits: i2 made 10x more popular than i1 now ranks first.
    latents = synthetic.Latents(vectors, np.log([1.0, 1.0, 10.0, 1.0]), queries)
    assert O.oracle_metrics(tables, latents, k=1)["hr@1"] == 1.0


def test_latents_leave_the_tables_unchanged_and_follow_their_row_order():
    spec = synthetic.SIZES["tiny"]
    tables, latents = synthetic.generate_with_latents(spec)
    pd.testing.assert_frame_equal(tables.interactions, synthetic.generate(spec).interactions)
    assert latents.queries.shape == (len(tables.interactions), spec.dim)
    # Each event's item was drawn from its query's softmax: it ranks high under its own
    # query, and no better than chance under another row's.
    item = np.array([int(i[1:]) for i in tables.interactions[F.ITEM_ID]])

    def mean_percentile(queries):
        logits = queries @ latents.item_vectors.T + latents.log_popularity
        chosen = logits[np.arange(len(item)), item]
        return float(((logits > chosen[:, None]).mean(axis=1)).mean())

    assert mean_percentile(latents.queries) < 0.15
    assert mean_percentile(np.roll(latents.queries, 7, axis=0)) > 0.2
