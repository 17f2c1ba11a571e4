"""Tuning on: TFX's Tuner runs a real KerasTuner search in the pipeline, and the retrieval
Trainer trains with its best hyperparameters (LocalDagRunner, tiny synthetic data)."""

import dataclasses
import glob
import json
import os

import pytest

from models.retrieval.config import RetrievalConfig
from models.retrieval.config.overrides import flat_value
from models.retrieval.hyperparameters import TUNABLE, SearchSpace
from pipeline import cli, local_runner, summary
from pipeline.pipeline import RETRIEVAL_TRAINER, RETRIEVAL_TUNER

pytestmark = pytest.mark.e2e

# No default value is a choice, so a Trainer that ignored the Tuner would train other values.
SPACE = SearchSpace(
    embedding_dim=(16,), temperature=(0.1,), epochs=(1, 2), learning_rate=(0.03,), max_trials=2
)


def only(pattern):
    files = glob.glob(pattern)
    assert len(files) == 1, (pattern, files)
    with open(files[0]) as f:
        return json.load(f)


def test_the_trainer_trains_with_the_tuners_best_hyperparameters(tmp_path):
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", str(tmp_path), "--train-steps", "6"]
    config = dataclasses.replace(cli.build_config(cli._parser().parse_args(argv)), tuning=SPACE)
    local_runner.run(config, RETRIEVAL_TRAINER)
    states = {k: v["state"] for k, v in summary.collect(config)["components"].items()}
    assert states[RETRIEVAL_TUNER] == states[RETRIEVAL_TRAINER] == "COMPLETE"
    root = config.pipeline_root
    best = only(os.path.join(root, RETRIEVAL_TUNER, "best_hyperparameters", "*", "*.txt"))
    trials = only(os.path.join(root, RETRIEVAL_TUNER, "tuner_results", "*", "*.json"))
    assert sorted(t["epochs"] for t in trials) == [1, 2]  # both points of the space
    assert best["values"] == {k: v for k, v in trials[0].items() if k in TUNABLE}
    assert trials[0]["score"] == max(t["score"] for t in trials)
    trained = only(os.path.join(root, RETRIEVAL_TRAINER, "model_run", "*", "training_summary.json"))
    assert trained["hyperparameters"] == best["values"]
    tuned = RetrievalConfig.from_dict(trained["config"])
    assert {name: flat_value(tuned, name) for name in TUNABLE} == best["values"]
    assert tuned.tower.embedding_dim != RetrievalConfig().tower.embedding_dim
    assert len(trained["epochs"]) == best["values"]["epochs"]  # no base model: tuned epochs
