"""Pure logic of BehaviorSequenceGen: timelines, histories, labels, negatives, split.

No TFX or Beam here; `executor.py` wires these functions into a Beam pipeline.
A user's events are processed together (one group per user), so each function
below sees one user at a time and is deterministic given the config seed.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import hashlib
import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from components.behavior_sequence_gen.negatives import NegativeSampler
from schemas import features as F

TRAIN, EVAL = "train", "eval"
LEAVE_LAST_OUT, TIME_CUTOFF = "leave_last_out", "time_cutoff"
# Which of the user's items a ranker negative at time t may not be (SequenceConfig).
EXCLUDE_UNTIL_T, EXCLUDE_EVER = "touched_until_t", "touched_ever"
NEGATIVE_EXCLUSIONS = (EXCLUDE_UNTIL_T, EXCLUDE_EVER)

# Reasons an input row is dropped; reported in the component's output.
DROP_UNKNOWN_ITEM = "unknown_item"
DROP_DUPLICATE_EVENT = "duplicate_event"
DROP_AFTER_EVAL_TARGET = "after_eval_target"
DROP_DUPLICATE_ITEM_ROW = "duplicate_item_row"
DROP_DUPLICATE_USER_ROW = "duplicate_user_row"
DROP_OVER_USER_CAP = "older_than_user_cap"
NOTE_UNKNOWN_USER = "unknown_user_kept"
NOTE_NEGATIVES_SHORT = "negatives_short"


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """How sequences, labels, negatives and the split are built.

    Attributes:
        history_length: N, the number of most recent items kept in a history.
        rating_threshold: an event is positive when rating >= this; None means
            an implicit log where every event is positive.
        negative_ratio: sampled ranker negatives per positive event.
        negative_power: negatives are drawn with probability ~ count**power.
        split: LEAVE_LAST_OUT (each user's last positive event is eval) or
            TIME_CUTOFF (every event at or after cutoff_timestamp is eval).
        cutoff_timestamp: the global cutoff, required for TIME_CUTOFF.
        seed: seed of the negative sampler.
        negative_exclusion: EXCLUDE_UNTIL_T (default, leak-free): a negative for
            an event at time t is any item the user had not touched at or
            before t, so items they touch only later can be drawn;
            EXCLUDE_EVER: never an item the user touches at any time (this
            leaks the future into the training distribution).
        max_events_per_user: a user's most recent this many known-item events are kept,
            older ones dropped (reported as DROP_OVER_USER_CAP) while they stream in, so a
            user with millions of events (a crawler, a shared account) costs at most this
            much memory and cannot dominate the training data (YouTube DNN's fixed
            number of examples per user). None keeps every event.
        local_shard_mib: on a local Beam runner (the DirectRunner, TFX's default), which
            holds a GroupByKey's whole input in one process, the users are split by a hash
            into ceil(MiB of the interactions' examples / this) shards and each shard is
            grouped in a Beam pass of its own; a last pass streams the shards' timelines
            into the examples. At 64 (the default) 1M events (19 MiB) make one pass and
            10M (194 MiB) four. 0: always one pass. A distributed runner (Dataflow,
            Flink, Spark) always makes one pass: its shuffle is not held in memory.
    """

    history_length: int = F.HISTORY_LENGTH
    rating_threshold: float | None = 4.0
    negative_ratio: int = 2
    negative_power: float = 0.75
    split: str = LEAVE_LAST_OUT
    cutoff_timestamp: int | None = None
    seed: int = 0
    negative_exclusion: str = EXCLUDE_UNTIL_T
    max_events_per_user: int | None = 10_000
    local_shard_mib: int = 64

    def __post_init__(self):
        if self.history_length < 1:
            raise ValueError(f"history_length must be >= 1, got {self.history_length}")
        if self.negative_ratio < 0:
            raise ValueError(f"negative_ratio must be >= 0, got {self.negative_ratio}")
        if self.negative_power < 0:
            raise ValueError(f"negative_power must be >= 0, got {self.negative_power}")
        if self.split not in (LEAVE_LAST_OUT, TIME_CUTOFF):
            raise ValueError(
                f"split must be {LEAVE_LAST_OUT!r} or {TIME_CUTOFF!r}, got {self.split!r}"
            )
        if self.split == TIME_CUTOFF and self.cutoff_timestamp is None:
            raise ValueError("split='time_cutoff' needs cutoff_timestamp")
        cap = self.max_events_per_user
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_events_per_user must be an int >= 1 or None, got {cap!r}")
        shard = self.local_shard_mib
        if isinstance(shard, bool) or not isinstance(shard, int) or shard < 0:
            raise ValueError(f"local_shard_mib must be an int >= 0, got {shard!r}")
        if self.negative_exclusion not in NEGATIVE_EXCLUSIONS:
            raise ValueError(
                f"negative_exclusion must be one of {NEGATIVE_EXCLUSIONS}, "
                f"got {self.negative_exclusion!r}"
            )


@dataclasses.dataclass(frozen=True)
class Event:
    """One kept interaction, in time order, with its split and history."""

    item_id: str
    timestamp: int
    label: int
    split: str
    history: tuple[str, ...]  # items strictly before this event, oldest first


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A user's kept events and everything the user ever interacted with.

    `first_touch` holds (time of the user's first event with the item, item) for
    every item in `seen`, in time order; negatives at time t exclude its prefix
    up to t.
    """

    user_id: str
    user_features: Mapping[str, object]
    events: tuple[Event, ...]
    seen: frozenset[str]
    first_touch: tuple[tuple[int, str], ...] = ()


def is_positive(row: Mapping[str, object], threshold: float | None) -> bool:
    """Returns whether an interaction row is a positive event."""
    if threshold is None or F.RATING not in row:
        return True
    return float(row[F.RATING]) >= threshold


def dedupe_events(rows: Iterable[Mapping[str, object]]) -> tuple[list[Mapping], int]:
    """Drops repeated (user, item, timestamp) events, keeping the highest rating.

    Returns:
        (rows sorted by timestamp then item id, number of duplicates dropped).
    """
    best: dict[tuple, Mapping] = {}
    total = 0
    for row in rows:
        total += 1
        key = (row[F.ITEM_ID], row[F.TIMESTAMP])
        if key not in best or row.get(F.RATING, 0.0) > best[key].get(F.RATING, 0.0):
            best[key] = row
    kept = sorted(best.values(), key=lambda r: (r[F.TIMESTAMP], r[F.ITEM_ID]))
    return kept, total - len(kept)


def _assign_splits(rows: Sequence[Mapping], labels: Sequence[int], cfg: SequenceConfig) -> list:
    """Returns each row's split (TRAIN, EVAL or None for dropped)."""
    if cfg.split == TIME_CUTOFF:
        return [EVAL if r[F.TIMESTAMP] >= cfg.cutoff_timestamp else TRAIN for r in rows]
    positives = [i for i, label in enumerate(labels) if label]
    if not positives:  # a user with no positive event is not scored: all train
        return [TRAIN] * len(rows)
    target = positives[-1]
    return [TRAIN if i < target else EVAL if i == target else None for i in range(len(rows))]


def build_timeline(
    user_id: str,
    rows: Iterable[Mapping[str, object]],
    user_features: Mapping[str, object] | None,
    known_items: Mapping[str, object],
    cfg: SequenceConfig,
) -> tuple[Timeline | None, collections.Counter]:
    """Builds one user's labelled, split events with their histories.

    Args:
        user_id: the user.
        rows: the user's interaction rows (canonical dicts), any order.
        user_features: the user's row of the users table, or None if unknown.
        known_items: the item catalog, keyed by item id.
        cfg: the sequence config.

    Returns:
        (the timeline, or None if no event survives; counts of what was dropped).
    """
    drops: collections.Counter = collections.Counter()
    valid = most_recent(_known(rows, known_items, drops), cfg.max_events_per_user, drops)
    kept, n_dup = dedupe_events(valid)
    drops[DROP_DUPLICATE_EVENT] += n_dup
    if user_features is None:
        drops[NOTE_UNKNOWN_USER] += len(kept)
    labels = [int(is_positive(r, cfg.rating_threshold)) for r in kept]
    splits = _assign_splits(kept, labels, cfg)
    times = [r[F.TIMESTAMP] for r in kept]
    items = [r[F.ITEM_ID] for r in kept]
    events = []
    for i, (row, label, split) in enumerate(zip(kept, labels, splits, strict=False)):
        if split is None:
            drops[DROP_AFTER_EVAL_TARGET] += 1
            continue
        ts = row[F.TIMESTAMP]
        # Rows are sorted by time: the history is the rows before the first row at time ts.
        end = bisect.bisect_left(times, ts, 0, i)
        history = tuple(items[max(0, end - cfg.history_length) : end])
        events.append(Event(row[F.ITEM_ID], ts, label, split, history))
    drops = collections.Counter({k: v for k, v in drops.items() if v})
    if not events:
        return None, drops
    first: dict[str, int] = {}
    for row in kept:  # time order: the first row of an item is its first touch
        first.setdefault(row[F.ITEM_ID], row[F.TIMESTAMP])
    touches = tuple(sorted((t, item) for item, t in first.items()))
    user = dict(user_features or {})
    return Timeline(user_id, user, tuple(events), frozenset(first), touches), drops


def _known(rows: Iterable[Mapping], known_items: Mapping, drops: collections.Counter):
    """Yields the rows whose item is in the catalog, counting the others."""
    for row in rows:
        if row[F.ITEM_ID] in known_items:
            yield row
        else:
            drops[DROP_UNKNOWN_ITEM] += 1


def most_recent(rows: Iterable[Mapping], cap: int | None, drops: collections.Counter) -> list:
    """The `cap` latest rows by (timestamp, item, rating), kept in a heap of at most `cap`
    while `rows` streams, so memory never holds more; the others count as
    DROP_OVER_USER_CAP. None: every row (a list)."""
    if cap is None:
        return list(rows)
    heap: list[tuple] = []  # (timestamp, item, rating, arrival, row), oldest on top
    arrival = itertools.count()
    for row in rows:
        rating = row.get(F.RATING)
        rating = rating if isinstance(rating, int | float) and rating == rating else -1.0
        entry = (row[F.TIMESTAMP], row[F.ITEM_ID], rating, next(arrival), row)
        if len(heap) < cap:
            heapq.heappush(heap, entry)
        elif entry[:4] > heap[0][:4]:
            heapq.heapreplace(heap, entry)
            drops[DROP_OVER_USER_CAP] += 1
        else:
            drops[DROP_OVER_USER_CAP] += 1
    return [entry[-1] for entry in heap]


def train_item_ids(timeline: Timeline) -> Iterator[str]:
    """Yields the item of every training event (for popularity counts)."""
    for event in timeline.events:
        if event.split == TRAIN:
            yield event.item_id


def user_rng(seed: int, user_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the user (worker-independent)."""
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _primary_genre(item: Mapping[str, object]) -> str:
    genres = item.get(F.GENRES)
    return genres[0] if genres else F.UNKNOWN


def _item_features(item: Mapping[str, object]) -> dict:
    return {
        F.GENRES: list(item.get(F.GENRES) or []),
        F.PRIMARY_GENRE: _primary_genre(item),
        F.YEAR: int(item.get(F.YEAR, F.MISSING_INT)),
    }


def _context(timeline: Timeline, event: Event, items: Mapping, cfg: SequenceConfig) -> dict:
    """Features shared by an event and its negatives: user and history."""
    uf = timeline.user_features
    pad = cfg.history_length - len(event.history)
    genres = [_primary_genre(items[i]) for i in event.history]
    return {
        F.USER_ID: timeline.user_id,
        F.TIMESTAMP: event.timestamp,
        F.AGE: int(uf.get(F.AGE, F.MISSING_INT)),
        F.GENDER: str(uf.get(F.GENDER, F.UNKNOWN)),
        F.OCCUPATION: str(uf.get(F.OCCUPATION, F.UNKNOWN)),
        F.HISTORY_ITEM_IDS: list(event.history) + [F.PAD] * pad,
        F.HISTORY_GENRES: genres + [F.PAD] * pad,
        F.HISTORY_LENGTH_FEATURE: len(event.history),
        F.HISTORY_BUCKET: F.history_bucket(len(event.history)),
    }


def event_examples(
    timeline: Timeline,
    items: Mapping[str, Mapping[str, object]],
    sampler: NegativeSampler | None,
    cfg: SequenceConfig,
    counts: collections.Counter | None = None,
) -> Iterator[tuple[str, dict, list[dict]]]:
    """Yields (split, context, targets) per kept event: the event and its negatives.

    `context` (user, time, history) is shared by the event and its negatives;
    each target holds the item, its features and the label. Every positive event
    gets cfg.negative_ratio negatives, drawn from items the user had not touched
    at or before the event's time (cfg.negative_exclusion EXCLUDE_UNTIL_T), or
    never touched at all (EXCLUDE_EVER). `counts`, when given, counts negatives
    that could not all be drawn.
    """
    rng = user_rng(cfg.seed, timeline.user_id)
    touched: set[str] = set()  # items first touched at or before the current event
    pending = iter(timeline.first_touch)
    upcoming = next(pending, None)
    for event in timeline.events:  # time order
        while upcoming is not None and upcoming[0] <= event.timestamp:
            touched.add(upcoming[1])
            upcoming = next(pending, None)
        targets = [_target(event.item_id, event.label, items)]
        if event.label and cfg.negative_ratio and sampler is not None:
            exclude = timeline.seen if cfg.negative_exclusion == EXCLUDE_EVER else touched
            negatives = sampler.sample(rng, cfg.negative_ratio, exclude)
            if counts is not None and len(negatives) < cfg.negative_ratio:
                counts[NOTE_NEGATIVES_SHORT] += cfg.negative_ratio - len(negatives)
            targets += [_target(item_id, 0, items, event=0) for item_id in negatives]
        yield event.split, _context(timeline, event, items, cfg), targets


def _target(item_id: str, label: int, items: Mapping, event: int = 1) -> dict:
    """An example's target part; event 0 marks a sampled negative (not in the log)."""
    return {F.ITEM_ID: item_id, F.LABEL: label, F.EVENT: event, **_item_features(items[item_id])}


def emit_examples(timeline, items, sampler, cfg, counts=None) -> Iterator[tuple[str, dict]]:
    """Yields (split, example) for every kept event and its sampled negatives."""
    for split, context, targets in event_examples(timeline, items, sampler, cfg, counts):
        for target in targets:
            yield split, {**context, **target}


def catalog_example(item: Mapping[str, object], count: int) -> dict:
    """The catalog row of one item, with its training interaction count."""
    return {
        F.ITEM_ID: item[F.ITEM_ID],
        F.TITLE: str(item.get(F.TITLE, "")),
        **_item_features(item),
        F.ITEM_COUNT: int(count),
    }
