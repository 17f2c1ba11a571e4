"""The BehaviorSequenceGen Beam graph on the hand-built three-user example."""

import glob
import json
import os
import pickle

import apache_beam as beam
import pytest
import tensorflow as tf

from components.behavior_sequence_gen import sequences as S
from components.behavior_sequence_gen import transforms
from models.common import example_codec
from schemas import features as F

from .test_sequences import ITEMS, THREE_USERS

# A fourth user whose training items (F, G) give the others something to sample.
U4 = [{F.USER_ID: "u4", F.TIMESTAMP: t, F.ITEM_ID: i, F.RATING: 5.0} for t, i in enumerate("FGH")]


def write_table(path, rows, table):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for row in rows:
            w.write(
                example_codec.encode(row, example_codec.table_dtypes(table)).SerializeToString()
            )
    return path


def read_split(uri, split, dtypes):
    files = glob.glob(os.path.join(uri, f"Split-{split}", "*.gz"))
    return [
        example_codec.decode(r.numpy(), dtypes)
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]


def write_inputs(tmp_path, users=True) -> dict[str, str]:
    events = [r for rows in THREE_USERS.values() for r in rows] + U4
    patterns = {
        F.INTERACTIONS: write_table(str(tmp_path / "in/events.tfr"), events, F.INTERACTIONS),
        F.ITEMS: write_table(
            str(tmp_path / "in/items.tfr"), list(ITEMS.values()) + [ITEMS["A"]], F.ITEMS
        ),
    }
    if users:
        patterns[F.USERS] = write_table(
            str(tmp_path / "in/users.tfr"),
            [
                {F.USER_ID: "u1", F.AGE: 31, F.GENDER: "F", F.OCCUPATION: "artist"},
                {F.USER_ID: "u2", F.AGE: 22},
            ],
            F.USERS,
        )
    return patterns


def run(tmp_path, cfg, users=True):
    patterns = write_inputs(tmp_path, users)
    out, cat = str(tmp_path / "examples"), str(tmp_path / "catalog")
    with beam.Pipeline() as p:
        transforms.build(p, patterns, out, cat, cfg)
    return out, cat


def test_graph_matches_hand_built_example(tmp_path):
    # EXCLUDE_EVER keeps the negatives' candidates small enough to list by hand; the
    # leak-free default is tested in test_sequences (test_negatives_at_t_may_be_...).
    cfg = S.SequenceConfig(history_length=3, negative_ratio=1, negative_exclusion=S.EXCLUDE_EVER)
    out, cat = run(tmp_path, cfg)
    train = read_split(out, "train", F.SEQUENCE_FEATURES)
    evals = read_split(out, "eval", F.SEQUENCE_FEATURES)
    # Real events (label 1, or label 0 from a low rating) of the worked example.
    positives_train = [
        (x[F.USER_ID], x[F.ITEM_ID], tuple(x[F.HISTORY_ITEM_IDS])) for x in train if x[F.LABEL] == 1
    ]
    assert sorted(positives_train) == [
        ("u1", "A", ("", "", "")),
        ("u2", "A", ("", "", "")),
        ("u2", "B", ("", "", "")),
        ("u4", "F", ("", "", "")),
        ("u4", "G", ("F", "", "")),
    ]
    assert sorted(
        (x[F.USER_ID], x[F.ITEM_ID], tuple(x[F.HISTORY_ITEM_IDS])) for x in evals if x[F.LABEL] == 1
    ) == [("u1", "C", ("A", "B", "")), ("u2", "C", ("A", "B", "")), ("u4", "H", ("F", "G", ""))]
    # Training counts: A 3, B 3, F 1, G 1; only these can be negatives. u1 and u2 saw A and B,
    # so their negatives are F or G; u4's are A or B. One per positive: 5 train, 3 eval.
    negatives = [
        x
        for x in train + evals
        if x[F.LABEL] == 0 and x[F.USER_ID] != "u3" and (x[F.USER_ID], x[F.ITEM_ID]) != ("u1", "B")
    ]
    assert len(negatives) == 8
    assert all(x[F.ITEM_ID] in ("F", "G") for x in negatives if x[F.USER_ID] in ("u1", "u2"))
    assert all(x[F.ITEM_ID] in ("A", "B") for x in negatives if x[F.USER_ID] == "u4")
    assert sum(x[F.LABEL] == 0 for x in train) == 5 + 3  # + real label-0 events u1:B, u3:A, u3:B
    u1 = next(x for x in evals if x[F.USER_ID] == "u1")
    assert (u1[F.AGE], u1[F.GENDER], u1[F.OCCUPATION]) == (31, "F", "artist")
    u3 = next(x for x in train if x[F.USER_ID] == "u3")
    assert (u3[F.AGE], u3[F.GENDER]) == (F.MISSING_INT, F.UNKNOWN)  # unknown user kept

    report = json.load(open(os.path.join(out, transforms.REPORT_FILE)))
    assert report == {
        S.DROP_AFTER_EVAL_TARGET: 2,
        S.DROP_DUPLICATE_EVENT: 1,
        S.DROP_UNKNOWN_ITEM: 1,
        S.DROP_DUPLICATE_ITEM_ROW: 1,
        S.NOTE_UNKNOWN_USER: 5,
        "train_examples": len(train),
        "eval_examples": len(evals),
        "catalog_items": len(ITEMS),
        "users": 4,
        "events_read": 15,
    }
    catalog = {x[F.ITEM_ID]: x for x in read_split(cat, "catalog", F.CATALOG_FEATURES)}
    # Training events per item: A (u1, u2, u3), B (u1, u2, u3), F and G (u4).
    assert {k: v[F.ITEM_COUNT] for k, v in catalog.items() if v[F.ITEM_COUNT]} == {
        "A": 3,
        "B": 3,
        "F": 1,
        "G": 1,
    }
    assert catalog["B"][F.PRIMARY_GENRE] == "Drama"


def test_graph_without_users_table(tmp_path):
    out, _ = run(tmp_path, S.SequenceConfig(negative_ratio=0), users=False)
    report = json.load(open(os.path.join(out, transforms.REPORT_FILE)))
    assert report[S.NOTE_UNKNOWN_USER] == 13 and report["train_examples"] == 8


def test_codec_round_trip_and_joined_features():
    row = {F.USER_ID: "u", F.TIMESTAMP: 3, F.GENRES: [], F.HISTORY_ITEM_IDS: ["A", ""]}
    example = example_codec.encode(row, F.SEQUENCE_FEATURES)
    assert example.features.feature[F.GENRES].WhichOneof("kind") == "bytes_list"
    assert example_codec.decode(example.SerializeToString(), F.SEQUENCE_FEATURES) == row
    target = {F.ITEM_ID: "B", F.LABEL: 0, F.YEAR: 1999}
    joined = example_codec.join_features(
        example_codec.encode_features(row, F.SEQUENCE_FEATURES),
        example_codec.encode_features(target, F.SEQUENCE_FEATURES),
    )
    # The same message as encoding the merged row at once (map entries in any order).
    assert tf.train.Example.FromString(joined) == example_codec.encode(
        {**row, **target}, F.SEQUENCE_FEATURES
    )
    parsed = tf.io.parse_single_example(
        joined,
        {
            F.USER_ID: tf.io.FixedLenFeature([], tf.string),
            F.YEAR: tf.io.FixedLenFeature([], tf.int64),
            F.HISTORY_ITEM_IDS: tf.io.FixedLenFeature([2], tf.string),
        },
    )
    assert parsed[F.YEAR].numpy() == 1999
    assert list(parsed[F.HISTORY_ITEM_IDS].numpy()) == [b"A", b""]


def test_joined_features_of_a_long_payload():
    """A payload of >= 128 bytes needs a multi-byte length (varint) in the wrapper."""
    history = [f"item-{i:04d}" for i in range(40)]
    parts = [
        example_codec.encode_features({F.HISTORY_ITEM_IDS: history}, F.SEQUENCE_FEATURES),
        example_codec.encode_features({F.USER_ID: "u" * 300}, F.SEQUENCE_FEATURES),
    ]
    example = tf.train.Example.FromString(example_codec.join_features(*parts))
    assert example_codec.decode(example, F.SEQUENCE_FEATURES) == {
        F.HISTORY_ITEM_IDS: history,
        F.USER_ID: "u" * 300,
    }


def _outputs(out, cat):
    """Everything BehaviorSequenceGen wrote, order-free: splits, catalog, report."""

    def rows(uri, split, dtypes):
        return sorted(json.dumps(x, sort_keys=True) for x in read_split(uri, split, dtypes))

    with open(os.path.join(out, transforms.REPORT_FILE)) as f:
        report = json.load(f)
    return {
        "train": rows(out, "train", F.SEQUENCE_FEATURES),
        "eval": rows(out, "eval", F.SEQUENCE_FEATURES),
        "catalog": rows(cat, "catalog", F.CATALOG_FEATURES),
        "report": report,
    }


@pytest.mark.parametrize("shards", [2, 3])
def test_the_sharded_plan_writes_what_one_pass_writes(tmp_path, shards):
    users = ["u1", "u2", "u3", "u4"]
    assert len({transforms.shard_of(u, shards) for u in users}) > 1  # a real split
    cfg = S.SequenceConfig(history_length=3, negative_ratio=2)
    expected = _outputs(*run(tmp_path / "one", cfg))
    assert expected["train"] and expected["eval"]

    patterns = write_inputs(tmp_path / "sharded")
    shard_dir = str(tmp_path / "sharded" / "shards")
    for shard in range(shards):
        with beam.Pipeline() as p:
            transforms.build_shard(p, patterns, shard_dir, cfg, shard, shards)
        # The pass grouped its own users only.
        files = glob.glob(os.path.join(shard_dir, f"{transforms.TIMELINES}-{shard}-*"))
        records = tf.data.TFRecordDataset(files) if files else []
        timelines = [pickle.loads(r.numpy()) for r in records]
        assert sorted(t.user_id for t in timelines) == [
            u for u in users if transforms.shard_of(u, shards) == shard
        ]
    out, cat = str(tmp_path / "sharded" / "examples"), str(tmp_path / "sharded" / "catalog")
    with beam.Pipeline() as p:
        transforms.build_from_shards(p, patterns, shard_dir, out, cat, cfg)
    assert _outputs(out, cat) == expected


def _consumers(beam_pipeline) -> dict[str, list[str]]:
    """{producer's full label: the full labels of the transforms reading its outputs}."""
    found: dict[str, list[str]] = {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            for pcoll in node.inputs:
                if pcoll.producer is not None:  # None: the pipeline's start (PBegin)
                    found.setdefault(pcoll.producer.full_label, []).append(node.full_label)

    beam_pipeline.visit(Visitor())
    return found


def test_the_last_pass_streams_the_timelines_into_the_examples(tmp_path):
    """Timelines that fed both the examples and the counts (their side input) would be one
    PCollection that the runner holds whole until the counts are done. The last pass reads
    the shards' files twice instead, and groups nothing by user."""
    patterns, cfg = write_inputs(tmp_path), S.SequenceConfig()
    shard_dir = str(tmp_path / "shards")
    with beam.Pipeline() as p:
        transforms.build_shard(p, patterns, shard_dir, cfg, 0, 1)
    p = beam.Pipeline()
    transforms.build_from_shards(p, patterns, shard_dir, str(tmp_path / "e"), "", cfg)
    consumers = _consumers(p)
    assert [c.split("/")[0] for c in consumers["UnpickleTimelines"]] == ["Examples"]
    assert consumers["UnpickleCountTimelines"]
    assert not any(c.startswith("Examples") for c in consumers["UnpickleCountTimelines"])
    assert not any("JoinUsers" in label for label in consumers)
