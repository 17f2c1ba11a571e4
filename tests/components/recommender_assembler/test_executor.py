"""RecommenderAssembler's executor: the log q term comes from the examples artifact."""

import pytest
from tfx.types import standard_artifacts

from components.recommender_assembler.executor import negative_correction
from schemas import features as F


def _examples(power=None, ratio=None):
    artifact = standard_artifacts.Examples()
    artifact.uri = "/tmp/examples"
    if power is not None:
        artifact.set_float_custom_property(F.NEGATIVE_POWER_PROPERTY, power)
    if ratio is not None:
        artifact.set_int_custom_property(F.NEGATIVE_RATIO_PROPERTY, ratio)
    return artifact


def test_the_sampler_recorded_on_the_examples_sets_the_term():
    correction = negative_correction(_examples(power=0.5, ratio=2), weight=1.5)
    assert (correction.weight, correction.power) == (1.5, 0.5)
    assert "count ** 0.5" in correction.source


@pytest.mark.parametrize(
    "artifact, weight",
    [
        (_examples(power=0.75, ratio=2), 0.0),  # switched off
        (_examples(power=0.75, ratio=0), 1.0),  # the ranker had no sampled negatives
        (_examples(), 1.0),  # an artifact written before the properties existed
        (_examples(power=0.75), 1.0),
    ],
)
def test_no_term_without_a_weight_a_sampler_or_its_record(artifact, weight):
    assert negative_correction(artifact, weight) is None


def test_assembly_config_refuses_a_negative_weight():
    from components.recommender_assembler.config import AssemblyConfig

    with pytest.raises(ValueError, match="log_q_weight"):
        AssemblyConfig(log_q_weight=-1.0)


def test_the_bench_builds_the_same_term_from_a_sequence_config():
    from bench.retrieval_served import correction
    from components.behavior_sequence_gen.sequences import SequenceConfig

    term = correction(SequenceConfig(negative_power=0.5))
    want = negative_correction(_examples(power=0.5, ratio=2), weight=1.0)
    assert (term.weight, term.power) == (want.weight, want.power) == (1.0, 0.5)
    assert correction(SequenceConfig(negative_ratio=0)) is None
    assert correction(SequenceConfig(), log_q_weight=0.0) is None
