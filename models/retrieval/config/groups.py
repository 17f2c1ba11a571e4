"""RetrievalConfig: every hyperparameter of the two-tower model, validated on construction.

The TFX Trainer receives it as JSON through `custom_config["retrieval"]`
(`to_dict()`), and `run_fn` rebuilds it with `from_dict()`. An invalid value
fails in `__post_init__` with a ValueError that names the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from models.common.embeddings import FULL, EmbeddingSpec
from models.retrieval.sequence import HistoryEncoderSpec

LOSSES = ("listwise", "pointwise", "triplet_hinge", "triplet_logistic", "sampled_softmax")
NEGATIVE_DISTRIBUTIONS = ("uniform", "unigram")
SOFTMAX_SAMPLERS = ("log_uniform", "unigram")
PRETRAINED_MODES = ("init", "input")
MODES = ("full", "incremental")
OPTIMIZERS = ("adam", "adagrad")
ADAPTIVE_SAMPLINGS = ("tapas", "per_row")  # models/retrieval/tapas.py
ITEM2VEC = "item2vec"
MEAN_OF_ITEMS = "mean_of_items"  # pretrained_users: mean of the user's pretrained items
CUSTOM_CONFIG_KEY = "retrieval"  # fn_args.custom_config[CUSTOM_CONFIG_KEY] = config.to_dict()


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """Two-tower retrieval hyperparameters.

    Attributes:
        embedding_dim: width of the item and user id embeddings (history pooling too).
        feature_dim: width of the small categorical embeddings (gender, genre, hour, ...).
        tower_depth: hidden layers of each tower's MLP.
        tower_width: units of each hidden layer.
        output_dim: width of the L2-normalised tower outputs.
        temperature: listwise / sampled-softmax logits are cos / temperature.
        learning_rate: optimizer learning rate.
        optimizer: "adam" or "adagrad".
        batch_size: positives per batch (the in-batch candidate count).
        epochs: passes (Keras epochs).
        steps_per_epoch: 0 = one pass over the data per epoch; fn_args.train_steps,
            when set, caps the total.
        eval_steps: 0 = one pass over the eval data; fn_args.eval_steps wins when set.
        seed: seed of shuffling, samplers and initialisers.
        loss: one of LOSSES.
        log_q: log-Q sampling-bias correction (listwise, sampled_softmax).
        remove_accidental_hits: mask negatives equal to the row's positive.
        num_mixed_negatives: extra negatives sampled from the catalog per batch (listwise).
        negative_distribution: "uniform" or "unigram" (count ** unigram_power), for the
            mixed negatives and the easy explicit negatives.
        unigram_power: exponent of the unigram distribution.
        num_hard_negatives: listwise: keep only the k hardest in-batch negatives (0 = all).
        mined_negatives_path: TSV `user_id<TAB>item_id item_id ...` of hard negatives
            mined with the last blessed model (None = off).
        mined_ratio: share of the explicit negatives drawn from the mined file.
        max_mined_per_user: mined items kept per user.
        negative_ratio: explicit negatives per positive (pointwise/triplet: 1:K; listwise
            with mined negatives: per-row extra columns).
        pointwise_scale: pointwise logit = scale * cos.
        triplet_margin: margin of the triplet hinge loss.
        triplet_scale: scale of the triplet logistic loss.
        num_sampled: sampled-softmax candidates per batch.
        softmax_sampler: "log_uniform" (frequency-sorted vocabulary) or "unigram".
        adaptive_top_m: sampled softmax second pass keeps the m best samples (0 = off).
        adaptive_temperature: temperature of that second pass.
        downsample_threshold: keep a positive with prob. min(1, sqrt(t/f) + t/f) (0 = off).
        cold_min_count: items with fewer positives are cold.
        cold_boost: repeat factor of cold positives (1.0 = off).
        item_embedding: EmbeddingSpec of the item id table (shared with the history).
        user_embedding: EmbeddingSpec of the user id table.
        pretrained: None, "item2vec", or the path of a `id<TAB>v1 v2 ...` file.
        pretrained_mode: "init" (initialise the item table) or "input" (fixed input vectors).
        pretrained_dim: vector width for item2vec in "input" mode ("init" uses embedding_dim).
        freeze_steps: "init": keep the pretrained table frozen for this many steps.
        item2vec_window: history items paired with each positive for item2vec.
        item2vec_epochs: item2vec passes.
        mode: "full" (warm start + one epoch when a base model exists) or "incremental"
            (train only the id embeddings).
        history: HistoryEncoderSpec: how the query tower pools the history (mean, or
            causal self-attention over it).
        non_positive_weight: listwise: every logged event below the rating threshold is
            a retrieval target too, with this weight (positives weigh 1; 0 = positives
            only). Sampled ranker negatives are never targets.
        adaptive_sampling: with adaptive_top_m > 0: "tapas" (published TAPAS: the
            adaptive_top_m sampled labels with the best batch score
            logsumexp_b(logit / adaptive_temperature) are shared by the batch, the
            temperature is used only to pick them; models/retrieval/tapas.py) or
            "per_row" (the former variant: each row's own top-m of its corrected
            logits, and all kept logits divided by adaptive_temperature).
        pretrained_users: None, "mean_of_items" (a user's vector is the mean of the
            pretrained item vectors of their positive training events; needs
            `pretrained`), or the path of a `user_id<TAB>v1 v2 ...` file. Used per
            pretrained_mode ("init": the user table, frozen for freeze_steps;
            "input": fixed input vectors); models/retrieval/user_vectors.py.
    """

    embedding_dim: int = 32
    feature_dim: int = 8
    tower_depth: int = 1
    tower_width: int = 64
    output_dim: int = 32
    temperature: float = 0.05
    learning_rate: float = 0.01
    optimizer: str = "adam"
    batch_size: int = 256
    epochs: int = 3
    steps_per_epoch: int = 0
    eval_steps: int = 0
    seed: int = 0
    loss: str = "listwise"
    log_q: bool = True
    remove_accidental_hits: bool = True
    num_mixed_negatives: int = 0
    negative_distribution: str = "unigram"
    unigram_power: float = 0.75
    num_hard_negatives: int = 0
    mined_negatives_path: str | None = None
    mined_ratio: float = 0.5
    max_mined_per_user: int = 50
    negative_ratio: int = 2
    pointwise_scale: float = 10.0
    triplet_margin: float = 0.2
    triplet_scale: float = 10.0
    num_sampled: int = 512
    softmax_sampler: str = "log_uniform"
    adaptive_top_m: int = 0
    adaptive_temperature: float = 1.0
    downsample_threshold: float = 0.0
    cold_min_count: int = 5
    cold_boost: float = 1.0
    item_embedding: EmbeddingSpec = dataclasses.field(default_factory=EmbeddingSpec)
    user_embedding: EmbeddingSpec = dataclasses.field(default_factory=EmbeddingSpec)
    pretrained: str | None = None
    pretrained_mode: str = "init"
    pretrained_dim: int = 32
    freeze_steps: int = 0
    item2vec_window: int = 5
    item2vec_epochs: int = 5
    mode: str = "full"
    history: HistoryEncoderSpec = dataclasses.field(default_factory=HistoryEncoderSpec)
    non_positive_weight: float = 0.0
    adaptive_sampling: str = "tapas"
    pretrained_users: str | None = None

    def __post_init__(self):
        for spec in ("item_embedding", "user_embedding"):
            if isinstance(getattr(self, spec), dict):  # from JSON
                object.__setattr__(self, spec, _spec_from_dict(spec, getattr(self, spec)))
        if isinstance(self.history, dict):  # from JSON
            object.__setattr__(self, "history", _history_from_dict(self.history))
        self._check_sizes()
        self._check_choices()
        self._check_combinations()

    def _check_sizes(self):
        positive = ("embedding_dim", "feature_dim", "output_dim", "epochs", "negative_ratio")
        for name in positive + ("pretrained_dim", "item2vec_window", "item2vec_epochs"):
            _require(name, getattr(self, name) >= 1, "must be >= 1", getattr(self, name))
        non_negative = ("tower_depth", "steps_per_epoch", "eval_steps", "num_mixed_negatives")
        for name in non_negative + ("num_hard_negatives", "adaptive_top_m", "freeze_steps"):
            _require(name, getattr(self, name) >= 0, "must be >= 0", getattr(self, name))
        _require("tower_width", self.tower_width >= 1 or not self.tower_depth, "must be >= 1")
        _require("batch_size", self.batch_size >= 2, "must be >= 2", self.batch_size)
        for name in ("temperature", "learning_rate", "adaptive_temperature", "pointwise_scale"):
            _require(name, getattr(self, name) > 0, "must be > 0", getattr(self, name))
        _require("triplet_scale", self.triplet_scale > 0, "must be > 0", self.triplet_scale)
        _require("triplet_margin", self.triplet_margin >= 0, "must be >= 0", self.triplet_margin)
        _require("unigram_power", 0 <= self.unigram_power <= 1, "must be in [0, 1]")
        _require("mined_ratio", 0 <= self.mined_ratio <= 1, "must be in [0, 1]", self.mined_ratio)
        _require("max_mined_per_user", self.max_mined_per_user >= 1, "must be >= 1")
        _require("downsample_threshold", self.downsample_threshold >= 0, "must be >= 0")
        _require("non_positive_weight", self.non_positive_weight >= 0, "must be >= 0")
        _require("cold_min_count", self.cold_min_count >= 1, "must be >= 1")
        _require("cold_boost", self.cold_boost >= 1.0, "must be >= 1.0", self.cold_boost)
        _require("num_sampled", self.num_sampled >= 1, "must be >= 1", self.num_sampled)

    def _check_choices(self):
        for name, allowed in (
            ("loss", LOSSES),
            ("negative_distribution", NEGATIVE_DISTRIBUTIONS),
            ("softmax_sampler", SOFTMAX_SAMPLERS),
            ("pretrained_mode", PRETRAINED_MODES),
            ("mode", MODES),
            ("optimizer", OPTIMIZERS),
            ("adaptive_sampling", ADAPTIVE_SAMPLINGS),
        ):
            _require(name, getattr(self, name) in allowed, f"must be one of {allowed}")
        for name in ("item_embedding", "user_embedding"):
            _require(name, isinstance(getattr(self, name), EmbeddingSpec), "must be EmbeddingSpec")
        _require("pretrained", self.pretrained is None or bool(self.pretrained), "is empty")
        _require("history", isinstance(self.history, HistoryEncoderSpec), "must be a spec")

    def _check_combinations(self):
        _require(
            "num_hard_negatives",
            self.num_hard_negatives < self.batch_size + self.num_mixed_negatives,
            "must be < batch_size + num_mixed_negatives",
        )
        _require(
            "mined_negatives_path",
            not (self.mined_negatives_path and self.loss == "sampled_softmax"),
            "is not supported with loss='sampled_softmax'",
        )
        _require(
            "pretrained_mode",
            not (self.pretrained and self.pretrained_mode == "init")
            or self.item_embedding.kind == FULL,
            "'init' needs a full item table (item_embedding.kind='full')",
        )
        _require(
            "adaptive_top_m",
            self.adaptive_top_m <= self.num_sampled,
            "must be <= num_sampled",
        )
        self._check_pretrained_users()

    def _check_pretrained_users(self):
        users = self.pretrained_users
        _require("pretrained_users", users is None or bool(users), "is empty")
        _require(
            "pretrained_users",
            users != MEAN_OF_ITEMS or bool(self.pretrained),
            f"{MEAN_OF_ITEMS!r} needs pretrained item vectors (set pretrained)",
        )
        _require(
            "pretrained_mode",
            not (users and self.pretrained_mode == "init") or self.user_embedding.kind == FULL,
            "'init' with pretrained_users needs a full user table (user_embedding.kind='full')",
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists, specs become dicts)."""
        return _json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RetrievalConfig:
        """Rebuilds a config from `to_dict()` output; unknown keys fail, naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"RetrievalConfig: unknown field(s) {unknown}")
        return cls(**dict(values))


def _require(field: str, ok: bool, message: str, value: Any = dataclasses.MISSING) -> None:
    if not ok:
        got = "" if value is dataclasses.MISSING else f", got {value!r}"
        raise ValueError(f"RetrievalConfig.{field} {message}{got}")


def _spec_from_dict(field: str, values: dict) -> EmbeddingSpec:
    known = {f.name for f in dataclasses.fields(EmbeddingSpec)}
    _require(field, set(values) <= known, f"has unknown keys {sorted(set(values) - known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return EmbeddingSpec(**values)
    except ValueError as e:
        raise ValueError(f"RetrievalConfig.{field}: {e}") from None


def _history_from_dict(values: dict) -> HistoryEncoderSpec:
    known = {f.name for f in dataclasses.fields(HistoryEncoderSpec)}
    _require("history", set(values) <= known, f"has unknown keys {sorted(set(values) - known)}")
    try:
        return HistoryEncoderSpec(**values)
    except ValueError as e:
        raise ValueError(f"RetrievalConfig.history: {e}") from None


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
