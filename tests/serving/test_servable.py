"""Servable: the executor each signature runs on, and the export's batch limit."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from schemas import features as F
from serving import servable as S
from tests.serving import toy_model

X = "x"


class _Branchy(tf.Module):
    """One signature with a tf.cond (Switch/Merge once lowered), one without."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, X)])
    def branchy(self, x):
        return {"y": tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x - 1.0)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, X)])
    def straight(self, x):
        return {"y": x * 3.0}


@pytest.fixture(scope="module")
def toy_version(tmp_path_factory):
    return toy_model.export(toy_model.ToyRecommender(1), str(tmp_path_factory.mktemp("toy")), 1)


@pytest.fixture(scope="module")
def branchy_version(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("branchy") / "1")
    module = _Branchy()
    tf.saved_model.save(
        module, path, signatures={"branchy": module.branchy, "straight": module.straight}
    )
    return path


def _outputs_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype == object:
            np.testing.assert_array_equal(a[key], b[key])
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6)


def test_signatures_without_control_flow_run_single_threaded_and_answer_the_same(
    toy_version,
):
    auto = S.Servable(toy_version, 1)
    default = S.Servable(toy_version, 1, executor=S.DEFAULT)
    assert {s.executor for s in auto.signatures.values()} == {S.SINGLE_THREADED}
    assert {s.executor for s in default.signatures.values()} == {""}
    batch = toy_model.query_batch(rows=3, seed=4)
    for name in ("serving_default", "retrieve"):
        _outputs_equal(
            auto.run(auto.signatures[name], batch), default.run(default.signatures[name], batch)
        )
    with pytest.raises(ValueError, match="executor must be"):
        S.Servable(toy_version, 1, executor="fast")


def test_control_flow_keeps_the_default_executor_and_a_rejected_graph_falls_back(
    branchy_version, caplog
):
    servable = S.Servable(branchy_version, 1)
    branchy, straight = servable.signatures["branchy"], servable.signatures["straight"]
    assert S.control_flow_ops(branchy.fn) and not S.control_flow_ops(straight.fn)
    assert (branchy.executor, straight.executor) == ("", S.SINGLE_THREADED)
    x = {X: np.array([1.0, 2.0], np.float32)}
    np.testing.assert_allclose(servable.run(branchy, x)["y"], [2.0, 4.0])
    # Forced onto the single-threaded executor, the cond graph is rejected at its first call:
    # the signature falls back to the default executor, says so, and still answers.
    branchy.executor = S.SINGLE_THREADED
    with caplog.at_level(logging.WARNING, logger=S.__name__):
        np.testing.assert_allclose(
            servable.run(branchy, {X: np.array([-1.0], np.float32)})["y"], [-2.0]
        )
    assert branchy.executor == ""
    assert "falls back to TF's default executor" in caplog.text


def _with_export_info(version_dir: str, target: str, info) -> str:
    shutil.copytree(version_dir, target)
    with open(os.path.join(target, S.EXPORT_INFO_FILE), "w") as f:
        f.write(info if isinstance(info, str) else json.dumps(info))
    return target


def test_a_batch_over_the_exports_max_batch_runs_in_slices_with_the_same_answer(
    toy_version, tmp_path
):
    limited = S.Servable(_with_export_info(toy_version, str(tmp_path / "1"), {"max_batch": 2}), 1)
    whole = S.Servable(toy_version, 1)
    assert limited.max_batch == 2 and whole.max_batch is None
    calls = []
    signature = limited.signatures["serving_default"]
    inner = signature.call
    signature.call = lambda inputs: calls.append(len(inputs[F.AGE])) or inner(inputs)
    batch = toy_model.query_batch(rows=5, seed=2)
    _outputs_equal(
        limited.run(signature, batch), whole.run(whole.signatures["serving_default"], batch)
    )
    assert calls == [2, 2, 1]
    calls.clear()
    limited.run(signature, toy_model.query_batch(rows=2, seed=3))
    assert calls == [2]


@pytest.mark.parametrize(
    "info",
    [
        {"max_batch": 0},
        {"max_batch": -3},
        {"max_batch": True},
        {"max_batch": "8"},
        {},
        [],
        "{not json",
    ],
)
def test_an_unusable_max_batch_is_ignored(toy_version, tmp_path, info):
    path = _with_export_info(toy_version, str(tmp_path / "1"), info)
    assert S.read_max_batch(path) is None
