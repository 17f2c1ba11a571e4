"""The loss of RetrievalConfig: one frozen class per loss family.

The model picks its loss by the class (models/retrieval/objectives.py), never by
a name; `NAME` is only the tag of the JSON form (`{"type": NAME, ...}`) and the
CLI's choice.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from models.retrieval.config.groups import PREFIX, check_at_least, require

SOFTMAX_SAMPLERS = ("log_uniform", "unigram")
ADAPTIVE_SAMPLINGS = ("tapas", "per_row")  # models/retrieval/tapas.py


@dataclasses.dataclass(frozen=True)
class Loss:
    """Base of the loss variants."""

    NAME: ClassVar[str] = ""
    PATH: ClassVar[str] = f"{PREFIX}.loss"


@dataclasses.dataclass(frozen=True)
class Listwise(Loss):
    """Softmax over the batch's positives (log-Q corrected), plus extra negatives.

    Attributes:
        num_mixed_negatives: extra negatives sampled from the catalog per batch.
        num_hard_negatives: keep only the k hardest negatives of each row (0 = all).
    """

    NAME: ClassVar[str] = "listwise"
    num_mixed_negatives: int = 0
    num_hard_negatives: int = 0

    def __post_init__(self):
        check_at_least(self, 0, ("num_mixed_negatives", "num_hard_negatives"))


@dataclasses.dataclass(frozen=True)
class ExplicitLoss(Loss):
    """Base of the losses over negatives.ratio explicit negatives per positive."""


@dataclasses.dataclass(frozen=True)
class Pointwise(ExplicitLoss):
    """Binary cross-entropy on sigmoid(scale * cos).

    Attributes:
        scale: logit = scale * cos.
    """

    NAME: ClassVar[str] = "pointwise"
    scale: float = 10.0

    def __post_init__(self):
        check_at_least(self, 0, ("scale",), strict=True)


@dataclasses.dataclass(frozen=True)
class TripletHinge(ExplicitLoss):
    """max(0, cos(a, b-) + margin - cos(a, b+)).

    Attributes:
        margin: the hinge's margin.
    """

    NAME: ClassVar[str] = "triplet_hinge"
    margin: float = 0.2

    def __post_init__(self):
        check_at_least(self, 0, ("margin",))


@dataclasses.dataclass(frozen=True)
class TripletLogistic(ExplicitLoss):
    """softplus(scale * (cos(a, b-) - cos(a, b+))).

    Attributes:
        scale: s.
    """

    NAME: ClassVar[str] = "triplet_logistic"
    scale: float = 10.0

    def __post_init__(self):
        check_at_least(self, 0, ("scale",), strict=True)


@dataclasses.dataclass(frozen=True)
class SampledSoftmax(Loss):
    """YouTube-DNN sampled softmax over the item vocabulary.

    Attributes:
        num_sampled: candidates sampled per batch.
        sampler: "log_uniform" (frequency-sorted vocabulary) or "unigram".
        adaptive_top_m: a second pass keeps the m best samples (0 = off).
        adaptive_temperature: temperature of that second pass.
        adaptive_sampling: with adaptive_top_m > 0: "tapas" (published TAPAS: the
            adaptive_top_m sampled labels with the best batch score
            logsumexp_b(logit / adaptive_temperature) are shared by the batch, the
            temperature is used only to pick them; models/retrieval/tapas.py) or
            "per_row" (each row's own top-m of its corrected logits, and all kept
            logits divided by adaptive_temperature).
    """

    NAME: ClassVar[str] = "sampled_softmax"
    num_sampled: int = 512
    sampler: str = "log_uniform"
    adaptive_top_m: int = 0
    adaptive_temperature: float = 1.0
    adaptive_sampling: str = "tapas"

    def __post_init__(self):
        check_at_least(self, 1, ("num_sampled",))
        check_at_least(self, 0, ("adaptive_top_m",))
        check_at_least(self, 0, ("adaptive_temperature",), strict=True)
        choices = (("sampler", SOFTMAX_SAMPLERS), ("adaptive_sampling", ADAPTIVE_SAMPLINGS))
        for name, allowed in choices:
            require(self.PATH, name, getattr(self, name) in allowed, f"must be one of {allowed}")
        top_m = self.adaptive_top_m
        require(self.PATH, "adaptive_top_m", top_m <= self.num_sampled, "must be <= num_sampled")


LOSS_TYPES: dict[str, type[Loss]] = {
    cls.NAME: cls for cls in (Listwise, Pointwise, TripletHinge, TripletLogistic, SampledSoftmax)
}
LOSSES = tuple(LOSS_TYPES)  # the names, for the CLI and the JSON tag
