"""The Beam graph of BehaviorSequenceGen, built from the pure functions in `sequences`.

Join: interactions and users are co-grouped by user; the item catalog is a
side input (dict). Popularity counts over training events feed the negative
sampler as a side input, so negatives never depend on eval events.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import pickle
from collections.abc import Iterable

import apache_beam as beam
import tensorflow as tf

from components.behavior_sequence_gen import sequences as S
from models.common import example_codec
from schemas import features as F

SPLIT_TRAIN, SPLIT_EVAL, SPLIT_CATALOG = S.TRAIN, S.EVAL, "catalog"
REPORT_FILE = "report.json"
TIMELINES, REPORT_PART = "timelines", "report"  # the sharded plan's files in its shard dir
DROPS = "drops"


def _read(pipeline, name: str, pattern: str, table: str, shard: tuple[int, int] | None = None):
    """The table's rows as dicts; with shard (index, count), only its users' rows."""
    dtypes = example_codec.table_dtypes(table)
    records = pipeline | f"Read{name}" >> beam.io.ReadFromTFRecord(
        pattern, coder=beam.coders.BytesCoder()
    )
    if shard is None:
        return records | f"Decode{name}" >> beam.Map(example_codec.decode, dtypes)
    return records | f"Decode{name}" >> beam.FlatMap(_decode_in_shard, dtypes, shard)


def _first_by_key(rows, name: str, key: str, reason: str):
    """Keeps one row per key (the smallest, for determinism); counts the rest."""

    def pick(kv):
        k, group = kv
        group = sorted(group, key=lambda r: json.dumps(r, sort_keys=True))
        if len(group) > 1:
            yield beam.pvalue.TaggedOutput(DROPS, (reason, len(group) - 1))
        yield k, group[0]

    return (
        rows
        | f"Key{name}" >> beam.Map(lambda r: (r[key], r))
        | f"Group{name}" >> beam.GroupByKey()
        | f"Dedupe{name}" >> beam.FlatMap(pick).with_outputs(DROPS, main="rows")
    )


class _Timelines(beam.DoFn):
    def __init__(self, cfg: S.SequenceConfig):
        self._cfg = cfg

    def process(self, kv, items):
        user_id, grouped = kv
        # The events stream into build_timeline, which keeps at most the config's
        # max_events_per_user of them (a Beam runner may page a large group from disk).
        events, users = grouped["events"], list(grouped["user"])
        timeline, drops = S.build_timeline(
            user_id, events, users[0] if users else None, items, self._cfg
        )
        for reason, n in drops.items():
            yield beam.pvalue.TaggedOutput(DROPS, (reason, n))
        if timeline is not None:
            yield timeline


class _Examples(beam.DoFn):
    """Emits serialized examples on the output named by their split, and the counts of
    examples per split on DROPS; builds the sampler once per worker."""

    def __init__(self, cfg: S.SequenceConfig):
        self._cfg = cfg
        self._sampler = None
        self._targets: dict[tuple, bytes] = {}  # target's values -> its encoded features

    def _target(self, target: dict) -> bytes:
        # A target is an item's features and a label (S.event_examples): few distinct ones,
        # so each is encoded once per worker (ML-100K: 208k targets, 39 us per encoding).
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in target.items())
        part = self._targets.get(key)
        if part is None:
            part = self._targets[key] = example_codec.encode_features(target, F.SEQUENCE_FEATURES)
        return part

    def process(self, timeline, items, counts):
        if self._sampler is None and self._cfg.negative_ratio > 0:
            self._sampler = S.NegativeSampler(counts, self._cfg.negative_power)
        notes = collections.Counter()
        for split, context, targets in S.event_examples(
            timeline, items, self._sampler, self._cfg, notes
        ):
            shared = example_codec.encode_features(context, F.SEQUENCE_FEATURES)
            for target in targets:
                example = example_codec.join_features(shared, self._target(target))
                yield beam.pvalue.TaggedOutput(split, example)
            notes[_count_key(split)] += len(targets)
        for reason, n in notes.items():
            yield beam.pvalue.TaggedOutput(DROPS, (reason, n))


def _count_key(split: str) -> str:
    return f"{split}_examples"


def _write(pcoll, name: str, uri: str, split: str):
    return pcoll | f"Write{name}" >> beam.io.WriteToTFRecord(
        os.path.join(uri, f"Split-{split}", "data_tfrecord"), file_name_suffix=".gz"
    )


def _merge_report(parts: Iterable[tuple[str, int]]) -> str:
    total = collections.Counter()
    for key, n in parts:
        total[key] += n
    return json.dumps(dict(sorted(total.items())), indent=2)


def _items(pipeline, patterns: dict[str, str]):
    """The item table, one row per item: .rows as (item_id, row), and DROPS."""
    rows = _read(pipeline, "Items", patterns[F.ITEMS], F.ITEMS)
    return _first_by_key(rows, "Items", F.ITEM_ID, S.DROP_DUPLICATE_ITEM_ROW)


def shard_of(user_id: str, shards: int) -> int:
    """The shard of a user: a stable hash (not Python's per-process salted hash())."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def _decode_in_shard(record: bytes, dtypes: dict, shard: tuple[int, int]):
    """The row of a serialized tf.train.Example if its user is in shard (index, count),
    else nothing. The proto is parsed once; only the shard's rows are decoded into dicts
    (a parse costs about a third of a decode)."""
    example = tf.train.Example.FromString(record)
    user = example.features.feature[F.USER_ID].bytes_list.value[0].decode()
    if shard_of(user, shard[1]) == shard[0]:
        yield example_codec.decode(example, dtypes)


def _events_and_users(pipeline, patterns: dict[str, str], shard: tuple[int, int] | None):
    """(events keyed by user, users keyed by user, report parts) of every user, or of the
    users in shard (index, count) only."""
    events = _read(pipeline, "Events", patterns[F.INTERACTIONS], F.INTERACTIONS, shard)
    events_kv = events | "KeyEvents" >> beam.Map(lambda r: (r[F.USER_ID], r))
    drops = [
        events
        | "CountEvents" >> beam.combiners.Count.Globally()
        | "NameEvents" >> beam.Map(lambda n: ("events_read", n)),
    ]
    if patterns.get(F.USERS):
        rows = _read(pipeline, "Users", patterns[F.USERS], F.USERS, shard)
        users = _first_by_key(rows, "Users", F.USER_ID, S.DROP_DUPLICATE_USER_ROW)
        drops.append(users[DROPS])
        return events_kv, users.rows, drops
    return events_kv, pipeline | "NoUsers" >> beam.Create([]), drops


def _timelines(pipeline, patterns, items_side, cfg, shard=None):
    """(timelines, report parts): the users' events joined, capped and split."""
    events_kv, users_kv, drops = _events_and_users(pipeline, patterns, shard)
    grouped = {"events": events_kv, "user": users_kv} | "JoinUsers" >> beam.CoGroupByKey()
    timelines = grouped | "Timelines" >> beam.ParDo(_Timelines(cfg), items_side).with_outputs(
        DROPS, main="timelines"
    )
    drops.append(timelines[DROPS])
    return timelines.timelines, drops


def _write_report(drops: list, path: str) -> None:
    (
        drops
        | "FlattenReport" >> beam.Flatten()
        | "MergeReport" >> beam.combiners.ToList()
        | "FormatReport" >> beam.Map(_merge_report)
        | "WriteReport" >> beam.io.WriteToText(path, shard_name_template="")
    )


def _emit(pipeline, timelines, count_timelines, items, drops, examples_uri, catalog_uri, cfg):
    """Writes the examples, the catalog and the report from the timelines.

    count_timelines: the same timelines, as a PCollection of its own (a second read of
    the shards' files), for the counts that the examples need as a side input. Were they
    one PCollection, the runner would hold every timeline in memory between the two.
    """
    items_side = beam.pvalue.AsDict(items.rows)
    counts = (
        count_timelines
        | "TrainItems" >> beam.FlatMap(S.train_item_ids)
        | "CountItems" >> beam.combiners.Count.PerElement()
    )
    counts_side = beam.pvalue.AsDict(counts)
    # One output per split (no per-example filter); the DoFn counts its examples.
    examples = timelines | "Examples" >> beam.ParDo(
        _Examples(cfg), items_side, counts_side
    ).with_outputs(DROPS, SPLIT_TRAIN, SPLIT_EVAL)
    drops = [*drops, items[DROPS], examples[DROPS]]
    for split in (SPLIT_TRAIN, SPLIT_EVAL):
        _write(examples[split], split, examples_uri, split)
        # A split without examples still reports 0 (the executor fails on it, by name).
        drops.append(pipeline | f"Zero{split}" >> beam.Create([(_count_key(split), 0)]))
    catalog = items.rows | "Catalog" >> beam.Map(
        lambda kv, c: example_codec.encode(
            S.catalog_example(kv[1], c.get(kv[0], 0)), F.CATALOG_FEATURES
        ).SerializeToString(),
        counts_side,
    )
    _write(catalog, "Catalog", catalog_uri, SPLIT_CATALOG)
    drops.append(
        catalog
        | "CountCatalog" >> beam.combiners.Count.Globally()
        | "NameCatalog" >> beam.Map(lambda n: ("catalog_items", n))
    )
    drops.append(
        count_timelines
        | "CountUsers" >> beam.combiners.Count.Globally()
        | "NameUsers" >> beam.Map(lambda n: ("users", n))
    )
    _write_report(drops, os.path.join(examples_uri, REPORT_FILE))


def build(
    pipeline, patterns: dict[str, str], examples_uri: str, catalog_uri: str, cfg: S.SequenceConfig
) -> None:
    """Adds the whole BehaviorSequenceGen graph, in one pass, to `pipeline`.

    Args:
        pipeline: a beam.Pipeline.
        patterns: file pattern per table (F.INTERACTIONS, F.ITEMS, optional F.USERS).
        examples_uri: where Split-train / Split-eval and report.json go.
        catalog_uri: where Split-catalog goes.
        cfg: the sequence config.
    """
    items = _items(pipeline, patterns)
    timelines, drops = _timelines(pipeline, patterns, beam.pvalue.AsDict(items.rows), cfg)
    _emit(pipeline, timelines, timelines, items, drops, examples_uri, catalog_uri, cfg)


def build_shard(
    pipeline,
    patterns: dict[str, str],
    shard_dir: str,
    cfg: S.SequenceConfig,
    shard: int,
    shards: int,
) -> None:
    """Pass `shard` of `shards` in the sharded plan: the timelines of the users that
    `shard_of` puts in this shard, written (pickled) to shard_dir, and this pass's counts
    to shard_dir/report-<shard>.json. Only these users' events are grouped."""
    items = _items(pipeline, patterns)
    timelines, drops = _timelines(
        pipeline, patterns, beam.pvalue.AsDict(items.rows), cfg, (shard, shards)
    )
    _ = (
        timelines
        | "Pickle" >> beam.Map(pickle.dumps, pickle.HIGHEST_PROTOCOL)
        | "WriteTimelines"
        >> beam.io.WriteToTFRecord(os.path.join(shard_dir, f"{TIMELINES}-{shard}"))
    )
    _write_report(drops, os.path.join(shard_dir, f"{REPORT_PART}-{shard}.json"))


def build_from_shards(
    pipeline,
    patterns: dict[str, str],
    shard_dir: str,
    examples_uri: str,
    catalog_uri: str,
    cfg: S.SequenceConfig,
) -> None:
    """The last pass of the sharded plan: examples, catalog and report from the timelines
    and counts that the `build_shard` passes wrote to shard_dir. Nothing here groups by
    user: the timelines stream from the files into the examples."""
    items = _items(pipeline, patterns)
    pattern = os.path.join(shard_dir, f"{TIMELINES}-*")

    def read(name):
        return (
            pipeline
            | f"Read{name}" >> beam.io.ReadFromTFRecord(pattern, coder=beam.coders.BytesCoder())
            | f"Unpickle{name}" >> beam.Map(pickle.loads)
        )

    parts = collections.Counter()
    for path in sorted(tf.io.gfile.glob(os.path.join(shard_dir, f"{REPORT_PART}-*.json"))):
        with tf.io.gfile.GFile(path) as f:
            parts.update(json.load(f))
    drops = [pipeline | "ShardReports" >> beam.Create(sorted(parts.items()))]
    _emit(
        pipeline,
        read("Timelines"),
        read("CountTimelines"),
        items,
        drops,
        examples_uri,
        catalog_uri,
        cfg,
    )
