"""RetrievalConfig's groups other than the loss: tower, training, negatives, positives,
embeddings, updates.

Each group validates its own fields in `__post_init__` and fails with a ValueError
naming the field as `RetrievalConfig.<group>.<field>` (its PATH).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.common import distribute
from models.common.embeddings import FULL, EmbeddingSpec
from models.retrieval.sequence import HistoryEncoderSpec

NEGATIVE_DISTRIBUTIONS = ("uniform", "unigram")
PRETRAINED_MODES = ("init", "input")
MODES = ("full", "incremental")
OPTIMIZERS = ("adam", "adagrad")
MEAN_OF_ITEMS = "mean_of_items"  # pretrained_users: mean of the user's pretrained items
PREFIX = "RetrievalConfig"


def require(path: str, field: str, ok: bool, message: str, value: Any = dataclasses.MISSING):
    if not ok:
        got = "" if value is dataclasses.MISSING else f", got {value!r}"
        raise ValueError(f"{path}.{field} {message}{got}")


def check_at_least(group, bound, names, strict=False) -> None:
    """Each named field >= bound (> bound if strict), naming the first that is not."""
    for name in names:
        value = getattr(group, name)
        ok = value > bound if strict else value >= bound
        require(group.PATH, name, ok, f"must be {'>' if strict else '>='} {bound}", value)


@dataclasses.dataclass(frozen=True)
class Tower:
    """The towers and their scores.

    Attributes:
        embedding_dim: width of the item and user id embeddings (history pooling too).
        feature_dim: width of the small categorical embeddings (gender, genre, hour, ...).
        depth: hidden layers of each tower's MLP.
        width: units of each hidden layer.
        output_dim: width of the L2-normalised tower outputs.
        temperature: scores (listwise / sampled-softmax logits) are cos / temperature.
        history: HistoryEncoderSpec: how the query tower pools the history (mean, or
            causal self-attention over it).
        popularity_prior: beta of the pushed model's retrieval score cos + beta * log(1 + n),
            n the item's positive training examples (models/retrieval/prior.py); not used in
            training. 0: cosines only.
    """

    PATH: ClassVar[str] = f"{PREFIX}.tower"
    embedding_dim: int = 32
    feature_dim: int = 8
    depth: int = 1
    width: int = 64
    output_dim: int = 32
    temperature: float = 0.05
    history: HistoryEncoderSpec = dataclasses.field(default_factory=HistoryEncoderSpec)
    popularity_prior: float = 0.03

    def __post_init__(self):
        check_at_least(self, 1, ("embedding_dim", "feature_dim", "output_dim"))
        check_at_least(self, 0, ("depth",))
        require(self.PATH, "width", self.width >= 1 or not self.depth, "must be >= 1")
        check_at_least(self, 0, ("temperature",), strict=True)
        prior = self.popularity_prior
        require(
            self.PATH, "popularity_prior", 0 <= prior < float("inf"), "must be finite, >= 0", prior
        )
        require(self.PATH, "history", isinstance(self.history, HistoryEncoderSpec), "is no spec")


@dataclasses.dataclass(frozen=True)
class Training:
    """The optimizer and the training loop.

    Attributes:
        learning_rate: optimizer learning rate.
        optimizer: "adam" or "adagrad".
        batch_size: positives per batch (the in-batch candidate count).
        epochs: passes (Keras epochs).
        steps_per_epoch: 0 = one pass over the data per epoch; fn_args.train_steps,
            when set, caps the total.
        eval_steps: 0 = one pass over the eval data; fn_args.eval_steps wins when set.
        seed: seed of shuffling, samplers and initialisers.
        max_example_passes: caps epochs x training positives: a larger data set trains
            fewer epochs (at least one); 0: no cap. ML-100K (~55K positives x 3) and
            the synthetic default (under 100K x 3) stay under it; 1M events, one epoch.
        strategy: the tf.distribute strategy, one of models/common/distribute.py's
            STRATEGIES ("default", "mirrored", "multi_worker").
        ema_momentum: 0 = off; else the exported weights are the exponential moving
            average of the trained ones (Polyak averaging; Keras' use_ema), updated
            every step with this momentum, in [0.9, 1).
    """

    PATH: ClassVar[str] = f"{PREFIX}.training"
    learning_rate: float = 0.01
    optimizer: str = "adam"
    batch_size: int = 256
    epochs: int = 3
    steps_per_epoch: int = 0
    eval_steps: int = 0
    seed: int = 0
    max_example_passes: int = 1_000_000
    strategy: str = distribute.DEFAULT
    ema_momentum: float = 0.0

    def __post_init__(self):
        check_at_least(self, 0, ("learning_rate",), strict=True)
        ema = self.ema_momentum
        require(
            self.PATH,
            "ema_momentum",
            ema == 0.0 or 0.9 <= ema < 1.0,
            "must be 0 (off) or in [0.9, 1)",
            ema,
        )
        strategies = distribute.STRATEGIES
        require(
            self.PATH,
            "strategy",
            self.strategy in strategies,
            f"must be one of {strategies}",
            self.strategy,
        )
        allowed = OPTIMIZERS
        require(self.PATH, "optimizer", self.optimizer in allowed, f"must be one of {allowed}")
        require(self.PATH, "batch_size", self.batch_size >= 2, "must be >= 2", self.batch_size)
        check_at_least(self, 1, ("epochs",))
        check_at_least(self, 0, ("steps_per_epoch", "eval_steps", "max_example_passes"))


@dataclasses.dataclass(frozen=True)
class Negatives:
    """Where negatives come from, and their corrections.

    Attributes:
        log_q: log-Q sampling-bias correction (listwise, sampled softmax, and the
            history's every-position loss).
        remove_accidental_hits: mask negatives equal to the row's positive.
        distribution: "uniform" or "unigram" (count ** unigram_power), for the mixed
            negatives and the easy explicit negatives.
        unigram_power: exponent of the unigram distribution.
        ratio: explicit negatives per positive (pointwise/triplet: 1:K; listwise with
            mined negatives: per-row extra columns).
    """

    PATH: ClassVar[str] = f"{PREFIX}.negatives"
    log_q: bool = True
    remove_accidental_hits: bool = True
    distribution: str = "unigram"
    unigram_power: float = 0.75
    ratio: int = 2

    def __post_init__(self):
        allowed, path = NEGATIVE_DISTRIBUTIONS, self.PATH
        require(path, "distribution", self.distribution in allowed, f"must be one of {allowed}")
        require(self.PATH, "unigram_power", 0 <= self.unigram_power <= 1, "must be in [0, 1]")
        check_at_least(self, 1, ("ratio",))


@dataclasses.dataclass(frozen=True)
class Positives:
    """Which positives train, and how often.

    Attributes:
        downsample_threshold: keep a positive with prob. min(1, sqrt(t/f) + t/f) (0 = off).
        cold_min_count: items with fewer positives are cold.
        cold_boost: repeat factor of cold positives (1.0 = off).
        non_positive_weight: every logged event below the rating threshold is a
            retrieval target too, with this weight (positives weigh 1; 0 = positives
            only; the listwise loss uses the weight). Sampled ranker negatives never are.
    """

    PATH: ClassVar[str] = f"{PREFIX}.positives"
    downsample_threshold: float = 0.0
    cold_min_count: int = 5
    cold_boost: float = 1.0
    non_positive_weight: float = 0.0

    def __post_init__(self):
        check_at_least(self, 0, ("downsample_threshold", "non_positive_weight"))
        check_at_least(self, 1, ("cold_min_count",))
        check_at_least(self, 1.0, ("cold_boost",))


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """The id tables and their pretrained vectors.

    Attributes:
        item: EmbeddingSpec of the item id table (shared with the history).
        user: EmbeddingSpec of the user id table.
        pretrained: None, "item2vec", or the path of a `id<TAB>v1 v2 ...` file.
        pretrained_users: None, "mean_of_items" (a user's vector is the mean of the
            pretrained item vectors of their positive training events; needs
            `pretrained`), or the path of a `user_id<TAB>v1 v2 ...` file. Used per
            pretrained_mode; models/retrieval/user_vectors.py.
        pretrained_mode: "init" (initialise the tables) or "input" (fixed input vectors).
        pretrained_dim: vector width for item2vec in "input" mode ("init" uses embedding_dim).
        freeze_steps: "init": keep the pretrained tables frozen for this many steps.
        item2vec_window: history items paired with each positive for item2vec.
        item2vec_epochs: item2vec passes.
    """

    PATH: ClassVar[str] = f"{PREFIX}.embeddings"
    item: EmbeddingSpec = dataclasses.field(default_factory=EmbeddingSpec)
    user: EmbeddingSpec = dataclasses.field(default_factory=EmbeddingSpec)
    pretrained: str | None = None
    pretrained_users: str | None = None
    pretrained_mode: str = "init"
    pretrained_dim: int = 32
    freeze_steps: int = 0
    item2vec_window: int = 5
    item2vec_epochs: int = 5

    def __post_init__(self):
        path, init = self.PATH, self.pretrained_mode == "init"
        for name in ("item", "user"):
            require(path, name, isinstance(getattr(self, name), EmbeddingSpec), "is no spec")
        modes = PRETRAINED_MODES
        require(path, "pretrained_mode", self.pretrained_mode in modes, f"must be one of {modes}")
        check_at_least(self, 1, ("pretrained_dim", "item2vec_window", "item2vec_epochs"))
        check_at_least(self, 0, ("freeze_steps",))
        require(path, "pretrained", self.pretrained is None or bool(self.pretrained), "is empty")
        require(
            path,
            "pretrained_mode",
            not (self.pretrained and init) or self.item.kind == FULL,
            "'init' needs a full item table (item.kind='full')",
        )
        users = self.pretrained_users
        require(path, "pretrained_users", users is None or bool(users), "is empty")
        require(
            path,
            "pretrained_users",
            users != MEAN_OF_ITEMS or bool(self.pretrained),
            f"{MEAN_OF_ITEMS!r} needs pretrained item vectors (set pretrained)",
        )
        require(
            path,
            "pretrained_mode",
            not (users and init) or self.user.kind == FULL,
            "'init' with pretrained_users needs a full user table (user.kind='full')",
        )


@dataclasses.dataclass(frozen=True)
class Updates:
    """How a run builds on the last blessed model.

    Attributes:
        mode: "full" (warm start + one epoch when a base model exists) or "incremental"
            (train only the id embeddings).
        mined_negatives_path: TSV `user_id<TAB>item_id item_id ...` of hard negatives
            mined with the last blessed model (None = off).
        mined_ratio: share of the explicit negatives drawn from the mined file.
        max_mined_per_user: mined items kept per user.
    """

    PATH: ClassVar[str] = f"{PREFIX}.updates"
    mode: str = "full"
    mined_negatives_path: str | None = None
    mined_ratio: float = 0.5
    max_mined_per_user: int = 50

    def __post_init__(self):
        require(self.PATH, "mode", self.mode in MODES, f"must be one of {MODES}", self.mode)
        ratio = self.mined_ratio
        require(self.PATH, "mined_ratio", 0 <= ratio <= 1, "must be in [0, 1]", ratio)
        check_at_least(self, 1, ("max_mined_per_user",))
