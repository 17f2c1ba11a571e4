"""The compiled KFP IR executed three times by pipeline/kfp_local (make kfp-local).

Run 1 and run 2 read span 0 (full updates), run 3 reads the new span 1 with
update_mode=incremental. Asserts what each run resolved, trained, blessed and pushed.
"""

import json
import os

import numpy as np
import pytest

from pipeline import kfp_local_runs

pytestmark = pytest.mark.e2e
FAMILIES = ("retrieval", "ranking")
# Table layer name (a part of the variable name) -> its Transform vocabulary asset.
VOCABS = {
    "item_emb": "item_id_vocab",
    "user_emb": "user_id_vocab",
    "genre": "genre_vocab",
    "gender": "gender_vocab",
    "occupation": "occupation_vocab",
}
ID_TABLES = ("item_emb", "user_emb")


def _outputs(report, task, key):
    return report["tasks"][task]["outputs"][key]


def _meta(report, task, key="model"):
    (artifact,) = _outputs(report, task, key)
    return artifact["metadata"]


def _uri(report, task, key="model"):
    (artifact,) = _outputs(report, task, key)
    return artifact["uri"]


def _span(report):
    """The span ExampleGen's driver resolved (TFX reports it as "custom:span")."""
    meta = _meta(report, "interactions_example_gen", "examples")
    return meta.get("span", meta.get("custom:span"))


def _summary(report, family):
    with open(
        os.path.join(_uri(report, f"{family}_trainer", "model_run"), "training_summary.json")
    ) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reports = kfp_local_runs.three_runs(str(tmp_path_factory.mktemp("kfp_local")), train_steps=20)
    assert [len(r["tasks"]) for r in reports] == [len(reports[0]["tasks"])] * 3
    return reports


def test_run_1_resolves_nothing_and_trains_cold(runs):
    first = runs[0]
    assert _outputs(first, "latest_baseline_record", "record") == []
    for family in FAMILIES:
        status = _meta(first, "BaselineLoader", f"{family}_model")["baseline"]
        assert status.startswith("no baseline") and "first run" in status
        assert "no baseline" in _meta(first, f"{family}_trainer")["baseline"]
        assert "no baseline" in _meta(first, f"{family}_evaluator", "blessing")["baseline"]
    assert "warm_start" not in _summary(first, "retrieval")  # trained from scratch
    assert _summary(first, "ranking")["warm_start"] is None
    assert _meta(first, "HardNegativeMiner", "hard_negatives")["negatives"] == 0
    assert _meta(first, "Pusher", "pushed_model")["pushed"] == 1


def test_run_2_warm_starts_and_compares_each_family_with_its_own_run_1_model(runs):
    first, second = runs[0], runs[1]
    (record,) = _outputs(second, "latest_baseline_record", "record")
    assert record["uri"] == _uri(first, "BaselinePublisher", "record")
    for family in FAMILIES:
        loaded = _meta(second, "BaselineLoader", f"{family}_model")["baseline"]
        assert loaded.startswith(f"{family} baseline: {_uri(first, f'{family}_trainer')} ")
        baseline = _uri(second, "BaselineLoader", f"{family}_model")
        trainer = _meta(second, f"{family}_trainer")["baseline"]
        assert trainer == f"base_model: {family} baseline: {baseline}"
        blessing = _meta(second, f"{family}_evaluator", "blessing")
        assert f"{family} baseline: {baseline}" in blessing["baseline"]
    # The trainers really started from those weights.
    retrieval, ranking = _summary(second, "retrieval"), _summary(second, "ranking")
    serving = os.path.join(_uri(second, "BaselineLoader", "retrieval_model"), "Format-Serving")
    assert retrieval["base_model"] == serving and retrieval["warm_start"]["loaded"] > 0
    assert retrieval["warm_start"]["remapped"] == 5 and retrieval["warm_start"]["refused"] == 0
    serving = os.path.join(_uri(second, "BaselineLoader", "ranking_model"), "Format-Serving")
    assert ranking["warm_start"]["base_model"] == serving and ranking["warm_start"]["loaded"]
    assert ranking["mode"] == "full"
    # The retrieval evaluator measured the baseline it was given.
    with open(os.path.join(_uri(second, "retrieval_evaluator", "evaluation"), "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["baseline_uri"] == _uri(second, "BaselineLoader", "retrieval_model")
    assert metrics["baseline"]["hr@10"] is not None
    assert _meta(second, "HardNegativeMiner", "hard_negatives")["negatives"] > 0


def _variables(model_uri):
    """{name: value} of an exported model's variables."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    return {v.name: v.numpy() for v in loaded.model_variables}


def _vocab(model_uri, name):
    with open(os.path.join(model_uri, "Format-Serving", "assets", name), "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _changed(before_uri, after_uri) -> set[str]:
    """Variables whose values differ; a table with a vocabulary compares its rows by token
    (the new span reorders vocabularies; warm start moves the rows with their ids)."""
    before, after = _variables(before_uri), _variables(after_uri)
    assert before.keys() == after.keys()
    changed = set()
    for name in before:
        table = next((t for t in VOCABS if t in name and "/table/" in name), None)
        if table is None:
            if before[name].shape != after[name].shape or not np.array_equal(
                before[name], after[name]
            ):
                changed.add(name)
            continue
        old, new = _vocab(before_uri, VOCABS[table]), _vocab(after_uri, VOCABS[table])
        rows = {token: i for i, token in enumerate(old)}
        pairs = [(rows[t], j) for j, t in enumerate(new) if t in rows]
        assert pairs, f"{name}: no token in common"
        if any(not np.array_equal(before[name][i], after[name][j]) for i, j in pairs):
            changed.add(name)
    return changed


def test_run_3_updates_only_the_id_embeddings_on_the_new_span_and_pushes(runs):
    second, third = runs[1], runs[2]
    assert _span(third) == 1 and _span(second) == 0
    (record,) = _outputs(third, "latest_baseline_record", "record")
    assert record["uri"] == _uri(second, "BaselinePublisher", "record")
    for family in FAMILIES:
        base = _uri(third, "BaselineLoader", f"{family}_model")
        assert _meta(third, "BaselineLoader", f"{family}_model")["baseline"].startswith(
            f"{family} baseline: {_uri(second, f'{family}_trainer')} "
        )
        # Everything but the id tables is as it was (category tables compared by token); the
        # item table trained. (The user table too, but tiny data's spans share one user.)
        changed = _changed(base, _uri(third, f"{family}_trainer"))
        assert all(any(t in n for t in ID_TABLES) for n in changed), changed
        assert any("item_emb" in n for n in changed), changed
        summary = _summary(third, family)
        assert summary["mode"] == "incremental"
        trainable = (
            summary.get("trainable_variables") or summary["warm_start"]["trainable_variables"]
        )
        assert len(trainable) == 2 and all(any(t in n for t in ID_TABLES) for n in trainable)
    pushed, earlier = (
        _meta(third, "Pusher", "pushed_model"),
        _meta(second, "Pusher", "pushed_model"),
    )
    assert pushed["pushed"] == 1 and pushed["pushed_version"] > earlier["pushed_version"]
