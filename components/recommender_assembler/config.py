"""RecommenderAssembler's settings (no TensorFlow import: the pipeline config uses it)."""

from __future__ import annotations

import dataclasses

from schemas.serving import PORTABLE, SCANN, VARIANTS


@dataclasses.dataclass(frozen=True)
class AssemblyConfig:
    """What to export and how hard the canary checks it.

    Attributes:
        k: items per answer; n: retrieved candidates the ranker scores.
        variants: serving variants to export (PORTABLE must be one).
        canary_requests: eval queries in the golden set (plus 4 edge cases).
        latency_budget_ms: the canary's single-request p50 limit (fresh process).
        min_overlap: approximate search: least mean top-K overlap with the exact answer.
        retrieval_weight: the final score is log(ranker probability) + retrieval_weight *
            retrieval score. None: 1 / the two-tower's softmax temperature, which makes it
            log P(next item) + log P(liked); 0: the ranker alone orders the candidates.
        log_q_weight: the final score also adds log_q_weight * log q(item), q the
            ranker's negative-sampling distribution (count ** SequenceConfig.negative_power,
            read from the examples artifact): a ranker trained against those negatives
            learns log P(item | user) - log q(item), and 1 undoes that exactly. 0: off.
            B1 validation (bench/results/retrieval_tuning.json): +.009 / +.008 HR@10 /
            NDCG@10 on synthetic, +.011 / +.008 on ML-100K.
        prior_kept: share of the two-tower's popularity prior (part of its retrieval
            score, models/retrieval/prior.py) kept in the final score. 0: the prior picks
            the candidates but does not order them (B1 validation, seed 0, prior-free
            final vs the whole prior kept: HR@10 +.0015 / NDCG@10 -.0017 on synthetic,
            +.014 / +.005 on ML-100K).
    """

    k: int = 10
    n: int = 100
    variants: tuple[str, ...] = (PORTABLE, SCANN)
    canary_requests: int = 16
    latency_budget_ms: float = 250.0
    min_overlap: float = 0.8
    retrieval_weight: float | None = None
    log_q_weight: float = 1.0
    prior_kept: float = 0.0

    def __post_init__(self):
        if not 1 <= self.k <= self.n:
            raise ValueError(f"AssemblyConfig: need 1 <= k <= n, got k={self.k}, n={self.n}")
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown or PORTABLE not in self.variants:
            raise ValueError(
                f"AssemblyConfig.variants={self.variants}: must include {PORTABLE!r} "
                f"and only {VARIANTS}"
            )
        if self.canary_requests < 1 or self.latency_budget_ms <= 0:
            raise ValueError("AssemblyConfig: canary_requests >= 1 and latency_budget_ms > 0")
        if self.retrieval_weight is not None and not 0.0 <= self.retrieval_weight < 1e6:
            raise ValueError(
                f"AssemblyConfig.retrieval_weight={self.retrieval_weight} not in [0, 1e6) or None"
            )
        if not 0.0 <= self.log_q_weight <= 100.0:
            raise ValueError(f"AssemblyConfig.log_q_weight={self.log_q_weight} not in [0, 100]")
        if not 0.0 <= self.prior_kept <= 1.0:
            raise ValueError(f"AssemblyConfig.prior_kept={self.prior_kept} not in [0, 1]")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(f"AssemblyConfig.min_overlap={self.min_overlap} not in [0, 1]")
