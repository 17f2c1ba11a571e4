"""RetrievalConfig: the two-tower's hyperparameters, in small frozen groups.

One group per concern (groups.py): `tower`, `training`, `negatives`, `positives`,
`embeddings`, `updates`, and the `loss`: one class per loss family (losses.py:
Listwise, Pointwise, TripletHinge, TripletLogistic, SampledSoftmax), which the
model dispatches on by type. Each group validates its own fields on construction
and fails with a ValueError naming the field (`RetrievalConfig.<group>.<field>`);
RetrievalConfig checks what spans groups.

The TFX Trainer receives it as JSON through `custom_config["retrieval"]`
(`to_dict()`, the nested form), and `run_fn` rebuilds it with `from_dict()`, which
reads the former flat form too (overrides.py maps each flat name to its place).
`with_overrides` applies flat or nested overrides (bench, CLI, tuner).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.retrieval.config import overrides
from models.retrieval.config.groups import (
    MEAN_OF_ITEMS,
    MODES,
    NEGATIVE_DISTRIBUTIONS,
    OPTIMIZERS,
    PREFIX,
    PRETRAINED_MODES,
    Embeddings,
    Negatives,
    Positives,
    Tower,
    Training,
    Updates,
    require,
)
from models.retrieval.config.losses import (
    ADAPTIVE_SAMPLINGS,
    LOSS_TYPES,
    LOSSES,
    SOFTMAX_SAMPLERS,
    ExplicitLoss,
    Listwise,
    Loss,
    Pointwise,
    SampledSoftmax,
    TripletHinge,
    TripletLogistic,
)

ITEM2VEC = "item2vec"
CUSTOM_CONFIG_KEY = "retrieval"  # fn_args.custom_config[CUSTOM_CONFIG_KEY] = config.to_dict()

__all__ = [
    "ADAPTIVE_SAMPLINGS",
    "CUSTOM_CONFIG_KEY",
    "ITEM2VEC",
    "LOSSES",
    "LOSS_TYPES",
    "MEAN_OF_ITEMS",
    "MODES",
    "NEGATIVE_DISTRIBUTIONS",
    "OPTIMIZERS",
    "PRETRAINED_MODES",
    "SOFTMAX_SAMPLERS",
    "Embeddings",
    "ExplicitLoss",
    "Listwise",
    "Loss",
    "Negatives",
    "Pointwise",
    "Positives",
    "RetrievalConfig",
    "SampledSoftmax",
    "Tower",
    "Training",
    "TripletHinge",
    "TripletLogistic",
    "Updates",
]


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """Two-tower retrieval hyperparameters, one group per concern.

    Attributes:
        tower: Tower: widths, depth, the score temperature and the history encoder.
        training: Training: optimizer, batches, epochs, steps and the seed.
        loss: one Loss subclass (Listwise, Pointwise, TripletHinge, TripletLogistic,
            SampledSoftmax) with that loss's own options.
        negatives: Negatives: log-Q, accidental hits, the negative sampler, the ratio.
        positives: Positives: downsampling, cold-item boost, non-positive targets.
        embeddings: Embeddings: the id tables and their pretrained vectors.
        updates: Updates: the update mode and hard negatives mined by the last model.
    """

    tower: Tower = dataclasses.field(default_factory=Tower)
    training: Training = dataclasses.field(default_factory=Training)
    loss: Loss = dataclasses.field(default_factory=Listwise)
    negatives: Negatives = dataclasses.field(default_factory=Negatives)
    positives: Positives = dataclasses.field(default_factory=Positives)
    embeddings: Embeddings = dataclasses.field(default_factory=Embeddings)
    updates: Updates = dataclasses.field(default_factory=Updates)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            kind = Loss if field.name == overrides.LOSS else field.default_factory
            value = getattr(self, field.name)
            ok = isinstance(value, kind) and type(value) is not Loss
            require(PREFIX, field.name, ok, f"must be a {kind.__name__}", value)
        loss = self.loss
        if isinstance(loss, Listwise):
            require(
                Listwise.PATH,
                "num_hard_negatives",
                loss.num_hard_negatives < self.training.batch_size + loss.num_mixed_negatives,
                "must be < training.batch_size + num_mixed_negatives",
            )
        require(
            Updates.PATH,
            "mined_negatives_path",
            not (self.updates.mined_negatives_path and isinstance(loss, SampledSoftmax)),
            "is not supported with a SampledSoftmax loss",
        )

    def with_overrides(self, values: Mapping[str, Any] | None = None, **kwargs) -> RetrievalConfig:
        """This config with overrides, flat (`{"epochs": 5}`, the former field names) or
        nested (`{"training": {"epochs": 5}}`, `{"loss": {"type": "pointwise"}}`), or both.

        Raises:
            ValueError: an unknown key or a refused value, naming the field.
        """
        return overrides.apply(self, {**(values or {}), **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """The nested JSON-safe form: {group: {field: value}}, the loss with its "type"."""
        out = _json_safe(dataclasses.asdict(self))
        out[overrides.LOSS] = _json_safe(overrides.loss_dict(self.loss))
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RetrievalConfig:
        """Rebuilds a config from `to_dict()` output or from the former flat form; missing
        fields keep their defaults, unknown keys fail, naming the key."""
        return cls().with_overrides(values)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
