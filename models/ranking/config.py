"""The DIN ranker's hyperparameters: one frozen, validated, JSON-safe dataclass.

The Trainer receives it as `custom_config={"ranking": RankingConfig(...).to_dict()}` and
`run_fn` rebuilds it with `RankingConfig.from_dict` (DESIGN §6.2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.common import distribute
from models.common.embeddings import EmbeddingSpec

ATTENTION, MEAN = "attention", "mean"
POOLINGS = (ATTENTION, MEAN)
DICE, PRELU = "dice", "prelu"
ACTIVATIONS = (DICE, PRELU)
FULL_UPDATE, INCREMENTAL = "full", "incremental"
MODES = (FULL_UPDATE, INCREMENTAL)
CUSTOM_CONFIG_KEY = "ranking"  # the Trainer's custom_config holds {"ranking": config.to_dict()}

_SPEC_FIELDS = ("item_embedding", "user_embedding")


@dataclasses.dataclass(frozen=True)
class RankingConfig:
    """Hyperparameters of the DIN ranker and of the base DNN (pooling="mean").

    Attributes:
        item_dim: width of the item-id embedding (shared by candidate and history).
        genre_dim: width of the genre embedding (shared by candidate and history genres).
        user_dim: width of the user-id embedding; 0 leaves the user id out (the user is
            then described by the profile features and the history only).
        feature_dim: width of the small categorical embeddings (gender, occupation,
            age bucket, hour of day, day of week).
        item_embedding: how item ids are embedded (full, QR or mixed-dim).
        user_embedding: how user ids are embedded.
        attention_units: hidden sizes of the local activation unit's MLP.
        attention_softmax: normalise attention weights with a softmax over the valid
            history positions (the DIN paper does not).
        pooling: ATTENTION (DIN) or MEAN (the base DNN: identical but mean-pooled).
        recency_positions: add a learned embedding of each history item's recency
            (0 = most recent; models/common/history.py) to its key before pooling, as BST
            adds positions: DIN's attention pooling is otherwise blind to the order. On
            B1's validation splits it raised the served HR@10 on every seed tried
            (synthetic 3 seeds +.006 mean, ML-100K; bench/results/retrieval_tuning.json
            "din_history_order").
        last_item: the head also reads the most recent history item's key and its
            elementwise product with the candidate's key (a next-item signal that an
            order-blind pooling cannot give it).
        head_units: hidden sizes of the head MLP (a sigmoid output follows).
        activation: DICE or PRELU, in the attention and head MLPs.
        dice_epsilon: epsilon added to the variance in Dice.
        dice_momentum: momentum of Dice's moving mean and variance.
        mba_lambda: strength of the mini-batch aware L2 regularisation (0 disables).
        dropout: dropout rate after each head layer (0 disables).
        learning_rate: Adam learning rate.
        lr_decay: decay the learning rate to 0 over training with a cosine.
        warm_start: initialise from the Trainer's base_model (the last blessed ranker) when
            the pipeline provides one (weights matched by name, id rows by vocabulary).
        mode: FULL_UPDATE (every weight trains, config.epochs) or INCREMENTAL: with a
            base model, only the item and user id embeddings train, one pass over the
            run's data (the newest span); the rest is frozen and runs in inference mode.
            Without a base model both train every weight from scratch.
        batch_size: training batch size.
        epochs: passes over the training data (when the Trainer gives no train_steps).
        max_example_passes: caps epochs x training examples: a larger data set trains
            fewer epochs (at least one), so training time stops growing with the
            epochs once the data alone carries the signal (B6). 0: no cap. ML-100K and
            the synthetic default (~300K examples with 2 negatives each, x 5 epochs)
            stay under it; 1M events (~3M examples) train one epoch.
        seed: seed of weight initialisation and shuffling.
        retrieved_negatives_path: a TSV (`user_id<TAB>item_id item_id ...`) of the items
            the retriever returns per user; None trains against BehaviorSequenceGen's
            popularity-sampled negatives only (models/ranking/retrieved.py).
        retrieved_negative_share: with a retrieved file, the probability that a sampled
            negative is replaced by an item drawn from its user's retrieved list.
        retrieved_per_user: at most this many retrieved items per user are read.
        strategy: the tf.distribute strategy, one of models/common/distribute.py's
            STRATEGIES ("default", "mirrored", "multi_worker").
    """

    item_dim: int = 32
    genre_dim: int = 8
    user_dim: int = 16
    feature_dim: int = 4
    item_embedding: EmbeddingSpec = EmbeddingSpec()
    user_embedding: EmbeddingSpec = EmbeddingSpec()
    attention_units: tuple[int, ...] = (80, 40)
    attention_softmax: bool = False
    pooling: str = ATTENTION
    recency_positions: bool = True
    last_item: bool = False
    head_units: tuple[int, ...] = (200, 80)
    activation: str = DICE
    dice_epsilon: float = 1e-8
    dice_momentum: float = 0.99
    mba_lambda: float = 0.01
    dropout: float = 0.0
    # Batch 1024 at lr 3e-3 (B2's setting) trains 1.7x the examples/s of batch 256 at
    # lr 1e-3 on 2 cores, for eval AUC .779 vs .776 after 5 ML-100K epochs (one seed each).
    learning_rate: float = 3e-3
    lr_decay: bool = True
    warm_start: bool = True
    mode: str = FULL_UPDATE
    batch_size: int = 1024
    epochs: int = 5
    max_example_passes: int = 2_000_000
    seed: int = 0
    retrieved_negatives_path: str | None = None
    retrieved_negative_share: float = 0.5
    retrieved_per_user: int = 100
    strategy: str = distribute.DEFAULT

    def __post_init__(self):
        for name in ("item_dim", "genre_dim", "feature_dim", "batch_size", "epochs"):
            _check(name, isinstance(getattr(self, name), int) and getattr(self, name) >= 1, ">= 1")
        _check("user_dim", isinstance(self.user_dim, int) and self.user_dim >= 0, ">= 0")
        passes = self.max_example_passes
        _check("max_example_passes", isinstance(passes, int) and passes >= 0, "an int >= 0")
        for name in ("attention_units", "head_units"):
            units = getattr(self, name)
            ok = isinstance(units, tuple) and all(isinstance(u, int) and u >= 1 for u in units)
            _check(name, ok and len(units) >= 1, "a non-empty tuple of ints >= 1")
        for name in _SPEC_FIELDS:
            _check(name, isinstance(getattr(self, name), EmbeddingSpec), "an EmbeddingSpec")
        for name in (
            "attention_softmax",
            "recency_positions",
            "last_item",
            "lr_decay",
            "warm_start",
        ):
            _check(name, isinstance(getattr(self, name), bool), "a bool")
        _check("mode", self.mode in MODES, f"one of {MODES}")
        _check("pooling", self.pooling in POOLINGS, f"one of {POOLINGS}")
        _check("activation", self.activation in ACTIVATIONS, f"one of {ACTIVATIONS}")
        _check("dice_epsilon", self.dice_epsilon > 0, "> 0")
        _check("dice_momentum", 0 <= self.dice_momentum < 1, "in [0, 1)")
        _check("mba_lambda", self.mba_lambda >= 0, ">= 0")
        _check("dropout", 0 <= self.dropout < 1, "in [0, 1)")
        _check("learning_rate", self.learning_rate > 0, "> 0")
        _check("seed", isinstance(self.seed, int) and self.seed >= 0, "an int >= 0")
        path = self.retrieved_negatives_path
        _check("retrieved_negatives_path", path is None or isinstance(path, str), "a str or None")
        share = self.retrieved_negative_share
        _check("retrieved_negative_share", 0.0 <= share <= 1.0, "in [0, 1]")
        per_user = self.retrieved_per_user
        _check("retrieved_per_user", isinstance(per_user, int) and per_user >= 1, "an int >= 1")
        _check(
            "strategy", self.strategy in distribute.STRATEGIES, f"one of {distribute.STRATEGIES}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists, embedding specs nested dicts)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, EmbeddingSpec):
                value = {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
            out[field.name] = _jsonable(value)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RankingConfig:
        """Rebuilds a config from `to_dict`'s output; missing keys take their defaults.

        Raises:
            ValueError: on an unknown key or an invalid value, naming the field.
        """
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"ranking config: unknown field(s) {unknown}; fields are {sorted(known)}"
            )
        for name in ("attention_units", "head_units"):
            if name in d and isinstance(d[name], list):
                d[name] = tuple(d[name])
        for name in _SPEC_FIELDS:
            if name in d and isinstance(d[name], Mapping):
                d[name] = _spec_from_dict(name, d[name])
        return cls(**d)


def from_custom_config(custom_config: Mapping[str, Any] | None) -> RankingConfig:
    """The RankingConfig inside a Trainer's custom_config ({"ranking": {...}}), else defaults."""
    return RankingConfig.from_dict((custom_config or {}).get(CUSTOM_CONFIG_KEY))


def _check(name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"ranking config: {name} must be {expected}")


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _spec_from_dict(name: str, d: Mapping[str, Any]) -> EmbeddingSpec:
    known = {f.name for f in dataclasses.fields(EmbeddingSpec)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"ranking config: {name} has unknown field(s) {unknown}")
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    try:
        return EmbeddingSpec(**d)
    except ValueError as e:
        raise ValueError(f"ranking config: {name}: {e}") from e
