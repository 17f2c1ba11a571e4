"""The whole pipeline, run by LocalDagRunner on tiny synthetic data."""

import dataclasses
import glob
import json
import os

import pandas as pd
import pytest
import tensorflow as tf

from components.retrieval_evaluator.metrics import METRICS
from components.versioned_pusher import push
from models.common import example_codec
from models.serving import export
from pipeline import cli, local_runner, showcase, summary
from schemas import features as F
from schemas import model_version

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
    "latest_baseline_record",
    "BaselineLoader",
    "retrieval_trainer",
    "retrieval_evaluator",
    "ranking_trainer",
    "ranking_evaluator",
    "HardNegativeMiner",
    "ScannIndexBuilder",
    "RecommenderAssembler",
    "Pusher",
    "BaselinePublisher",
}


def count_records(pattern):
    return sum(1 for _ in tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP"))


def test_every_component_executed(run):
    _, result = run
    assert set(result["components"]) == EXPECTED_COMPONENTS
    # The baseline Resolver included: finding nothing is the first run, not a failure.
    assert {c["state"] for c in result["components"].values()} == {"COMPLETE"}
    assert result["baselines"] == ["no baseline: no baseline record yet (first run)"] * 2


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
    # The examples the trainers read (test below) hold every example of both splits.
    root = config.pipeline_root
    (sequences,) = glob.glob(os.path.join(root, "BehaviorSequenceGen", "examples", "*"))
    assert count_records(os.path.join(sequences, "Split-train", "*")) == counts["train_examples"]
    assert count_records(os.path.join(sequences, "Split-eval", "*")) == counts["eval_examples"]


def _input_uris(config, node: str, key: str) -> set[str]:
    """URIs of the artifacts a node's executions read under input `key`. By node context,
    not `summary`'s latest run: the miner's tests run pipelines of their own on this MLMD."""
    from ml_metadata.proto import metadata_store_pb2

    store = summary._store(config)
    context = store.get_context_by_type_and_name("node", f"{config.name}.{node}")
    executions = store.get_executions_by_context(context.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    ids = [
        e.artifact_id
        for e in events
        if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key
    ]
    return {a.uri for a in store.get_artifacts_by_id(ids)}


def test_the_trainers_read_the_raw_examples_and_transform_does_not_materialize(run):
    config, _ = run
    assert not config.transform_materialize  # the default path
    root = config.pipeline_root
    (sequences,) = glob.glob(os.path.join(root, "BehaviorSequenceGen", "examples", "*"))
    for node in ("retrieval_trainer", "ranking_trainer"):
        assert _input_uris(config, node, "examples") == {sequences}, node
    assert not glob.glob(os.path.join(root, "Transform", "transformed_examples", "*", "Split-*"))


def test_retrieval_trained_evaluated_and_blessed(run):
    _, result = run
    metrics = result["retrieval"]["metrics"]
    assert metrics["num_queries"] == result["counts"]["eval_examples"] // 3
    assert 0 < metrics["hr@10"] <= metrics["hr@50"] <= metrics["hr@100"] <= 1
    assert result["retrieval"]["blessed"]  # the first model has no baseline to beat
    assert os.path.getsize(result["retrieval"]["plot"]) > 0


def test_ranker_trained_evaluated_and_blessed(run):
    _, result = run
    metrics = result["ranking"]["metrics"]
    assert metrics["example_count"] == result["counts"]["eval_examples"]
    assert 0 < metrics["auc"] <= 1 and 0 < metrics["gauc"] <= 1
    assert result["ranking"]["blessed"]  # no floor and no baseline yet


def test_the_model_is_pushed_and_answers_a_request(run):
    config, result = run
    record = result["push"]
    assert record["pushed"] and not record["refused_because"]
    version = str(record["version"])
    served = record["destinations"]["portable"]
    assert served == os.path.join(config.push_dir, "recommender", version)
    assert os.path.exists(os.path.join(served, "saved_model.pb"))
    assert model_version.verify_manifest(served) > 3  # written by the assembler, copied whole
    assert os.path.exists(os.path.join(config.push_dir, "recommender_scann", version))
    answers = showcase.recommend(served, showcase.sample_requests(result["assembly"]["uri"], 3))
    titles = export.read_titles(served)
    for answer in answers:
        assert len(answer["items"]) == 10
        assert all(item in titles for item, *_ in answer["items"])
        assert not set(answer["history"]) & {item for item, *_ in answer["items"]}
        finals = [final for _, _, final, _ in answer["items"]]
        assert finals == sorted(finals, reverse=True)  # best first, by the final score


def test_second_run_is_judged_against_run_1s_baseline_and_the_push_follows_the_gate(run):
    """Run 2 resolves run 1's blessed models as baselines; its retriever is blessed only if
    no metric regressed beyond max_regression, and a refused model is not pushed (the
    served version stays the same).

    Which way the gate goes is not asserted: on tiny data (60 eval users) run 1's default
    two-tower (causal self-attention, ~18 steps) scored HR@10 .117 and a 1-step 8-wide
    model .200, so "the degraded model loses" was luck, not construction. The regression
    rule itself is tested by hand in tests/components/retrieval_evaluator."""
    config, first = run
    base = os.path.join(config.push_dir, "recommender")
    served_before = push.versions(base)
    # Other tower sizes (nothing to warm-start) and one training step.
    worse = dataclasses.replace(
        config,
        retrieval=config.retrieval.with_overrides({"embedding_dim": 8, "output_dim": 8}),
        ranking=dataclasses.replace(config.ranking, item_dim=8),
        train_steps=1,
    )
    local_runner.run(worse)
    second = summary.collect(worse)
    assert second["components"]["BehaviorSequenceGen"]["state"] == "CACHED"
    assert second["components"]["retrieval_trainer"]["state"] == "COMPLETE"
    ranking, retrieval = second["baselines"]  # each family gets its own run 1 model
    assert ranking.startswith("ranking baseline: ") and "ranking_trainer" in ranking
    assert retrieval.startswith("retrieval baseline: ") and "retrieval_trainer" in retrieval
    evaluation = glob.glob(
        os.path.join(config.pipeline_root, "retrieval_evaluator", "evaluation", "*", "metrics.json")
    )
    latest = json.load(open(max(evaluation, key=os.path.getmtime)))
    assert latest["baseline"]["hr@10"] == first["retrieval"]["metrics"]["hr@10"]
    tolerance = latest["config"]["max_regression"]
    regressed = [  # metrics.METRICS, the ones the gate compares
        k for k in METRICS if latest["model"][k] < latest["baseline"][k] * (1.0 - tolerance)
    ]
    assert second["retrieval"]["blessed"] == (not regressed)
    assert "auc_baseline" in second["ranking"]["metrics"]  # compared against run 1's ranker
    assert second["components"]["Pusher"]["state"] == "COMPLETE"
    if regressed:
        assert "baseline" in " ".join(second["retrieval"]["reasons"])
        assert not second["push"]["pushed"]
        assert "retrieval_blessing: not blessed" in second["push"]["refused_because"]
        assert push.versions(base) == served_before == [first["push"]["version"]]
    elif second["push"]["pushed"]:
        assert push.versions(base)[-1] == second["push"]["version"] > first["push"]["version"]


def test_summary_file_written(run):
    config, _ = run
    path = os.path.join(os.path.dirname(config.pipeline_root), "summary.json")
    assert json.load(open(path))["counts"]["events_read"] > 0


def split_records(config, split):
    root = os.path.join(config.pipeline_root, "BehaviorSequenceGen", "examples", "*")
    files = glob.glob(os.path.join(root, f"Split-{split}", "*"))
    rows = [
        example_codec.decode(r.numpy(), F.SEQUENCE_FEATURES)
        for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
    ]
    # Map fields serialize in a per-process order, so compare decoded rows.
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_beam_runner_writes_the_same_examples(run, tmp_path):
    """BeamDagRunner (2 worker processes) and LocalDagRunner agree example for example."""
    local_config, _ = run
    argv = [
        "run",
        "--runner",
        "beam",
        "--data",
        "synthetic:tiny",
        "--work-dir",
        str(tmp_path),
        "--until",
        "BehaviorSequenceGen",
    ]
    assert cli.main(argv) == 0
    beam_config = cli.build_config(cli._parser().parse_args(argv))
    beam_summary = summary.collect(beam_config)
    assert {c["state"] for c in beam_summary["components"].values()} == {"COMPLETE"}
    for split in ("train", "eval"):
        assert split_records(beam_config, split) == split_records(local_config, split)
