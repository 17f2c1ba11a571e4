"""The whole pipeline, run by LocalDagRunner on tiny synthetic data."""

import glob
import json
import os

import pandas as pd
import pytest
import tensorflow as tf

from pipeline import cli, summary
from schemas import features as F

pytestmark = pytest.mark.e2e

EXPECTED_COMPONENTS = {
    "interactions_example_gen",
    "items_example_gen",
    "users_example_gen",
    "BehaviorSequenceGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "StrictExampleValidator",
    "Transform",
}


def count_records(pattern):
    return sum(1 for _ in tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", str(work), "--negative-ratio", "2"]
    assert cli.main(argv) == 0
    config = cli.build_config(cli._parser().parse_args(argv))
    return config, summary.collect(config)


def test_every_component_executed(run):
    _, result = run
    assert set(result["components"]) == EXPECTED_COMPONENTS
    assert {c["state"] for c in result["components"].values()} == {"COMPLETE"}


def test_output_counts_match_the_input(run):
    config, result = run
    events = pd.read_csv(glob.glob(os.path.join(config.data.path, "interactions/span-*/*.csv"))[0])
    items = pd.read_csv(glob.glob(os.path.join(config.data.path, "items/span-*/*.csv"))[0])
    counts, drops = result["counts"], result["drops"]
    assert counts["events_read"] == len(events)
    assert counts["catalog_items"] == len(items)
    assert counts["users"] == events[F.USER_ID].nunique()
    # Leave-last-out: one eval positive per user with a positive event; each positive gets 2
    # sampled negatives (the tiny catalog is large enough that none runs short).
    users_with_positive = events[events[F.RATING] >= 4][F.USER_ID].nunique()
    assert "negatives_short" not in drops
    assert counts["eval_examples"] == 3 * users_with_positive
    # Events after a user's last positive are dropped; they are all label 0 by definition.
    after = drops.get("after_eval_target", 0)
    train_real = len(events) - after - users_with_positive
    train_positive = train_real - ((events[F.RATING] < 4).sum() - after)
    assert counts["train_examples"] == train_real + 2 * train_positive
    # Transform wrote every example of both splits.
    root = config.pipeline_root
    transformed = glob.glob(os.path.join(root, "Transform", "transformed_examples", "*"))[0]
    assert count_records(os.path.join(transformed, "Split-train", "*")) == counts["train_examples"]
    assert count_records(os.path.join(transformed, "Split-eval", "*")) == counts["eval_examples"]


def test_summary_file_written(run):
    config, _ = run
    path = os.path.join(os.path.dirname(config.pipeline_root), "summary.json")
    assert json.load(open(path))["counts"]["events_read"] > 0
