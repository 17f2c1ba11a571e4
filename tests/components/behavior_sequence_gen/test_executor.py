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
    )
    props = {f: getattr(cfg, f) for f in S.SequenceConfig.__dataclass_fields__}
    assert executor.config_from_properties(props) == cfg
    # TFX drops optional properties that are None: absence means an implicit log.
    del props["rating_threshold"]
    assert executor.config_from_properties(props).rating_threshold is None
