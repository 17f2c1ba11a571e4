"""The compiled KFP IR executed three times by pipeline/kfp_local (make kfp-local).

Run 1 and run 2 read span 0 (full updates), run 3 reads the new span 1 with
update_mode=incremental. Asserts what each run resolved, trained, blessed and pushed.
"""

import os

import numpy as np
import pytest

from pipeline import kfp_local_runs

pytestmark = pytest.mark.e2e


def _meta(report, task, key="model"):
    (artifact,) = report["tasks"][task]["outputs"][key]
    return artifact["metadata"]


def _span(report):
    """The span ExampleGen's driver resolved (TFX reports it as "custom:span")."""
    meta = _meta(report, "interactions_example_gen", "examples")
    return meta.get("span", meta.get("custom:span"))


def _uri(report, task, key="model"):
    return report["tasks"][task]["outputs"][key][0]["uri"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return kfp_local_runs.three_runs(str(tmp_path_factory.mktemp("kfp_local")), train_steps=20)


def test_run_1_resolves_nothing_and_trains_cold(runs):
    first = runs[0]
    assert first["tasks"]["latest_baseline_record"]["outputs"]["record"] == []
    for family in ("retrieval", "ranking"):
        status = _meta(first, "BaselineLoader", f"{family}_model")["baseline"]
        assert status.startswith("no baseline") and "first run" in status
    assert "no baseline" in _meta(first, "retrieval_trainer")["baseline"]
    assert _meta(first, "HardNegativeMiner", "hard_negatives")["negatives"] == 0
    assert _meta(first, "Pusher", "pushed_model")["pushed"] == 1


def test_run_2_warm_starts_and_compares_each_family_with_its_own_run_1_model(runs):
    first, second = runs[0], runs[1]
    (record,) = second["tasks"]["latest_baseline_record"]["outputs"]["record"]
    assert record["uri"] == _uri(first, "BaselinePublisher", "record")
    for family, evaluator in (
        ("retrieval", "retrieval_evaluator"),
        ("ranking", "ranking_evaluator"),
    ):
        loaded = _meta(second, "BaselineLoader", f"{family}_model")["baseline"]
        assert loaded.startswith(f"{family} baseline: {_uri(first, f'{family}_trainer')} ")
        baseline = _uri(second, "BaselineLoader", f"{family}_model")
        trainer = _meta(second, f"{family}_trainer")["baseline"]
        assert trainer == f"base_model: {family} baseline: {baseline}"
        assert f"{family} baseline: {baseline}" in _meta(second, evaluator, "blessing")["baseline"]
    assert _meta(second, "HardNegativeMiner", "hard_negatives")["negatives"] > 0


def _variables(model_uri):
    """{checkpoint key: value} of the model's SavedModel variables."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(
        os.path.join(model_uri, "Format-Serving", "variables", "variables")
    )
    return {
        k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "VARIABLE_VALUE" in k
    }


def test_run_3_updates_only_the_id_embeddings_on_the_new_span_and_pushes(runs):
    first, third = runs[0], runs[2]
    assert _span(third) == 1 and _span(first) == 0
    before = _variables(_uri(third, "BaselineLoader", "retrieval_model"))
    after = _variables(_uri(third, "retrieval_trainer"))
    assert set(before) == set(after)
    changed = {
        n for n in before
        if before[n].shape != after[n].shape or not np.array_equal(before[n], after[n])
    }  # fmt: skip
    frozen = set(before) - {n for n in before if "embedding" in n}
    assert changed and frozen and not changed & frozen, sorted(changed & frozen)
    pushed, earlier = _meta(third, "Pusher", "pushed_model"), _meta(first, "Pusher", "pushed_model")
    assert pushed["pushed"] == 1 and pushed["pushed_version"] > earlier["pushed_version"]
