"""The batch loss is picked by the type of config.loss, each with its own options."""

import dataclasses

import pytest
import tensorflow as tf

from models.retrieval import losses, objectives, tapas
from models.retrieval.config import (
    Listwise,
    Loss,
    Pointwise,
    RetrievalConfig,
    SampledSoftmax,
    TripletHinge,
    TripletLogistic,
)
from models.retrieval.model import build_model
from tests.models.retrieval.test_model import COUNTS, SIZES, features, small

# loss -> (the losses.py function it must reach, the option it must pass on)
EXPECTED = {
    Listwise(num_hard_negatives=2): ("listwise_loss", {"num_hard_negatives": 2}),
    Pointwise(scale=3.0): ("pointwise_loss", {"scale": 3.0}),
    TripletHinge(margin=0.4): ("triplet_hinge_loss", {"margin": 0.4}),
    TripletLogistic(scale=7.0): ("triplet_logistic_loss", {"scale": 7.0}),
    SampledSoftmax(num_sampled=8, adaptive_top_m=4, adaptive_sampling="per_row"): (
        "sampled_softmax_loss",
        {"adaptive_top_m": 4},
    ),
}
CALLED = ["listwise_loss", "pointwise_loss", "triplet_hinge_loss", "triplet_logistic_loss"]


def _recording(monkeypatch):
    calls = []
    for name in [*CALLED, "sampled_softmax_loss"]:
        real = getattr(losses, name)

        def record(*args, _name=name, _real=real, **kwargs):
            calls.append((_name, kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(losses, name, record)
    return calls


@pytest.mark.parametrize("loss", list(EXPECTED), ids=lambda loss: type(loss).__name__)
def test_the_loss_class_picks_the_loss_and_its_options(monkeypatch, loss):
    calls = _recording(monkeypatch)
    config = dataclasses.replace(small(history={"kind": "mean"}), loss=loss)
    model = build_model(config, SIZES, COUNTS)
    value = model.compute_loss(features(), training=True)
    assert tf.math.is_finite(value)
    name, options = EXPECTED[loss]
    assert [c[0] for c in calls] == [name]
    assert options.items() <= calls[0][1].items()


def test_tapas_is_the_sampled_softmax_with_tapas_sampling(monkeypatch):
    seen = []
    monkeypatch.setattr(tapas, "model_loss", lambda *args: seen.append(args) or tf.constant(0.0))
    loss = SampledSoftmax(num_sampled=8, adaptive_top_m=4)
    model = build_model(dataclasses.replace(small(), loss=loss), SIZES, COUNTS)
    model.compute_loss(features(), training=False)
    assert len(seen) == 1 and seen[0][0] is model


def test_dispatch_is_by_class_not_by_name():
    assert objectives.batch_loss.dispatch(Pointwise) is objectives.batch_loss.dispatch(
        TripletHinge
    )  # the explicit family shares the negatives, then pair_loss picks the formula
    assert objectives.pair_loss.dispatch(Pointwise) is not objectives.pair_loss.dispatch(
        TripletLogistic
    )

    @dataclasses.dataclass(frozen=True)
    class Unregistered(Loss):
        NAME = "listwise"  # the same name does not make it a listwise loss

    with pytest.raises(TypeError, match="no batch loss for Unregistered"):
        objectives.batch_loss(Unregistered(), None, None, None, None, None, False)
    assert isinstance(RetrievalConfig().loss, Listwise)
