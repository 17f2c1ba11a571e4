"""The two-tower's tunable hyperparameters: the search space and the override.

TFX's Tuner writes the best KerasTuner `HyperParameters.get_config()` as its
`best_hyperparameters` artifact; the Trainer hands that dict to `run_fn` as
`fn_args.hyperparameters`. `apply_hyperparameters` turns it into RetrievalConfig
fields (by their former flat names, through `RetrievalConfig.with_overrides`), so
the tuned run trains exactly what the best trial trained. No hyperparameters
leaves the config as it is.

custom_config of the Tuner = {CUSTOM_CONFIG_KEY: RetrievalConfig.to_dict(),
TUNING_KEY: SearchSpace.to_dict()}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.retrieval.config import RetrievalConfig
from models.retrieval.sequence import SELF_ATTENTION

TUNING_KEY = "retrieval_tuning"  # fn_args.custom_config[TUNING_KEY] = SearchSpace.to_dict()
TUNABLE = ("embedding_dim", "temperature", "epochs", "learning_rate")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The choices KerasTuner draws from, and the search budget.

    Attributes:
        embedding_dim: widths of the item and user id embeddings (and the history's).
        temperature: softmax temperatures (logits = cos / temperature).
        epochs: training passes per trial (and of the tuned Trainer).
        learning_rate: optimizer learning rates.
        max_trials: trials of the random search (each trains one model).
        seed: seed of the random search.
    """

    embedding_dim: tuple[int, ...] = (16, 32, 64)
    temperature: tuple[float, ...] = (0.02, 0.05, 0.1)
    epochs: tuple[int, ...] = (2, 3, 5)
    learning_rate: tuple[float, ...] = (0.003, 0.01, 0.03)
    max_trials: int = 8
    seed: int = 0

    def __post_init__(self):
        for name in TUNABLE:
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)  # lists from JSON
            if not values:
                raise ValueError(f"SearchSpace.{name} is empty: give at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"SearchSpace.{name} has repeated values: {list(values)}")
            for value in values:  # the config names the field of a bad value
                try:
                    RetrievalConfig().with_overrides({name: value})
                except ValueError as e:
                    raise ValueError(f"SearchSpace.{name}: {e}") from None
        if self.max_trials < 1:
            raise ValueError(f"SearchSpace.max_trials must be >= 1, got {self.max_trials}")

    def check(self, config: RetrievalConfig) -> None:
        """Fails, naming the value, when a choice cannot build a model of `config`."""
        if config.tower.history.kind != SELF_ATTENTION:
            return
        heads = config.tower.history.num_heads
        bad = [d for d in self.embedding_dim if d % heads]
        if bad:
            raise ValueError(
                f"SearchSpace.embedding_dim {bad} are not multiples of "
                f"RetrievalConfig.tower.history.num_heads={heads}"
            )

    def declare(self, hp) -> None:
        """Declares every choice in a keras_tuner.HyperParameters."""
        for name in TUNABLE:
            hp.Choice(name, list(getattr(self, name)), ordered=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (tuples become lists)."""
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SearchSpace:
        """Rebuilds a space from `to_dict()` output; unknown keys fail, naming them."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"SearchSpace: unknown field(s) {unknown}")
        return cls(**values)


def hyperparameter_values(hyperparameters) -> dict[str, Any]:
    """{name: value} of a KerasTuner HyperParameters, its get_config() dict, or a plain dict.

    Args:
        hyperparameters: None, a `keras_tuner.HyperParameters`, the dict that TFX's
            Trainer passes as fn_args.hyperparameters ({"space": [...], "values": {...}}),
            or {name: value}.
    """
    if hyperparameters is None:
        return {}
    if hasattr(hyperparameters, "values") and not isinstance(hyperparameters, Mapping):
        return dict(hyperparameters.values)
    if not isinstance(hyperparameters, Mapping):
        raise ValueError(
            f"hyperparameters must be a KerasTuner HyperParameters or a dict, "
            f"got {type(hyperparameters).__name__}"
        )
    if "values" in hyperparameters and isinstance(hyperparameters["values"], Mapping):
        return dict(hyperparameters["values"])
    return dict(hyperparameters)


def apply_hyperparameters(config: RetrievalConfig, hyperparameters) -> RetrievalConfig:
    """`config` with the tuned fields replaced; None or no values: `config` itself.

    Args:
        config: the RetrievalConfig from custom_config.
        hyperparameters: see `hyperparameter_values`.

    Raises:
        ValueError: a name outside TUNABLE, or a value the config refuses (naming the field).
    """
    values = hyperparameter_values(hyperparameters)
    unknown = sorted(set(values) - set(TUNABLE))
    if unknown:
        raise ValueError(f"hyperparameters: unknown name(s) {unknown}; tunable are {list(TUNABLE)}")
    if not values:
        return config
    return config.with_overrides(values)
