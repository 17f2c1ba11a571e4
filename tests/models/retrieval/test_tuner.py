"""The tuned hyperparameters -> RetrievalConfig override, the objective by hand, and
tuner_fn's search on tiny data."""

import json
import math
import os

import keras_tuner as kt
import numpy as np
import pytest
from tfx.components.trainer.fn_args_utils import FnArgs

from models.retrieval import trainer, tuner
from models.retrieval.config import RetrievalConfig
from models.retrieval.config.overrides import flat_value
from models.retrieval.hyperparameters import (
    TUNABLE,
    TUNING_KEY,
    SearchSpace,
    apply_hyperparameters,
)
from models.retrieval.sequence import HistoryEncoderSpec
from schemas import features as F

BASE = RetrievalConfig().with_overrides(
    batch_size=32, steps_per_epoch=3, num_mixed_negatives=16, seed=4
)
TUNED = {"embedding_dim": 16, "temperature": 0.1, "epochs": 1, "learning_rate": 0.03}


def keras_tuner_hp(values):
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Choice(name, [value])
    return hp


def test_hyperparameters_override_exactly_the_tuned_fields():
    hp = keras_tuner_hp(TUNED)
    for given in (hp, hp.get_config(), json.loads(json.dumps(hp.get_config())), TUNED):
        config = apply_hyperparameters(BASE, given)
        assert (config.tower.embedding_dim, config.tower.temperature) == (16, 0.1)
        assert (config.training.epochs, config.training.learning_rate) == (1, 0.03)
        assert config == BASE.with_overrides(TUNED)  # nothing else changed
    partial = apply_hyperparameters(BASE, {"temperature": 0.02})
    assert partial == BASE.with_overrides(temperature=0.02)


def test_no_hyperparameters_leave_the_config_unchanged():
    assert apply_hyperparameters(BASE, None) is BASE
    assert apply_hyperparameters(BASE, kt.HyperParameters()) is BASE


def test_bad_hyperparameters_fail_naming_them():
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['dropout'\]"):
        apply_hyperparameters(BASE, {"dropout": 0.1})
    with pytest.raises(ValueError, match="RetrievalConfig.training.epochs must be >= 1"):
        apply_hyperparameters(BASE, {"values": {"epochs": 0}})
    with pytest.raises(ValueError, match="got list"):
        apply_hyperparameters(BASE, [("epochs", 2)])


def test_search_space_validation_and_round_trip():
    space = SearchSpace(embedding_dim=[8, 16], max_trials=2)
    assert space.embedding_dim == (8, 16)
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    hp = kt.HyperParameters()
    space.declare(hp)
    assert {p.name: list(p.values) for p in hp.space} == {
        "embedding_dim": [8, 16],
        "temperature": [0.02, 0.05, 0.1],
        "epochs": [2, 3, 5],
        "learning_rate": [0.003, 0.01, 0.03],
    }
    with pytest.raises(ValueError, match="SearchSpace.temperature: RetrievalConfig.tower.temp"):
        SearchSpace(temperature=(0.05, 0.0))
    with pytest.raises(ValueError, match="SearchSpace.epochs is empty"):
        SearchSpace(epochs=())
    with pytest.raises(ValueError, match="SearchSpace.learning_rate has repeated"):
        SearchSpace(learning_rate=(0.01, 0.01))
    with pytest.raises(ValueError, match="SearchSpace.max_trials"):
        SearchSpace(max_trials=0)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['dims'\]"):
        SearchSpace.from_dict({"dims": [8]})
    attention = RetrievalConfig().with_overrides(
        history=HistoryEncoderSpec(kind="self_attention", num_heads=4)
    )
    SearchSpace(embedding_dim=(16, 32)).check(attention)
    with pytest.raises(ValueError, match=r"\[18\] are not multiples"):
        SearchSpace(embedding_dim=(16, 18)).check(attention)


def test_target_ranks_by_hand():
    scores = np.array(
        [
            [0.9, 0.5, 0.7, 0.1],  # target 2: item 0 beats it -> rank 1
            [0.9, 0.5, 0.7, 0.1],  # target 2, item 0 excluded -> rank 0
            [0.2, 0.2, 0.2, 0.0],  # target 1 ties items 0 and 2 -> rank 2 (ties count against)
            [0.1, 0.2, 0.3, 0.4],  # target 3 excluded in the mask: never removed -> rank 0
            [0.1, 0.2, 0.3, 0.4],  # target 7: not a candidate -> miss (rank 4)
            [0.1, np.nan, 0.3, 0.4],  # target 1 scores NaN -> miss
        ]
    )
    targets = np.array([2, 2, 1, 3, 7, 1])
    exclude = np.zeros((6, 4), bool)
    exclude[1, 0] = exclude[3, 3] = True
    np.testing.assert_array_equal(tuner.target_ranks(scores, targets, exclude), [1, 0, 2, 0, 4, 4])
    assert exclude[3, 3]  # the caller's mask is not modified


def test_ranking_metrics_by_hand():
    metrics = tuner.ranking_metrics(np.array([0, 1, 10, 3]), k=10)
    assert metrics[tuner.HIT_RATE] == pytest.approx(3 / 4)
    expected = (1.0 + 1 / math.log2(3) + 0.0 + 1 / math.log2(5)) / 4  # = 0.51540
    assert metrics[tuner.OBJECTIVE] == pytest.approx(expected)
    with pytest.raises(ValueError, match="no positive example"):
        tuner.ranking_metrics(np.zeros(0, np.int64), k=10)


def test_exclusion_mask_by_hand():
    seen = {7: np.array([0, 3])}
    history = np.array([[2, -1], [1, 9]])  # -1 padding; 9 is outside the 5 candidates
    mask = tuner.exclusion_mask(np.array([7, 8]), history, seen, num_items=5)
    np.testing.assert_array_equal(mask, [[1, 0, 1, 1, 0], [0, 1, 0, 0, 0]])


def tuner_args(tiny_data, root, space, config=BASE):
    return FnArgs(
        working_dir=os.path.join(root, "work"),
        train_files=[tiny_data.raw("train")],
        eval_files=[tiny_data.raw("eval")],
        transform_graph_path=tiny_data.transform_graph,
        train_steps=4,
        custom_config={"retrieval": config.to_dict(), TUNING_KEY: space.to_dict()},
    )


def test_seen_items_are_the_users_training_positives_and_history(tiny_data):
    import tensorflow_transform as tft

    from models.common import data
    from models.retrieval.layers import HISTORY, ITEM, USER

    output = tft.TFTransformOutput(tiny_data.transform_graph)
    seen = tuner.seen_items([tiny_data.raw("train")], output)
    expected = {}
    for batch in data.make_dataset(
        [tiny_data.raw("train")], output, 512, shuffle=False, num_epochs=1
    ):
        rows = zip(
            batch[USER].numpy().reshape(-1),
            batch[ITEM].numpy().reshape(-1),
            batch["label"].numpy().reshape(-1),
            batch[HISTORY].numpy(),
            strict=True,
        )
        for user, item, label, history in rows:
            items = expected.setdefault(int(user), set())
            items.update(int(h) for h in history if h >= 0)
            if label == 1:
                items.add(int(item))
    assert {u: set(v.tolist()) for u, v in seen.items()} == expected


def test_tuner_fn_searches_two_trials_within_the_space(tiny_data, tmp_path):
    """Trial 1 is BASE as configured (its values are in the space), trial 2 another point."""
    space = SearchSpace(
        embedding_dim=(8, 32), temperature=(0.05, 0.1), epochs=(1, 3), max_trials=2, seed=1
    )
    result = tuner.tuner_fn(tuner_args(tiny_data, str(tmp_path), space))
    assert result.fit_kwargs == {}
    result.tuner.search(**result.fit_kwargs)
    trials = list(result.tuner.oracle.trials.values())
    assert len(trials) == 2 and {t.status for t in trials} == {"COMPLETED"}
    assert trials[0].hyperparameters.values == {n: flat_value(BASE, n) for n in TUNABLE}
    assert trials[1].hyperparameters.values != trials[0].hyperparameters.values
    scores = [t.score for t in trials]
    assert all(0.0 <= s <= 1.0 for s in scores)
    best = result.tuner.get_best_hyperparameters()[0]
    assert set(best.values) == set(TUNABLE)
    for name, value in best.values.items():
        assert value in getattr(space, name)
    assert result.tuner.oracle.get_best_trials(1)[0].score == max(scores)
    # What TFX writes as best_hyperparameters is what the Trainer then applies.
    config = apply_hyperparameters(BASE, json.loads(json.dumps(best.get_config())))
    assert {name: flat_value(config, name) for name in TUNABLE} == best.values


def test_baseline_only_when_every_value_is_in_the_space():
    assert tuner.baseline_values(BASE, SearchSpace()) == {n: flat_value(BASE, n) for n in TUNABLE}
    assert tuner.baseline_values(BASE, SearchSpace(epochs=(1, 2))) is None


def test_tuner_fn_refuses_a_space_the_model_cannot_build(tiny_data, tmp_path):
    attention = RetrievalConfig().with_overrides(
        history=HistoryEncoderSpec(kind="self_attention", num_heads=3)
    )
    with pytest.raises(ValueError, match="not multiples"):
        tuner.tuner_fn(tuner_args(tiny_data, str(tmp_path), SearchSpace(), attention))


def test_run_fn_trains_with_the_tuned_hyperparameters(tiny_data, tmp_path):
    """fn_args.hyperparameters as TFX's Trainer passes it (the JSON of get_config())."""
    hp = json.loads(json.dumps(keras_tuner_hp(TUNED).get_config()))
    args = FnArgs(
        train_files=[tiny_data.raw("train")],
        eval_files=[tiny_data.raw("eval")],
        transform_output=tiny_data.transform_graph,
        serving_model_dir=str(tmp_path / "model"),
        model_run_dir=str(tmp_path / "run"),
        eval_steps=1,
        hyperparameters=hp,
        custom_config={"retrieval": BASE.to_dict()},
    )
    trainer.run_fn(args)
    with open(tmp_path / "run" / trainer.SUMMARY_FILE) as f:
        summary = json.load(f)
    assert summary["hyperparameters"] == TUNED
    trained = RetrievalConfig.from_dict(summary["config"])
    assert {name: flat_value(trained, name) for name in TUNABLE} == TUNED
    assert len(summary["epochs"]) == 1 and summary["steps"] == BASE.training.steps_per_epoch
    rows = summary["vocab_sizes"][F.ITEM_ID]
    assert summary["embedding_memory"][F.ITEM_ID]["bytes"] == rows * 16 * 4  # float32 [V, 16]
