"""The executor's checks on what the Beam graph produced."""

import pytest

from components.behavior_sequence_gen import executor
from components.behavior_sequence_gen import sequences as S


def test_empty_results_are_errors():
    with pytest.raises(ValueError, match="no training examples"):
        executor.check_report({"train_examples": 0, "eval_examples": 3, "unknown_item": 40})
    with pytest.raises(ValueError, match="cutoff_timestamp"):
        executor.check_report({"train_examples": 10, "eval_examples": 0})
    executor.check_report({"train_examples": 10, "eval_examples": 1})


def test_config_round_trips_through_exec_properties():
    cfg = S.SequenceConfig(
        history_length=7,
        rating_threshold=None,
        split=S.TIME_CUTOFF,
        cutoff_timestamp=99,
        negative_ratio=3,
        seed=5,
        negative_exclusion=S.EXCLUDE_EVER,
    )
    props = {f: getattr(cfg, f) for f in S.SequenceConfig.__dataclass_fields__}
    assert executor.config_from_properties(props) == cfg
    # TFX drops optional properties that are None: absence means an implicit log.
    del props["rating_threshold"]
    assert executor.config_from_properties(props).rating_threshold is None


def test_component_passes_negative_exclusion():
    from tfx import types
    from tfx.types import standard_artifacts

    from components.behavior_sequence_gen.component import BehaviorSequenceGen

    def channel():
        return types.Channel(type=standard_artifacts.Examples)

    default = BehaviorSequenceGen(channel(), channel())
    assert default.exec_properties["negative_exclusion"] == S.EXCLUDE_UNTIL_T
    ever = BehaviorSequenceGen(
        channel(), channel(), config=S.SequenceConfig(negative_exclusion=S.EXCLUDE_EVER)
    )
    assert executor.config_from_properties(ever.exec_properties).negative_exclusion == (
        S.EXCLUDE_EVER
    )
