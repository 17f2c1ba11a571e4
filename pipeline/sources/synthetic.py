"""Built-in synthetic data source: the three raw tables of the data contract.

The generator draws a latent-factor world with measurable structure: item vectors built around
genre centroids, Zipf popularity, genre affinity shifted by demographics, an interest state that
drifts toward recently consumed items, and ratings that follow the model score. A user's next
item is drawn (never one already consumed) from softmax_i((u + d_t + beta v_last) . v_i + log p_i),
with u the long-term taste, d_t = (1 - rho) d_{t-1} + rho |u| v_t the drifting short-term interest
and p the Zipf popularity; a popularity-sampled candidate set keeps this fast (sampled softmax).
Everything is vectorised numpy and deterministic given the spec (including its seed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from schemas import features as F

GENRE_NAMES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
               "Sci-Fi", "Thriller", "War", "Western")  # fmt: skip
OCCUPATIONS = ("student", "engineer", "artist", "doctor", "lawyer", "teacher", "writer", "sales",
               "retired", "homemaker")  # fmt: skip
GENDERS = ("M", "F")
MANIFEST_NAME = "_SYNTHETIC_MANIFEST.json"
GENERATOR_VERSION = 1

_AGE_GROUP_BOUNDARIES = (25, 45)
_GENRE_COUNT_PROBS = (0.5, 0.35, 0.15)  # an item has 1, 2 or 3 genres
_GENRE_WEIGHTS = (1.0, 0.5, 0.35)  # weight of the primary, second, third genre centroid
_UNIFORM_MIX = 0.1  # share of the candidate proposal drawn uniformly instead of by popularity
_DENSE_CONSUMED_LIMIT = 1 << 26  # users x items above which consumed items are kept as keys
_BLOCK_ROWS = 8_192  # users per block of candidate scoring (bounds the gathered vectors)
_YEAR_MIN, _YEAR_MAX = 1950, 2024

_POSITIVE = ("n_users", "n_items", "events_per_user", "n_spans", "dim", "n_candidates",
             "mean_gap_seconds", "period_days", "genre_concentration")  # fmt: skip
_NON_NEGATIVE = ("seed", "zipf_exponent", "demographic_strength", "taste_strength",
                 "sequential_strength", "item_noise", "rating_strength", "rating_noise",
                 "start_timestamp")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Size and structure of a synthetic data set; validated on construction.

    Attributes:
        n_users: number of users.
        n_items: number of items; at least 2 * events_per_user.
        events_per_user: mean events per user (log-normal, capped at 3x the mean).
        n_spans: number of equal-width time spans the interactions are written in.
        seed: random seed; the same spec gives byte-identical files.
        implicit: write an empty rating column.
        dim: dimension of the latent user/item factors.
        zipf_exponent: popularity skew, weight of the item of popularity rank r is r^-exponent.
        genre_concentration: Dirichlet concentration of a user's genre affinity (small: peaky).
        demographic_strength: scale of the genre-affinity shifts by occupation, age and gender.
        taste_strength: norm of the long-term taste vector (inverse softmax temperature).
        sequential_strength: weight of the similarity to the previously consumed item.
        drift_rate: rate in [0, 1] at which the short-term interest moves to each consumed item.
        item_noise: norm of the item-specific noise around the genre centroids.
        rating_strength: slope of the rating in the standardised model score.
        rating_noise: standard deviation of the rating noise (before rounding).
        n_candidates: popularity-sampled candidates per step of the sampled softmax.
        mean_gap_seconds: mean gap between two events of a user.
        start_timestamp: unix seconds of the start of the period.
        period_days: length of the period over which users' first events are spread.
    """

    n_users: int
    n_items: int
    events_per_user: int
    n_spans: int = 1
    seed: int = 0
    implicit: bool = False
    dim: int = 32
    zipf_exponent: float = 1.3
    genre_concentration: float = 0.3
    demographic_strength: float = 1.0
    taste_strength: float = 8.0
    sequential_strength: float = 2.0
    drift_rate: float = 0.2
    item_noise: float = 0.5
    rating_strength: float = 1.0
    rating_noise: float = 0.7
    n_candidates: int = 128
    mean_gap_seconds: int = 43_200
    start_timestamp: int = 1_577_836_800  # 2020-01-01
    period_days: int = 730

    def __post_init__(self) -> None:
        for name in _POSITIVE + _NON_NEGATIVE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if value < 0 or (value == 0 and name in _POSITIVE):
                kind = "positive" if name in _POSITIVE else "non-negative"
                raise ValueError(f"{name} must be {kind}, got {value!r}")
        if not 0.0 <= self.drift_rate <= 1.0:
            raise ValueError(f"drift_rate must be in [0, 1], got {self.drift_rate!r}")
        if self.n_items < 2 * self.events_per_user:
            raise ValueError(f"events_per_user must be at most n_items / 2, got "
                             f"{self.events_per_user!r} with n_items={self.n_items!r}")  # fmt: skip


SIZES: dict[str, SyntheticSpec] = {
    "tiny": SyntheticSpec(n_users=60, n_items=150, events_per_user=25),
    "small": SyntheticSpec(n_users=500, n_items=1_000, events_per_user=40),
    "default": SyntheticSpec(n_users=2_000, n_items=3_000, events_per_user=50),
    "1m-items": SyntheticSpec(n_users=100, n_items=1_000_000, events_per_user=20),
    # B6 (make bench-scale): about 1M and 10M events.
    "1m": SyntheticSpec(n_users=20_000, n_items=20_000, events_per_user=50),
    "10m": SyntheticSpec(n_users=200_000, n_items=200_000, events_per_user=50),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Tables:
    """The three raw tables, with the canonical columns of `F.TABLES` in order."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _ids(prefix: str, idx: np.ndarray) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in idx.tolist()], dtype=object)


def _frame(table: str, columns: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({c.name: columns[c.name] for c in F.TABLES[table]})


def _item_genres(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Returns (n_items, 3) genre indices, primary first, -1 where an item has fewer genres."""
    cdf = np.cumsum(rng.dirichlet(np.full(len(GENRE_NAMES), 2.0)))
    n_genres = rng.choice(3, size=n_items, p=_GENRE_COUNT_PROBS) + 1
    genres = np.full((n_items, 3), -1, dtype=np.int64)
    for j in range(3):
        need = np.flatnonzero(n_genres > j)
        while need.size:  # redraw a genre the item already has: sampling without replacement
            draw = np.searchsorted(cdf, rng.random(need.size) * cdf[-1], side="right")
            genres[need, j] = np.minimum(draw, len(GENRE_NAMES) - 1)
            need = need[(genres[need, :j] == genres[need, j : j + 1]).any(axis=1)]
    return genres


def _make_items(spec: SyntheticSpec, rng: np.random.Generator, centroids: np.ndarray):
    genres = _item_genres(rng, spec.n_items)
    weights = np.zeros((spec.n_items, len(GENRE_NAMES) + 1), dtype=np.float32)
    for j, weight in enumerate(_GENRE_WEIGHTS):
        weights[np.arange(spec.n_items), genres[:, j]] = weight  # -1: the spare last column
    vectors = weights[:, :-1] @ centroids
    noise = rng.standard_normal((spec.n_items, spec.dim), dtype=np.float32)
    vectors += noise * np.float32(spec.item_noise / np.sqrt(spec.dim))
    ranks = rng.permutation(spec.n_items)
    popularity = (ranks + 1.0) ** -spec.zipf_exponent
    age = np.minimum(np.floor(rng.exponential(18.0, spec.n_items)), _YEAR_MAX - _YEAR_MIN)
    names = np.array(GENRE_NAMES + ("",), dtype=object)
    text = names[genres[:, 0]]
    for j in (1, 2):
        text = np.where(genres[:, j] >= 0, text + (F.GENRE_SEPARATOR + names[genres[:, j]]), text)
    idx = np.arange(spec.n_items)
    table = _frame(F.ITEMS, {
        F.ITEM_ID: _ids("i", idx), F.TITLE: _ids("Item ", idx), F.GENRES: text,
        F.YEAR: (_YEAR_MAX - age).astype(np.int64),
    })  # fmt: skip
    return table, _unit(vectors).astype(np.float32), popularity / popularity.sum()


def _make_users(spec: SyntheticSpec, rng: np.random.Generator, centroids: np.ndarray):
    n, n_genres = spec.n_users, len(GENRE_NAMES)
    age = np.clip(np.rint(rng.normal(33.0, 11.0, n)), 16, 75).astype(np.int64)
    gender = rng.integers(len(GENDERS), size=n)
    occupation = rng.integers(len(OCCUPATIONS), size=n)
    shift = spec.demographic_strength * (
        rng.standard_normal((len(OCCUPATIONS), n_genres))[occupation]
        + rng.standard_normal((len(_AGE_GROUP_BOUNDARIES) + 1, n_genres))[
            np.digitize(age, _AGE_GROUP_BOUNDARIES)]
        + 0.5 * rng.standard_normal((len(GENDERS), n_genres))[gender]
    )  # fmt: skip
    affinity = rng.dirichlet(np.full(n_genres, spec.genre_concentration), size=n) * np.exp(shift)
    affinity /= affinity.sum(axis=1, keepdims=True)
    base = affinity @ centroids + 0.3 / np.sqrt(spec.dim) * rng.standard_normal((n, spec.dim))
    table = _frame(F.USERS, {
        F.USER_ID: _ids("u", np.arange(n)), F.AGE: age,
        F.GENDER: np.array(GENDERS, dtype=object)[gender],
        F.OCCUPATION: np.array(OCCUPATIONS, dtype=object)[occupation],
    })  # fmt: skip
    return table, (spec.taste_strength * _unit(base)).astype(np.float32)


class _Consumed:
    """Items each user has consumed: a dense mask, or sorted keys for a huge catalog."""

    def __init__(self, n_users: int, n_items: int):
        self._n = n_items
        dense = n_users * n_items <= _DENSE_CONSUMED_LIMIT
        self._mask = np.zeros((n_users, n_items), dtype=bool) if dense else None
        self._keys = np.empty(0, dtype=np.int64)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self._mask is not None:
            return self._mask[users[:, None], items]
        keys = users[:, None] * self._n + items
        pos = np.minimum(np.searchsorted(self._keys, keys), max(len(self._keys) - 1, 0))
        return self._keys[pos] == keys if len(self._keys) else np.zeros(keys.shape, bool)

    def add(self, users: np.ndarray, items: np.ndarray) -> None:
        if self._mask is not None:
            self._mask[users, items] = True
        else:
            self._keys = np.union1d(self._keys, users * self._n + items)

    def free(self, user: int) -> np.ndarray:
        if self._mask is not None:
            return np.flatnonzero(~self._mask[user])
        own = self._keys[(self._keys >= user * self._n) & (self._keys < (user + 1) * self._n)]
        return np.setdiff1d(np.arange(self._n), own - user * self._n)


def _simulate(spec, rng, vectors, popularity, interest, keep_queries=False):
    """Samples each user's sequence; returns (user, item, model score) arrays, user-major,
    the counts, and with keep_queries each event's query [N, dim] (else None)."""
    cap = min(spec.n_items // 2, 3 * spec.events_per_user)
    sigma = 0.5
    mu = np.log(spec.events_per_user) - sigma**2 / 2
    counts = np.clip(np.rint(rng.lognormal(mu, sigma, spec.n_users)), 1, cap).astype(np.int64)
    proposal = (1.0 - _UNIFORM_MIX) * popularity + _UNIFORM_MIX / spec.n_items
    cdf = np.cumsum(proposal)
    correction = (np.log(popularity) - np.log(proposal)).astype(np.float32)
    consumed = _Consumed(spec.n_users, spec.n_items)
    beta, rho = spec.sequential_strength, np.float32(spec.drift_rate)
    drift, last = np.zeros_like(interest), np.zeros_like(interest)
    users, items, scores, queries = [], [], [], []
    for step in range(int(counts.max())):
        active = np.flatnonzero(counts > step)
        draws = rng.random((len(active), spec.n_candidates)) * cdf[-1]
        cands = np.minimum(np.searchsorted(cdf, draws, side="right"), spec.n_items - 1)
        query = interest[active] + drift[active] + np.float32(beta) * last[active]
        logits = _candidate_logits(query, vectors, cands, correction)
        logits[consumed.contains(active, cands)] = -np.inf
        logits += rng.gumbel(size=logits.shape).astype(np.float32)
        pick = cands[np.arange(len(active)), np.argmax(logits, axis=1)]
        for row in np.flatnonzero(np.isneginf(logits.max(axis=1))):  # all candidates consumed
            pick[row] = rng.choice(consumed.free(active[row]))
        consumed.add(active, pick)
        chosen = vectors[pick]
        scores.append(np.einsum("ad,ad->a", query, chosen))
        if keep_queries:
            queries.append(query)
        drift[active] = (1.0 - rho) * drift[active] + np.float32(rho * spec.taste_strength) * chosen
        last[active] = chosen
        users.append(active)
        items.append(pick)
    user, item, score = (np.concatenate(x) for x in (users, items, scores))
    order = np.argsort(user, kind="stable")  # user-major, steps in order within a user
    kept = np.concatenate(queries)[order] if keep_queries else None
    return user[order], item[order], score[order].astype(np.float64), counts, kept


def _candidate_logits(query, vectors, cands, correction) -> np.ndarray:
    """query [A, d] . vectors[cands] [A, C, d] + correction[cands], float32 [A, C]; in
    blocks of _BLOCK_ROWS rows, so the gathered candidate vectors never take more than
    _BLOCK_ROWS * C * d floats (200k users x 128 x 32 would be 3.3 GB at once)."""
    if len(query) <= _BLOCK_ROWS:
        return np.einsum("ad,acd->ac", query, vectors[cands]) + correction[cands]
    out = np.empty(cands.shape, np.float32)
    for lo in range(0, len(query), _BLOCK_ROWS):
        block = cands[lo : lo + _BLOCK_ROWS]
        out[lo : lo + _BLOCK_ROWS] = (
            np.einsum("ad,acd->ac", query[lo : lo + _BLOCK_ROWS], vectors[block])
            + correction[block]
        )
    return out


def _timestamps(spec, rng, user: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-user start times spread over the period, strictly increasing within a user."""
    period = spec.period_days * 86_400
    start = spec.start_timestamp + rng.integers(0, max(int(0.8 * period), 1), spec.n_users)
    gaps = 1 + np.floor(rng.exponential(spec.mean_gap_seconds, len(user))).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gaps[first] = 0
    total = np.cumsum(gaps)
    return start[user] + total - total[first][user]


@dataclasses.dataclass(frozen=True, eq=False)
class Latents:
    """The generator's hidden state, for measuring models against the best possible one.

    Attributes:
        item_vectors: [n_items, dim] unit item vectors (row j is item "i{j}").
        log_popularity: [n_items] log of the Zipf popularity p.
        queries: [N, dim] the query u + d_t + beta v_last each event was drawn with, in the
            order of the interactions table: the next item is drawn from
            softmax_i(query . v_i + log p_i) over the items not yet consumed.
    """

    item_vectors: np.ndarray
    log_popularity: np.ndarray
    queries: np.ndarray


def generate(spec: SyntheticSpec) -> Tables:
    """Returns the three raw tables of `spec`; interactions ordered by timestamp, then user."""
    return _generate(spec, keep_queries=False)[0]


def generate_with_latents(spec: SyntheticSpec) -> tuple[Tables, Latents]:
    """`generate`'s tables and the latent state behind them (N x dim floats more memory)."""
    return _generate(spec, keep_queries=True)


def _generate(spec: SyntheticSpec, keep_queries: bool) -> tuple[Tables, Latents | None]:
    item_rng, user_rng, event_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(3))  # fmt: skip
    centroids = _unit(item_rng.standard_normal((len(GENRE_NAMES), spec.dim))).astype(np.float32)
    items, vectors, popularity = _make_items(spec, item_rng, centroids)
    users, interest = _make_users(spec, user_rng, centroids)
    user, item, score, counts, queries = _simulate(
        spec, event_rng, vectors, popularity, interest, keep_queries
    )
    timestamp = _timestamps(spec, event_rng, user, counts)
    z = (score - score.mean()) / max(score.std(), 1e-9)
    noise = event_rng.standard_normal(len(z))
    rating = np.clip(np.rint(3.3 + spec.rating_strength * z + spec.rating_noise * noise), 1, 5)
    rating = np.full(len(z), np.nan) if spec.implicit else rating
    order = np.lexsort((user, timestamp))
    interactions = _frame(F.INTERACTIONS, {
        F.USER_ID: _ids("u", user[order]), F.ITEM_ID: _ids("i", item[order]),
        F.RATING: rating[order].astype(np.float64), F.TIMESTAMP: timestamp[order],
    })  # fmt: skip
    tables = Tables(interactions=interactions, items=items, users=users)
    if not keep_queries:
        return tables, None
    return tables, Latents(vectors, np.log(popularity), queries[order])


def _is_non_empty_dir(path: str) -> bool:
    return os.path.isdir(path) and bool(os.listdir(path))


def _write_csvs(tables: Tables, root: str, n_spans: int) -> dict[str, list[str]]:
    """Writes the tables under `root`; returns table name -> paths relative to `root`."""
    events = tables.interactions
    span = np.zeros(len(events), dtype=np.int64)
    if len(events):
        ts = events[F.TIMESTAMP].to_numpy(np.int64)
        span = (ts - ts.min()) * n_spans // (ts.max() - ts.min() + 1)
    parts = {F.INTERACTIONS: [events[span == k] for k in range(n_spans)],
             F.ITEMS: [tables.items], F.USERS: [tables.users]}  # fmt: skip
    written: dict[str, list[str]] = {}
    for name, frames in parts.items():
        written[name] = []
        for k, frame in enumerate(frames):
            rel = os.path.join(name, f"span-{k}", f"{name}.csv")
            os.makedirs(os.path.join(root, os.path.dirname(rel)))
            columns = [c.name for c in F.TABLES[name]]
            frame[columns].to_csv(os.path.join(root, rel), index=False, lineterminator="\n")
            written[name].append(rel)
    return written


def write_tables(tables: Tables, out_dir: str, n_spans: int = 1, *, overwrite: bool = False,
                 manifest: Mapping[str, Any] | None = None) -> dict[str, list[str]]:  # fmt: skip
    """Writes the tables as CSV, atomically: to a temp dir next to `out_dir`, then renamed.

    Args:
        tables: the tables to write.
        out_dir: destination; `<out_dir>/<table>/span-<k>/<table>.csv`.
        n_spans: interactions are split into this many equal-width time slices.
        overwrite: replace a non-empty `out_dir` instead of raising FileExistsError.
        manifest: if given, written (plus the relative file lists) to `MANIFEST_NAME`.

    Returns:
        Table name -> paths of the files written.
    """
    if isinstance(n_spans, bool) or not isinstance(n_spans, int) or n_spans < 1:
        raise ValueError(f"n_spans must be a positive int, got {n_spans!r}")
    out_dir = os.path.abspath(out_dir)
    if _is_non_empty_dir(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; pass overwrite=True to replace it")
    parent, base = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        written = _write_csvs(tables, tmp, n_spans)
        if manifest is not None:
            with open(os.path.join(tmp, MANIFEST_NAME), "w", encoding="utf-8") as f:
                json.dump({**manifest, "files": written}, f, indent=2, sort_keys=True)
        old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
        if os.path.lexists(out_dir):
            os.replace(out_dir, os.path.join(old, base))
        os.rename(tmp, out_dir)
        shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {name: [os.path.join(out_dir, p) for p in paths] for name, paths in written.items()}


def resolve_spec(size_or_spec: str | SyntheticSpec, seed: int | None = None) -> SyntheticSpec:
    """Returns the spec of a size name in `SIZES` (or the spec itself), with `seed` if given."""
    if isinstance(size_or_spec, SyntheticSpec):
        spec = size_or_spec
    elif size_or_spec in SIZES:
        spec = SIZES[size_or_spec]
    else:
        raise ValueError(f"size must be one of {sorted(SIZES)} or a SyntheticSpec, "
                         f"got {size_or_spec!r}")  # fmt: skip
    return spec if seed is None else dataclasses.replace(spec, seed=seed)


def ensure_synthetic(out_dir: str, size_or_spec: str | SyntheticSpec,
                     seed: int | None = None) -> str:  # fmt: skip
    """Generates and writes a data set unless `out_dir` already holds it.

    `out_dir` is complete when its manifest names the same spec and generator version. A
    non-empty `out_dir` without a manifest is not ours: FileExistsError rather than overwrite.

    Args:
        out_dir: destination directory.
        size_or_spec: a key of `SIZES` or a spec.
        seed: overrides the spec's seed when given.

    Returns:
        `out_dir`.
    """
    spec = resolve_spec(size_or_spec, seed)
    wanted = {"generator_version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}
    marker = os.path.join(out_dir, MANIFEST_NAME)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            existing = json.load(f)
        if all(existing.get(key) == value for key, value in wanted.items()):
            return out_dir
    elif _is_non_empty_dir(out_dir):
        raise FileExistsError(f"{out_dir} is not empty and has no {MANIFEST_NAME}")
    tables = generate(spec)
    counts = {name: len(getattr(tables, name)) for name in F.TABLES}
    write_tables(tables, out_dir, spec.n_spans, overwrite=True,
                 manifest={**wanted, "row_counts": counts})  # fmt: skip
    return out_dir
