"""One whole run with two non-default options (a second whole run each would cost CI
as much again):

- `--history-length 30` works end to end and the served model takes 30. Before the
  history length came from one place, this run failed: the curated schema said 20
  (StrictExampleValidator: 6 anomalies) and Transform expected 20 elements.
- Tuning on: TFX's Tuner runs a real KerasTuner search in the pipeline, and the
  retrieval Trainer trains with its best hyperparameters.
"""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from models.retrieval.config import RetrievalConfig
from models.retrieval.config.overrides import flat_value
from models.retrieval.hyperparameters import TUNABLE, SearchSpace
from models.serving import export
from pipeline import cli, local_runner, summary
from pipeline.pipeline import RETRIEVAL_TRAINER, RETRIEVAL_TUNER
from schemas import features as F
from schemas import serving as C

pytestmark = pytest.mark.e2e
L = 30
# No default value is a choice, so a Trainer that ignored the Tuner would train other values.
SPACE = SearchSpace(
    embedding_dim=(16,), temperature=(0.1,), epochs=(1, 2), learning_rate=(0.03,), max_trials=2
)


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    """(config, summary) of a full run on tiny data with histories of 30 and the Tuner on."""
    work = str(tmp_path_factory.mktemp("history30"))
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", work, "--history-length", str(L)]
    argv += ["--ranking-min-auc", "0"]
    config = dataclasses.replace(cli.build_config(cli._parser().parse_args(argv)), tuning=SPACE)
    local_runner.run(config, None, workers=2)
    return config, summary.collect(config)


def only(pattern):
    files = glob.glob(pattern)
    assert len(files) == 1, (pattern, files)
    with open(files[0]) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def served(run30):
    _, result = run30
    assert result["push"]["pushed"], result["push"]
    path = result["push"]["destinations"][C.PORTABLE]
    return path, tf.saved_model.load(path)


def test_every_component_ran_and_the_schema_is_shaped_for_30(run30):
    config, result = run30
    # StrictExampleValidator completing means no anomaly: it fails the run otherwise.
    assert {c["state"] for c in result["components"].values()} == {"COMPLETE"}
    schema = glob.glob(os.path.join(config.pipeline_root, "schema", "schema-history-30-*"))
    assert len(schema) == 1


def _request(histories: list[list[str]], candidates: list[str]) -> dict:
    batch = len(histories)
    return {
        F.USER_ID: tf.constant(["1"] * batch),
        F.AGE: tf.constant([30] * batch, tf.int64),
        F.GENDER: tf.constant(["M"] * batch),
        F.OCCUPATION: tf.constant(["writer"] * batch),
        F.TIMESTAMP: tf.constant([893286638] * batch, tf.int64),
        F.HISTORY_ITEM_IDS: tf.constant(histories),
        C.CANDIDATE_ITEM_IDS: tf.constant([candidates] * batch),
    }


def test_the_served_model_takes_30_history_items(served):
    path, model = served
    ids = sorted(export.read_titles(path))
    assert len(ids) >= L + 8
    base = ids[2 : L + 1]  # 29 items, oldest first
    candidates = ids[L + 2 : L + 8]
    # Rows (width 31, padded at the end): 30 items; the same with the oldest one changed;
    # 31 items (the 30 most recent are row 0's); the same 31 with the oldest changed.
    rows = [
        [ids[0], *base, F.PAD],
        [ids[1], *base, F.PAD],
        [ids[L + 1], ids[0], *base],
        [ids[L + 7], ids[0], *base],
    ]
    rank = model.signatures[C.RANK](**_request(rows, candidates))[C.SCORES].numpy()
    # The 30th most recent item changes the ranker's scores (a model cut at 20 would not
    # see it) ...
    assert np.abs(rank[0] - rank[1]).max() > 1e-7
    # ... and the 31st does not: the window is exactly 30.
    np.testing.assert_allclose(rank[2], rank[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rank[3], rank[0], rtol=1e-6, atol=1e-7)
    request = _request(rows, candidates)
    del request[C.CANDIDATE_ITEM_IDS]
    out = model.signatures[C.RETRIEVE](**request)
    items, scores = out[C.ITEM_IDS].numpy(), out[C.RETRIEVAL_SCORES].numpy()

    def common_scores(a, b):
        sa, sb = (
            dict(zip(items[a], scores[a], strict=False)),
            dict(zip(items[b], scores[b], strict=False)),
        )
        both = sorted(set(sa) & set(sb) - {b""})
        assert both
        return np.array([sa[i] for i in both]), np.array([sb[i] for i in both])

    # The query tower sees the 30th item too, and not the 31st.
    first, changed = common_scores(0, 1)
    assert np.abs(first - changed).max() > 1e-7
    for row in (2, 3):
        np.testing.assert_allclose(*common_scores(0, row), rtol=1e-5, atol=1e-6)


def test_the_trainer_trains_with_the_tuners_best_hyperparameters(run30):
    config, result = run30
    states = {k: v["state"] for k, v in result["components"].items()}
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
