"""bench.ranking_eval reruns the pipeline's ranking Evaluator on a finished run's artifacts."""

import glob
import os

import pytest
import tensorflow_model_analysis as tfma

from bench import ranking_eval

pytestmark = pytest.mark.e2e


def test_it_reproduces_the_pipelines_own_evaluation(run):
    config, _ = run
    root = config.pipeline_root
    (evaluation,) = glob.glob(os.path.join(root, "ranking_evaluator", "evaluation", "*"))
    result = tfma.load_eval_result(evaluation)
    overall = dict(result.slicing_metrics)[()][""][""]
    measured = ranking_eval.run_once(root, baseline=False)
    assert measured["examples"] == overall["example_count"]["doubleValue"] > 0
    assert measured["gauc"] == pytest.approx(overall["gauc"]["doubleValue"], abs=1e-9)
    assert measured["slices"] == len(result.slicing_metrics) > 1
    assert measured["wall_s"] > 0 and measured["cpu_s"] > 0


def test_it_names_the_missing_artifact(tmp_path):
    with pytest.raises(SystemExit, match="no BehaviorSequenceGen/examples/"):
        ranking_eval.run_once(str(tmp_path), baseline=False)
    (tmp_path / "BehaviorSequenceGen" / "examples" / "3").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no ranking_trainer/model/"):
        ranking_eval.run_once(str(tmp_path), baseline=False)
