"""Tests of the built-in synthetic data source: contract, determinism, writing, structure.

Each structure test states a statistic and a threshold, and checks that the threshold is met
on the "small" size and missed by the same spec with every structure knob set to zero (an
unstructured generator: uniform tastes, no drift, no popularity skew, ratings pure noise).
"""

import collections
import dataclasses
import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.sources import synthetic
from schemas import features as F

TINY = synthetic.SIZES["tiny"]
SMALL = synthetic.SIZES["small"]
UNSTRUCTURED = dataclasses.replace(
    SMALL, taste_strength=0.0, sequential_strength=0.0, drift_rate=0.0,
    demographic_strength=0.0, zipf_exponent=0.0, rating_strength=0.0,
)  # fmt: skip
GENRE_INDEX = {name: i for i, name in enumerate(synthetic.GENRE_NAMES)}

Events = collections.namedtuple("Events", "user genre pos length rating occupation")


def _columns(table):
    return [c.name for c in F.TABLES[table]]


def _read(files):
    return pd.concat([pd.read_csv(f, dtype={F.USER_ID: str, F.ITEM_ID: str}) for f in files])


def _events(tables):
    """Per-user ordered events with the primary genre of each item, as numpy arrays."""
    primary = tables.items[F.GENRES].str.split(F.GENRE_SEPARATOR).str[0].map(GENRE_INDEX)
    genre_of = pd.Series(primary.to_numpy(), index=tables.items[F.ITEM_ID])
    occupation_of = pd.Series(tables.users[F.OCCUPATION].to_numpy(), index=tables.users[F.USER_ID])
    ev = tables.interactions.sort_values([F.USER_ID, F.TIMESTAMP]).reset_index(drop=True)
    user = pd.factorize(ev[F.USER_ID])[0]
    first = np.r_[0, np.flatnonzero(np.diff(user)) + 1]
    length = np.diff(np.r_[first, len(user)])
    return Events(
        user=user, genre=genre_of.loc[ev[F.ITEM_ID]].to_numpy(),
        pos=np.arange(len(user)) - np.repeat(first, length), length=length[user],
        rating=ev[F.RATING].to_numpy(),
        occupation=occupation_of.loc[ev[F.USER_ID].iloc[first]].to_numpy(),
    )  # fmt: skip


def _counts(ev, mask):
    out = np.zeros((ev.user.max() + 1, len(GENRE_INDEX)))
    np.add.at(out, (ev.user[mask], ev.genre[mask]), 1)
    return out


def genre_affinity_gain(tables):
    """Mean log-likelihood gain (nats/event) of the 2nd-half genres, user vs global model.

    The user model is the user's first-half genre counts smoothed toward the global first-half
    distribution (5 pseudo-events); the global model is that distribution itself.
    """
    ev = _events(tables)
    first = ev.pos < ev.length // 2
    counts = _counts(ev, first)
    glob = (counts.sum(axis=0) + 1) / (counts.sum() + len(GENRE_INDEX))
    user_model = (counts + 5 * glob) / (counts.sum(axis=1, keepdims=True) + 5)
    second = ~first
    gain = np.log(user_model[ev.user[second], ev.genre[second]]) - np.log(glob[ev.genre[second]])
    return gain.mean()


def same_genre_rate(tables, lag):
    """Share of a user's event pairs `lag` steps apart with the same primary genre."""
    ev = _events(tables)
    same_user = ev.user[:-lag] == ev.user[lag:]
    return np.mean(ev.genre[:-lag][same_user] == ev.genre[lag:][same_user])


def occupation_dispersion_ratio(tables, n_permutations=50):
    """Between-occupation dispersion of users' genre distributions / max over permutations."""
    ev = _events(tables)
    dist = _counts(ev, np.ones(len(ev.user), bool))
    dist /= dist.sum(axis=1, keepdims=True)

    def dispersion(occupation):
        groups = pd.DataFrame(dist).groupby(occupation)
        return float((groups.size() * ((groups.mean() - dist.mean(axis=0)) ** 2).sum(1)).sum())

    rng = np.random.default_rng(0)
    permuted = [dispersion(rng.permutation(ev.occupation)) for _ in range(n_permutations)]
    return dispersion(ev.occupation) / max(permuted)


def top_decile_share(tables):
    """Share of events on the 10% most consumed items (of the whole catalog)."""
    counts = tables.interactions[F.ITEM_ID].value_counts()
    counts = counts.reindex(tables.items[F.ITEM_ID], fill_value=0).to_numpy()
    return np.sort(counts)[::-1][: len(counts) // 10].sum() / counts.sum()


def liked_consistency_gap(tables):
    """Genre consistency of liked (rating >= 4) minus other events.

    An event's consistency is the share of the user's other events with its primary genre.
    """
    ev = _events(tables)
    same = pd.Series(ev.genre).groupby([ev.user, ev.genre]).transform("size").to_numpy()
    consistency = (same - 1) / (ev.length - 1)
    liked = ev.rating >= 4
    return consistency[liked].mean() - consistency[~liked].mean()


STATISTICS = {  # name -> (statistic, threshold it must exceed)
    "genre_affinity": (genre_affinity_gain, 0.1),
    "sequential_drift": (lambda t: same_genre_rate(t, 1) - same_genre_rate(t, 10), 0.05),
    "demographics": (occupation_dispersion_ratio, 1.5),
    "popularity": (top_decile_share, 0.4),
    "ratings": (liked_consistency_gap, 0.1),
}


@pytest.fixture(scope="module")
def small():
    return synthetic.generate(SMALL)


@pytest.fixture(scope="module")
def unstructured():
    return synthetic.generate(UNSTRUCTURED)


@pytest.fixture(scope="module")
def tiny():
    return synthetic.generate(TINY)


@pytest.mark.parametrize("name", sorted(STATISTICS))
def test_structure_is_measurable(name, small, unstructured):
    statistic, threshold = STATISTICS[name]
    assert statistic(small) > threshold
    assert statistic(unstructured) < threshold


def test_tables_follow_the_contract(tiny):
    for table in F.TABLES:
        assert list(getattr(tiny, table).columns) == _columns(table)
    assert len(tiny.users) == TINY.n_users and len(tiny.items) == TINY.n_items
    events = tiny.interactions
    assert 0.5 * TINY.events_per_user < len(events) / TINY.n_users < 1.5 * TINY.events_per_user
    assert set(events[F.USER_ID]) <= set(tiny.users[F.USER_ID])
    assert set(events[F.ITEM_ID]) <= set(tiny.items[F.ITEM_ID])
    assert set(events[F.RATING]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    genres = tiny.items[F.GENRES].str.split(F.GENRE_SEPARATOR)
    assert genres.map(len).between(1, 3).all() and genres.map(lambda g: len(set(g)) == len(g)).all()
    assert set(genres.explode()) <= set(synthetic.GENRE_NAMES)
    assert tiny.items[F.YEAR].between(1950, 2024).all()
    assert (tiny.items[F.TITLE] == "Item " + tiny.items[F.ITEM_ID].str[1:]).all()
    assert set(tiny.users[F.GENDER]) <= set(synthetic.GENDERS)
    assert set(tiny.users[F.OCCUPATION]) <= set(synthetic.OCCUPATIONS)
    assert tiny.users[F.AGE].between(10, 100).all()


def test_no_repeated_consumption_and_timestamps_increase(tiny):
    events = tiny.interactions
    assert not events.duplicated([F.USER_ID, F.ITEM_ID]).any()
    assert not events.duplicated([F.USER_ID, F.TIMESTAMP]).any()  # strictly increasing
    assert events[F.TIMESTAMP].is_monotonic_increasing
    assert (events[F.TIMESTAMP] >= TINY.start_timestamp).all()


def test_saturated_users_and_huge_catalog_paths(monkeypatch, tiny):
    crowded = synthetic.generate(synthetic.SyntheticSpec(20, 20, 10, n_candidates=1))
    assert not crowded.interactions.duplicated([F.USER_ID, F.ITEM_ID]).any()
    monkeypatch.setattr(synthetic, "_DENSE_CONSUMED_LIMIT", 0)  # consumed items kept as keys
    pd.testing.assert_frame_equal(synthetic.generate(TINY).interactions, tiny.interactions)


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = synthetic.write_tables(synthetic.generate(TINY), tmp_path / "a", n_spans=2)
    b = synthetic.write_tables(synthetic.generate(TINY), tmp_path / "b", n_spans=2)
    other = dataclasses.replace(TINY, seed=1)
    c = synthetic.write_tables(synthetic.generate(other), tmp_path / "c", n_spans=2)
    for table in F.TABLES:
        for fa, fb, fc in zip(a[table], b[table], c[table], strict=True):
            assert filecmp.cmp(fa, fb, shallow=False)
            assert not filecmp.cmp(fa, fc, shallow=False)


def test_written_files_and_spans_partition_events_by_time(tmp_path, tiny):
    files = synthetic.write_tables(tiny, str(tmp_path / "out"), n_spans=4)
    expected = {t: [str(tmp_path / "out" / t / f"span-{k}" / f"{t}.csv") for k in range(n)]
                for t, n in ((F.INTERACTIONS, 4), (F.ITEMS, 1), (F.USERS, 1))}  # fmt: skip
    assert files == expected
    for table, paths in files.items():
        with open(paths[0], encoding="utf-8") as f:
            assert f.readline().rstrip("\n").split(",") == _columns(table)
    spans = [_read([p]) for p in files[F.INTERACTIONS]]
    ts = tiny.interactions[F.TIMESTAMP]
    width = (ts.max() - ts.min() + 1) / 4
    for k, span in enumerate(spans):
        assert len(span) > 0
        assert (span[F.TIMESTAMP] >= ts.min() + k * width).all()
        assert (span[F.TIMESTAMP] < ts.min() + (k + 1) * width).all()
    together = pd.concat(spans).reset_index(drop=True)
    pd.testing.assert_frame_equal(together, tiny.interactions.reset_index(drop=True))
    pd.testing.assert_frame_equal(_read(files[F.ITEMS]), tiny.items)
    pd.testing.assert_frame_equal(_read(files[F.USERS]), tiny.users)


def test_implicit_writes_an_empty_rating_column(tmp_path, tiny):
    implicit = synthetic.generate(dataclasses.replace(TINY, implicit=True))
    files = synthetic.write_tables(implicit, tmp_path / "out")
    with open(files[F.INTERACTIONS][0], encoding="utf-8") as f:
        rows = [line.rstrip("\n").split(",") for line in f][1:]
    assert len(rows) == len(tiny.interactions)
    assert {row[_columns(F.INTERACTIONS).index(F.RATING)] for row in rows} == {""}
    keys = [F.USER_ID, F.ITEM_ID, F.TIMESTAMP]
    pd.testing.assert_frame_equal(implicit.interactions[keys], tiny.interactions[keys])


def test_write_refuses_non_empty_dir_and_leaves_no_temp_dirs(tmp_path, tiny):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        synthetic.write_tables(tiny, out)
    assert os.listdir(out) == ["keep.txt"]
    synthetic.write_tables(tiny, out, overwrite=True)
    assert sorted(os.listdir(out)) == sorted(F.TABLES)
    assert os.listdir(tmp_path) == ["out"]


def test_ensure_synthetic_generates_once_per_spec(tmp_path, monkeypatch):
    out = str(tmp_path / "data")
    assert synthetic.ensure_synthetic(out, "tiny") == out
    with open(os.path.join(out, synthetic.MANIFEST_NAME), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["spec"] == dataclasses.asdict(TINY)
    assert manifest["row_counts"][F.USERS] == TINY.n_users

    def fail(spec):
        raise AssertionError("regenerated an up-to-date data set")

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate", fail)
        synthetic.ensure_synthetic(out, "tiny")
        synthetic.ensure_synthetic(out, TINY)
    synthetic.ensure_synthetic(out, "tiny", seed=3)
    with open(os.path.join(out, synthetic.MANIFEST_NAME), encoding="utf-8") as f:
        assert json.load(f)["spec"]["seed"] == 3
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.csv").write_text("x")
    with pytest.raises(FileExistsError):
        synthetic.ensure_synthetic(str(foreign), "tiny")
    with pytest.raises(ValueError, match="size"):
        synthetic.ensure_synthetic(out, "huge")


def test_sizes():
    assert set(synthetic.SIZES) >= {"tiny", "small", "default", "1m-items"}
    default = synthetic.SIZES["default"]
    assert 80_000 <= default.n_users * default.events_per_user <= 120_000
    assert synthetic.SIZES["1m-items"].n_items == 1_000_000


@pytest.mark.parametrize(
    "field, value",
    [("n_users", 0), ("n_items", -5), ("events_per_user", 0), ("n_spans", 0), ("seed", -1),
     ("dim", 0), ("n_candidates", 0), ("zipf_exponent", -1.0), ("drift_rate", 1.5),
     ("genre_concentration", 0.0), ("taste_strength", -1.0), ("n_users", "many"),
     ("events_per_user", 100)],
)  # fmt: skip
def test_bad_spec_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_blockwise_candidate_scoring_equals_one_block(monkeypatch):
    rng = np.random.default_rng(4)
    query = rng.standard_normal((10, 3)).astype(np.float32)
    vectors = rng.standard_normal((7, 3)).astype(np.float32)
    cands = rng.integers(0, 7, (10, 5))
    correction = rng.standard_normal(7).astype(np.float32)
    want = np.array([[query[a] @ vectors[c] + correction[c] for c in row]
                     for a, row in enumerate(cands)])  # fmt: skip
    monkeypatch.setattr(synthetic, "_BLOCK_ROWS", 3)  # blocks of 3, 3, 3, 1 rows
    got = synthetic._candidate_logits(query, vectors, cands, correction)
    assert got.dtype == np.float32 and got.shape == (10, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5)
