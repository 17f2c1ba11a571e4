"""Hand-derived tests of the sequence builder (no Beam, no TFX)."""

import collections

import numpy as np
import pytest

from components.behavior_sequence_gen import sequences as S
from schemas import features as F

ITEMS = {
    i: {F.ITEM_ID: i, F.GENRES: [g], F.YEAR: 1990 + n}
    for n, (i, g) in enumerate(zip("ABCDEFGHIJ", ["Action", "Drama"] * 5, strict=False))
}


def ev(user, ts, item, rating):
    return {F.USER_ID: user, F.TIMESTAMP: ts, F.ITEM_ID: item, F.RATING: float(rating)}


# Three users, worked out by hand (threshold 4):
# u1: A(10,5) B(20,3) C(30,4) D(40,2): last positive C is eval; D comes after it.
# u2: B(5,4) A(5,5) C(15,5) C(15,5) dup, E(25,1), Z(35,5) unknown item.
#     Sorted (ts, item): A B C E; A and B share t=5, so B's history is empty.
# u3: A(1,1) B(2,2): no positive event, so not scored: all train.
THREE_USERS = {
    "u1": [ev("u1", 10, "A", 5), ev("u1", 20, "B", 3), ev("u1", 30, "C", 4), ev("u1", 40, "D", 2)],
    "u2": [
        ev("u2", 5, "B", 4),
        ev("u2", 5, "A", 5),
        ev("u2", 15, "C", 5),
        ev("u2", 15, "C", 5),
        ev("u2", 25, "E", 1),
        ev("u2", 35, "Z", 5),
    ],
    "u3": [ev("u3", 1, "A", 1), ev("u3", 2, "B", 2)],
}


def summarize(timeline):
    return [(e.item_id, e.label, e.split, e.history) for e in timeline.events]


def test_three_users_leave_last_out():
    cfg = S.SequenceConfig(history_length=3)
    got, drops = {}, collections.Counter()
    for user, rows in THREE_USERS.items():
        timeline, d = S.build_timeline(user, rows, {F.AGE: 30}, ITEMS, cfg)
        got[user] = summarize(timeline)
        drops += d
    assert got["u1"] == [
        ("A", 1, "train", ()),
        ("B", 0, "train", ("A",)),
        ("C", 1, "eval", ("A", "B")),
    ]
    assert got["u2"] == [("A", 1, "train", ()), ("B", 1, "train", ()), ("C", 1, "eval", ("A", "B"))]
    assert got["u3"] == [("A", 0, "train", ()), ("B", 0, "train", ("A",))]
    assert drops == {S.DROP_AFTER_EVAL_TARGET: 2, S.DROP_DUPLICATE_EVENT: 1, S.DROP_UNKNOWN_ITEM: 1}


def test_history_keeps_last_n_and_pads():
    cfg = S.SequenceConfig(history_length=1, negative_ratio=0)
    timeline, _ = S.build_timeline("u1", THREE_USERS["u1"], None, ITEMS, cfg)
    assert timeline.events[-1].history == ("B",)
    examples = list(S.emit_examples(timeline, ITEMS, None, cfg))
    assert [(s, x[F.ITEM_ID], x[F.HISTORY_ITEM_IDS], x[F.HISTORY_GENRES]) for s, x in examples] == [
        ("train", "A", [""], [""]),
        ("train", "B", ["A"], ["Action"]),
        ("eval", "C", ["B"], ["Drama"]),
    ]
    assert examples[0][1][F.GENDER] == F.UNKNOWN and examples[0][1][F.AGE] == F.MISSING_INT


def test_implicit_log_every_event_positive():
    rows = [{k: v for k, v in r.items() if k != F.RATING} for r in THREE_USERS["u1"]]
    timeline, drops = S.build_timeline(
        "u1", rows, {}, ITEMS, S.SequenceConfig(rating_threshold=None)
    )
    assert summarize(timeline)[-1] == ("D", 1, "eval", ("A", "B", "C"))
    assert [e.label for e in timeline.events] == [1, 1, 1, 1] and not drops


def test_time_cutoff_split():
    cfg = S.SequenceConfig(split=S.TIME_CUTOFF, cutoff_timestamp=30)
    timeline, _ = S.build_timeline("u1", THREE_USERS["u1"], {}, ITEMS, cfg)
    assert [(e.item_id, e.split) for e in timeline.events] == [
        ("A", "train"),
        ("B", "train"),
        ("C", "eval"),
        ("D", "eval"),
    ]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="cutoff_timestamp"):
        S.SequenceConfig(split=S.TIME_CUTOFF)
    with pytest.raises(ValueError, match="history_length"):
        S.SequenceConfig(history_length=0)
    with pytest.raises(ValueError, match="split"):
        S.SequenceConfig(split="random")


@pytest.mark.parametrize("split", [S.LEAVE_LAST_OUT, S.TIME_CUTOFF])
def test_no_eval_event_in_any_train_history(split):
    rng = np.random.default_rng(7)
    catalog = {f"i{k}": {F.ITEM_ID: f"i{k}", F.GENRES: ["G"]} for k in range(300)}
    cfg = S.SequenceConfig(split=split, cutoff_timestamp=500, history_length=50)
    n_eval = 0
    for u in range(200):
        items = rng.choice(300, size=rng.integers(1, 40), replace=False)
        rows = [ev(f"u{u}", int(rng.integers(0, 1000)), f"i{k}", rng.integers(1, 6)) for k in items]
        timeline, _ = S.build_timeline(f"u{u}", rows, {}, catalog, cfg)
        if timeline is None:
            continue
        eval_events = [e for e in timeline.events if e.split == S.EVAL]
        n_eval += len(eval_events)
        first_eval = min((e.timestamp for e in eval_events), default=None)
        for e in timeline.events:
            if e.split == S.TRAIN:
                assert not {x.item_id for x in eval_events} & set(e.history)
                assert first_eval is None or e.timestamp <= first_eval
    assert n_eval > 50  # the property was exercised


@pytest.mark.parametrize("split", [S.LEAVE_LAST_OUT, S.TIME_CUTOFF])
def test_every_history_item_is_a_target_of_the_same_split_or_an_earlier_one(split):
    # Transform's item and genre vocabularies read the train split's targets only
    # (models/preprocessing.py); that holds every train history item only if this does.
    rng = np.random.default_rng(11)
    catalog = {f"i{k}": {F.ITEM_ID: f"i{k}", F.GENRES: ["G"]} for k in range(300)}
    cfg = S.SequenceConfig(
        split=split, cutoff_timestamp=500, history_length=5, max_events_per_user=25
    )
    targets = {S.TRAIN: set(), S.EVAL: set()}
    histories = {S.TRAIN: set(), S.EVAL: set()}
    for u in range(200):
        n = int(rng.integers(1, 40))
        rows = [
            ev(f"u{u}", int(rng.integers(0, 60)) * 17, f"i{rng.integers(300)}", rng.integers(1, 6))
            for _ in range(n)
        ]  # repeats, ties in time and users above the cap included
        timeline, _ = S.build_timeline(f"u{u}", rows, {}, catalog, cfg)
        for e in timeline.events if timeline else ():
            targets[e.split].add(e.item_id)
            histories[e.split].update(e.history)
    assert len(histories[S.TRAIN]) > 100  # the property was exercised
    assert histories[S.TRAIN] <= targets[S.TRAIN]
    assert histories[S.EVAL] <= targets[S.TRAIN] | targets[S.EVAL]


def test_negatives_never_seen_and_share_context():
    cfg = S.SequenceConfig(history_length=3, negative_ratio=2, negative_exclusion=S.EXCLUDE_EVER)
    timeline, _ = S.build_timeline("u1", THREE_USERS["u1"], {}, ITEMS, cfg)
    sampler = S.NegativeSampler({i: 1 for i in ITEMS}, power=0.75)
    examples = list(S.emit_examples(timeline, ITEMS, sampler, cfg))
    # A (train, positive) + 2 negatives, B (negative label) alone, C (eval) + 2 negatives.
    assert [(s, x[F.LABEL]) for s, x in examples] == [
        ("train", 1),
        ("train", 0),
        ("train", 0),
        ("train", 0),
        ("eval", 1),
        ("eval", 0),
        ("eval", 0),
    ]
    negatives = [x for _, x in examples if x[F.LABEL] == 0 and x[F.ITEM_ID] != "B"]
    assert not {x[F.ITEM_ID] for x in negatives} & {"A", "B", "C", "D"}  # D seen after target
    assert [x[F.HISTORY_ITEM_IDS] for x in negatives[2:]] == [["A", "B", ""]] * 2
    again = list(S.emit_examples(timeline, ITEMS, sampler, cfg))
    assert again == examples  # deterministic by seed and user


# A user who touches X only after t: A (t=10, rated 5) and B (t=10, rated 2) at the same
# second, then X (t=50, rated 5, the eval target). Sampler catalog: A, B, X, Y.
LATER_X = [ev("u", 10, "A", 5), ev("u", 10, "B", 2), ev("u", 50, "X", 5)]
LATER_ITEMS = {i: {F.ITEM_ID: i, F.GENRES: ["Drama"], F.YEAR: 1990} for i in "ABXY"}


def _negatives(exclusion):
    cfg = S.SequenceConfig(history_length=3, negative_ratio=2, negative_exclusion=exclusion)
    timeline, _ = S.build_timeline("u", LATER_X, {}, LATER_ITEMS, cfg)
    sampler = S.NegativeSampler({i: 1 for i in LATER_ITEMS}, power=0.75)
    short = collections.Counter()
    out = collections.defaultdict(set)
    for _, context, targets in S.event_examples(timeline, LATER_ITEMS, sampler, cfg, short):
        out[context[F.TIMESTAMP]] |= {t[F.ITEM_ID] for t in targets[1:]}  # [0]: the event
    return dict(out), short[S.NOTE_NEGATIVES_SHORT]


def test_negatives_at_t_may_be_items_touched_after_t():
    # Leak-free default: at t=10 the user has touched A and B (same second, both
    # excluded), so the 2 distinct negatives are exactly X and Y: X, touched at t=50,
    # is a legitimate negative at t=10. B (rated 2, label 0) gets no negatives.
    assert S.SequenceConfig().negative_exclusion == S.EXCLUDE_UNTIL_T
    negatives, short = _negatives(S.EXCLUDE_UNTIL_T)
    assert negatives == {10: {"X", "Y"}, 50: {"Y"}}  # at t=50 A, B, X are all touched
    assert short == 1
    # The former behaviour, kept as a named option: X is never a negative.
    negatives, short = _negatives(S.EXCLUDE_EVER)
    assert negatives == {10: {"Y"}, 50: {"Y"}}
    assert short == 2
    with pytest.raises(ValueError, match="negative_exclusion must be one of"):
        S.SequenceConfig(negative_exclusion="never")


def test_negative_distribution_follows_count_power():
    # counts 1, 16, 81, 256 -> count**0.75 = 1, 8, 27, 64 -> probabilities /100.
    sampler = S.NegativeSampler({"a": 1, "b": 16, "c": 81, "d": 256, "cold": 0}, power=0.75)
    np.testing.assert_allclose(sampler.probs, [0.01, 0.08, 0.27, 0.64])
    rng = np.random.default_rng(0)
    draws = collections.Counter(sampler.sample(rng, 1, frozenset())[0] for _ in range(20000))
    freq = np.array([draws[k] for k in "abcd"]) / 20000
    # Binomial std at p=0.64, n=20000 is 0.0034; 0.015 is over 4 sigma.
    np.testing.assert_allclose(freq, [0.01, 0.08, 0.27, 0.64], atol=0.015)
    assert "cold" not in draws
    # Excluding d renormalises over the rest: 1/36, 8/36, 27/36.
    draws = collections.Counter(sampler.sample(rng, 1, frozenset({"d"}))[0] for _ in range(20000))
    freq = np.array([draws[k] for k in "abc"]) / 20000
    np.testing.assert_allclose(freq, np.array([1, 8, 27]) / 36, atol=0.015)
    assert draws["d"] == 0


def test_sampler_returns_fewer_when_catalog_exhausted():
    sampler = S.NegativeSampler({"a": 1, "b": 2}, power=0.75)
    got = sampler.sample(np.random.default_rng(0), 5, frozenset({"a"}))
    assert got == ["b"]
    with pytest.raises(ValueError, match="no item has a training interaction"):
        S.NegativeSampler({"a": 0}, power=0.75)


def test_history_buckets():
    assert [F.history_bucket(n) for n in (0, 1, 4, 5, 9, 10, 19, 20, 25)] == [
        "0",
        "1-4",
        "1-4",
        "5-9",
        "5-9",
        "10-19",
        "10-19",
        "20+",
        "20+",
    ]


def test_logged_events_are_marked_and_sampled_negatives_are_not():
    cfg = S.SequenceConfig(history_length=3, negative_ratio=2)
    timeline, _ = S.build_timeline("u1", THREE_USERS["u1"], {}, ITEMS, cfg)
    sampler = S.NegativeSampler({i: 1 for i in ITEMS}, power=0.75)
    examples = [x for _, x in S.emit_examples(timeline, ITEMS, sampler, cfg)]
    # A (positive) + 2 sampled, B (a low rating: logged, label 0) alone, C + 2 sampled.
    assert [(x[F.ITEM_ID], x[F.LABEL], x[F.EVENT]) for x in examples if x[F.EVENT]] == [
        ("A", 1, 1),
        ("B", 0, 1),
        ("C", 1, 1),
    ]
    assert [x[F.LABEL] for x in examples if not x[F.EVENT]] == [0] * 4


def test_user_cap_keeps_the_most_recent_events():
    # u: A(1,5) B(2,5) C(3,2) D(4,5) E(5,4) and unknown Z(6,5); cap 3 keeps C D E (the
    # latest three known-item events); A and B count as over the cap, Z as unknown.
    rows = [ev("u", t, i, r) for t, i, r in [(5, "E", 4), (1, "A", 5), (6, "Z", 5),
                                              (3, "C", 2), (2, "B", 5), (4, "D", 5)]]  # fmt: skip
    cfg = S.SequenceConfig(history_length=5, max_events_per_user=3)
    timeline, drops = S.build_timeline("u", iter(rows), {}, ITEMS, cfg)
    # The last positive E is eval; C and D train; the histories start at C.
    assert summarize(timeline) == [
        ("C", 0, "train", ()),
        ("D", 1, "train", ("C",)),
        ("E", 1, "eval", ("C", "D")),
    ]
    assert timeline.seen == {"C", "D", "E"}
    assert drops == {S.DROP_OVER_USER_CAP: 2, S.DROP_UNKNOWN_ITEM: 1}
    uncapped, drops = S.build_timeline("u", rows, {}, ITEMS, S.SequenceConfig(history_length=5,
                                       max_events_per_user=None))  # fmt: skip
    assert [e.item_id for e in uncapped.events] == list("ABCDE")
    assert S.DROP_OVER_USER_CAP not in drops


def test_user_cap_ties_keep_the_later_item_and_the_higher_rating():
    rows = [ev("u", 7, "B", 2), ev("u", 7, "A", 5), ev("u", 7, "B", 5)]
    timeline, drops = S.build_timeline(
        "u", rows, {}, ITEMS, S.SequenceConfig(max_events_per_user=1)
    )
    assert summarize(timeline) == [("B", 1, "eval", ())]
    assert drops[S.DROP_OVER_USER_CAP] == 2


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_user_cap_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="max_events_per_user must be an int >= 1 or None"):
        S.SequenceConfig(max_events_per_user=bad)


def _heavy_user(n):
    """n events of one user, made one at a time (as a runner pages a large group)."""
    items = list("ABCDEFGHIJ")
    for t in range(n):
        yield ev("bot", t, items[t % 10], 5 if t % 3 else 2)


def _peak_bytes(rows, cfg):
    import tracemalloc

    tracemalloc.start()
    try:
        timeline, drops = S.build_timeline("bot", rows, {}, ITEMS, cfg)
        return tracemalloc.get_traced_memory()[1], timeline, drops
    finally:
        tracemalloc.stop()


def test_a_user_with_100k_events_costs_the_cap_not_the_events():
    cfg = S.SequenceConfig(max_events_per_user=1_000)
    peak, timeline, drops = _peak_bytes(_heavy_user(100_000), cfg)
    assert len(timeline.events) == 1_000 - 1  # the cap, minus none after the eval target
    assert timeline.events[0].timestamp == 99_000 and timeline.events[-1].split == S.EVAL
    assert drops[S.DROP_OVER_USER_CAP] == 99_000
    # 1,000 kept rows, events and histories: about 1 MB. Without the cap every one of
    # the 100,000 rows is held (the contrast below), tens of MB.
    assert peak < 5 * 2**20, peak
    uncapped, _, _ = _peak_bytes(_heavy_user(100_000), S.SequenceConfig(max_events_per_user=None))
    assert uncapped > 4 * peak
