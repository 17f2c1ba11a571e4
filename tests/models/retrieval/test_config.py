"""RetrievalConfig's groups: the former flat JSON loads, errors name the field, overrides
(flat and nested) apply, and the nested JSON round-trips."""

import json
import os

import pytest

from models.common import embeddings as E
from models.retrieval.config import (
    LOSS_TYPES,
    Embeddings,
    Listwise,
    Negatives,
    Pointwise,
    Positives,
    RetrievalConfig,
    SampledSoftmax,
    Tower,
    Training,
    TripletHinge,
    TripletLogistic,
    Updates,
)
from models.retrieval.config import overrides as O
from models.retrieval.sequence import HistoryEncoderSpec

DATA = os.path.join(os.path.dirname(__file__), "data")
# `RetrievalConfig(...).to_dict()` of the flat config (before the groups), one per loss.
FLAT_FIXTURES = (
    "default",
    "listwise",
    "pointwise",
    "triplet_hinge",
    "triplet_logistic",
    "sampled_softmax",
)


def flat_fixture(name):
    with open(os.path.join(DATA, f"flat_config_{name}.json")) as f:
        return json.load(f)


def test_the_former_default_flat_json_loads_to_the_default_config():
    # The fixture spells out every field as the default was then; position_sample's
    # default has since moved from 1.0 to 0.1, and a file that says 1.0 keeps 1.0.
    then = RetrievalConfig().with_overrides({"history": {"position_sample": 1.0}})
    assert RetrievalConfig.from_dict(flat_fixture("default")) == then
    assert then != RetrievalConfig()


@pytest.mark.parametrize("name", FLAT_FIXTURES)
def test_every_former_flat_key_maps_to_its_new_place(name):
    old = flat_fixture(name)
    config = RetrievalConfig.from_dict(old)
    assert set(old) <= set(O.FLAT) | set(O.LOSS_FLAT) | {O.LOSS}
    for key, value in old.items():
        new = O.flat_value(config, key)
        if hasattr(new, "__dataclass_fields__"):  # a spec: compare its JSON form
            new = json.loads(json.dumps(new.__dict__, default=list))
            new = {k: list(v) if isinstance(v, tuple) else v for k, v in new.items()}
        assert new == value, key
    assert RetrievalConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_former_flat_json_builds_the_same_grouped_config():
    config = RetrievalConfig.from_dict(flat_fixture("sampled_softmax"))
    assert config == RetrievalConfig(
        tower=Tower(16, 4, 2, 32, 24, 0.1, HistoryEncoderSpec(kind="mean", position_sample=1.0)),
        training=Training(0.05, "adagrad", 128, 2, 10, 5, 7),
        loss=SampledSoftmax(256, "unigram", 32, 0.5, "per_row"),
        negatives=Negatives(False, False, "uniform", 0.5, 3),
        positives=Positives(1e-4, 3, 2.0, 0.5),
        embeddings=Embeddings(
            user=E.EmbeddingSpec(kind=E.QR, qr_buckets=100),
            pretrained="item2vec",
            pretrained_users="mean_of_items",
            pretrained_mode="input",
            pretrained_dim=16,
            item2vec_window=3,
            item2vec_epochs=2,
        ),
        updates=Updates(mode="incremental", mined_ratio=0.25, max_mined_per_user=20),
    )
    listwise = RetrievalConfig.from_dict(flat_fixture("listwise"))
    assert listwise.loss == Listwise(num_mixed_negatives=64, num_hard_negatives=8)
    assert listwise.updates.mined_negatives_path == "mined.tsv"
    assert listwise.embeddings.item.mixed_dims == (1.0, 0.5)
    assert listwise.tower.history == HistoryEncoderSpec(num_heads=4, position_sample=0.5)
    assert RetrievalConfig.from_dict(flat_fixture("pointwise")).loss == Pointwise(scale=5.0)
    assert RetrievalConfig.from_dict(flat_fixture("triplet_hinge")).loss == TripletHinge(0.3)
    assert RetrievalConfig.from_dict(flat_fixture("triplet_logistic")).loss == TripletLogistic(4.0)


def test_to_dict_writes_the_nested_form_and_round_trips():
    config = RetrievalConfig(
        loss=Pointwise(scale=3.0),
        embeddings=Embeddings(item=E.EmbeddingSpec(kind=E.QR, qr_combiner="concat")),
    )
    out = json.loads(json.dumps(config.to_dict()))
    assert set(out) == {"tower", "training", "loss", *O.GROUPS}
    assert out["loss"] == {"type": "pointwise", "scale": 3.0}
    assert out["training"]["epochs"] == 3 and out["tower"]["history"]["kind"] == "self_attention"
    back = RetrievalConfig.from_dict(out)
    assert back == config and isinstance(back.embeddings.item, E.EmbeddingSpec)


@pytest.mark.parametrize(
    "values, field",
    [
        ({"loss": "hinge"}, "RetrievalConfig.loss"),
        ({"loss": {"type": "hinge"}}, "RetrievalConfig.loss"),
        ({"temperature": 0.0}, "RetrievalConfig.tower.temperature"),
        ({"tower": {"depth": -1}}, "RetrievalConfig.tower.depth"),
        ({"batch_size": 1}, "RetrievalConfig.training.batch_size"),
        ({"training": {"optimizer": "sgd"}}, "RetrievalConfig.training.optimizer"),
        ({"mined_ratio": 1.5}, "RetrievalConfig.updates.mined_ratio"),
        ({"negative_distribution": "zipf"}, "RetrievalConfig.negatives.distribution"),
        ({"loss": "sampled_softmax", "softmax_sampler": "uniform"}, "RetrievalConfig.loss.sampler"),
        ({"loss": {"type": "sampled_softmax", "num_sampled": 0}}, "loss.num_sampled must"),
        ({"loss": "sampled_softmax", "adaptive_top_m": 600}, "RetrievalConfig.loss.adaptive_top_m"),
        ({"loss": "triplet_hinge", "triplet_margin": -1}, "RetrievalConfig.loss.margin"),
        (
            {"pretrained": "item2vec", "item_embedding": {"kind": "qr"}},
            "RetrievalConfig.embeddings.pretrained_mode",
        ),
        (
            {"mined_negatives_path": "x.tsv", "loss": "sampled_softmax"},
            "RetrievalConfig.updates.mined_negatives_path",
        ),
        ({"mode": "nightly"}, "RetrievalConfig.updates.mode"),
        ({"item_embedding": {"kind": "hashed"}}, "RetrievalConfig.embeddings.item"),
        ({"embeddings": {"user": {"color": 1}}}, "RetrievalConfig.embeddings.user"),
        ({"history": {"num_heads": 0}}, "RetrievalConfig.tower.history"),
        ({"num_hard_negatives": 300}, "RetrievalConfig.loss.num_hard_negatives"),
        ({"cold_boost": 0.5}, "RetrievalConfig.positives.cold_boost"),
        ({"pretrained_users": "mean_of_items"}, "RetrievalConfig.embeddings.pretrained_users"),
        ({"tempreature": 1.0}, r"unknown field\(s\) \['tempreature'\]"),
        ({"tower": {"temp": 1.0}}, r"RetrievalConfig.tower: unknown field\(s\) \['temp'\]"),
        ({"loss": {"type": "pointwise", "margin": 1}}, r"RetrievalConfig.loss: unknown .*margin"),
        ({"num_sampled": 64}, "RetrievalConfig.num_sampled belongs to loss 'sampled_softmax'"),
        ({"tower": 3}, "RetrievalConfig.tower must be"),
    ],
)
def test_each_wrong_field_names_itself(values, field):
    with pytest.raises(ValueError, match=field):
        RetrievalConfig.from_dict(values)
    with pytest.raises(ValueError, match=field):
        RetrievalConfig().with_overrides(values)


def test_groups_validate_on_their_own():
    with pytest.raises(ValueError, match=r"RetrievalConfig\.tower\.embedding_dim must be >= 1"):
        Tower(embedding_dim=0)
    with pytest.raises(ValueError, match=r"RetrievalConfig\.loss\.scale must be > 0"):
        Pointwise(scale=0.0)
    with pytest.raises(ValueError, match=r"RetrievalConfig\.loss must be a Loss"):
        RetrievalConfig(loss="listwise")
    with pytest.raises(ValueError, match=r"RetrievalConfig\.training must be a Training"):
        RetrievalConfig(training={"epochs": 2})


def test_a_flat_and_a_nested_override_both_work():
    base = RetrievalConfig()
    flat = base.with_overrides({"epochs": 5, "tower_width": 16, "loss": "sampled_softmax"})
    nested = base.with_overrides(
        {"training": {"epochs": 5}, "tower": {"width": 16}, "loss": {"type": "sampled_softmax"}}
    )
    assert flat == nested
    assert flat.training.epochs == 5 and flat.tower.width == 16
    assert isinstance(flat.loss, SampledSoftmax) and flat.loss.num_sampled == 512
    assert base.with_overrides(epochs=5) == base.with_overrides({"training": {"epochs": 5}})


def test_nested_specs_merge_and_flat_keys_win():
    base = RetrievalConfig().with_overrides({"history": {"num_heads": 4}})
    mean = base.with_overrides({"history": {"kind": "mean"}})  # a bench variant's form
    assert mean.tower.history == HistoryEncoderSpec(kind="mean", num_heads=4)
    both = base.with_overrides({"training": {"epochs": 2, "seed": 3}, "epochs": 7})
    assert (both.training.epochs, both.training.seed) == (7, 3)


def test_the_loss_switches_by_name_and_keeps_its_own_values():
    mixed = RetrievalConfig().with_overrides({"num_mixed_negatives": 16})
    assert mixed.loss == Listwise(num_mixed_negatives=16)
    assert mixed.with_overrides({"loss": "listwise"}).loss == mixed.loss  # same class: kept
    tapas = mixed.with_overrides({"loss": "sampled_softmax", "adaptive_top_m": 128})
    assert tapas.loss == SampledSoftmax(adaptive_top_m=128)  # new class: its defaults
    assert tapas.with_overrides({"adaptive_temperature": 2.0}).loss.adaptive_top_m == 128
    # a former JSON carries every loss's fields: the other losses' defaults are ignored
    assert mixed.with_overrides({"loss": "pointwise", "num_sampled": 512}).loss == Pointwise()
    for name, cls in LOSS_TYPES.items():
        assert type(RetrievalConfig().with_overrides(loss=name).loss) is cls
        assert O.flat_value(RetrievalConfig(loss=cls()), "loss") == name


def test_the_tuner_names_read_back():
    config = RetrievalConfig().with_overrides(embedding_dim=16, learning_rate=0.03)
    assert O.flat_value(config, "embedding_dim") == 16
    assert O.flat_value(config, "learning_rate") == 0.03
    assert O.flat_value(config, "num_sampled") == SampledSoftmax().num_sampled
    with pytest.raises(ValueError, match="unknown field 'epoch'"):
        O.flat_value(config, "epoch")
