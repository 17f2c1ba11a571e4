"""RankingConfig: validation names the field; the dict form is JSON-safe and round-trips."""

import json

import pytest

from models.common.embeddings import QR, EmbeddingSpec
from models.ranking import config as C


def test_round_trip_through_json():
    config = C.RankingConfig(
        item_embedding=EmbeddingSpec(kind=QR, qr_buckets=8),
        attention_units=(16, 8),
        pooling=C.MEAN,
        activation=C.PRELU,
        attention_softmax=True,
    )
    d = json.loads(json.dumps({C.CUSTOM_CONFIG_KEY: config.to_dict()}))
    assert C.from_custom_config(d) == config
    assert C.from_custom_config(None) == C.RankingConfig()
    assert C.RankingConfig.from_dict({"epochs": 2}).epochs == 2  # missing keys: defaults


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"pooling": "max"}, "pooling"),
        ({"activation": "relu"}, "activation"),
        ({"attention_units": ()}, "attention_units"),
        ({"head_units": (8, 0)}, "head_units"),
        ({"item_dim": 0}, "item_dim"),
        ({"dice_epsilon": 0.0}, "dice_epsilon"),
        ({"dice_momentum": 1.0}, "dice_momentum"),
        ({"mba_lambda": -1.0}, "mba_lambda"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_softmax": "yes"}, "attention_softmax"),
        ({"mode": "hourly"}, "mode"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        C.RankingConfig(**kwargs)


def test_from_dict_rejects_unknown_and_invalid_nested_fields():
    with pytest.raises(ValueError, match="bogus"):
        C.RankingConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="item_embedding"):
        C.RankingConfig.from_dict({"item_embedding": {"kind": "hashed"}})
    with pytest.raises(ValueError, match="user_embedding"):
        C.RankingConfig.from_dict({"user_embedding": {"nope": 1}})
