"""run_fn end to end on tiny_data: the exported model, the curve and the summary."""

import dataclasses
import json
import math
import os

import attr
import numpy as np
import tensorflow as tf

from models.ranking import trainer
from models.ranking.config import CUSTOM_CONFIG_KEY
from models.ranking.export import PROBABILITIES, SCORE_CANDIDATES, SERVING_DEFAULT
from tests.models.ranking.conftest import TINY_CONFIG


def test_run_fn_exports_the_serving_model(ranker_run):
    path = ranker_run.serving_model_dir
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    loaded = tf.saved_model.load(path)
    assert {SERVING_DEFAULT, SCORE_CANDIDATES} <= set(loaded.signatures)
    out = loaded.signatures[SERVING_DEFAULT](examples=tf.constant([b""]))  # all defaults
    assert out[PROBABILITIES].shape == (1,)


def test_run_fn_writes_the_curve_and_the_summary(ranker_run):
    run_dir = ranker_run.model_run_dir
    with open(os.path.join(run_dir, trainer.CURVE_FILE), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(run_dir, trainer.SUMMARY_FILE)) as f:
        summary = json.load(f)
    assert summary["config"] == TINY_CONFIG.to_dict()
    assert len(summary["history"]) == TINY_CONFIG.epochs
    assert summary["examples_per_second"] > 0
    assert math.isfinite(summary["final_loss"])
    assert summary["examples_trained"] > 0
    ev = summary["eval"]
    assert ev["examples"] > 0 and ev["gauc_users"] > 0
    assert 0.55 < ev["auc"] <= 1.0  # it learned something on tiny_data (~0.7)
    assert 0.0 <= ev["gauc"] <= 1.0 and math.isfinite(ev["logloss"])


def _variables(serving_dir):
    """{name without the model prefix: value} of an exported ranker's variables."""
    loaded = tf.saved_model.load(serving_dir)
    return {v.name.split("/", 1)[-1]: v.numpy() for v in loaded.model_variables}


def test_incremental_update_trains_only_the_id_embeddings_for_one_epoch(ranker_run, tmp_path):
    config = dataclasses.replace(TINY_CONFIG, mode="incremental")
    args = attr.evolve(
        ranker_run,
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
        model_run_dir=str(tmp_path / "model_run"),
        custom_config={CUSTOM_CONFIG_KEY: config.to_dict()},
        base_model=ranker_run.serving_model_dir,
    )
    trainer.run_fn(args)
    with open(os.path.join(args.model_run_dir, trainer.SUMMARY_FILE)) as f:
        summary = json.load(f)
    assert summary["mode"] == "incremental" and len(summary["history"]) == 1
    assert summary["warm_start"]["trainable_variables"] == [
        "item_emb/table/embeddings:0",
        "user_emb/table/embeddings:0",
    ]
    before, after = _variables(ranker_run.serving_model_dir), _variables(args.serving_model_dir)
    assert before.keys() == after.keys()
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    # Dice's moving statistics included: the frozen layers ran in inference mode.
    assert changed == {"item_emb/table/embeddings:0", "user_emb/table/embeddings:0"}
