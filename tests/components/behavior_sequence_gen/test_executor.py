"""The executor: its checks on what the Beam graph produced, and its sharded plan."""

import glob
import os

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


def _file(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_shard_count_is_mib_over_the_budget_on_a_local_runner_only(tmp_path):
    _file(tmp_path / "Split-all" / "a.gz", 2 * 2**20)
    _file(tmp_path / "Split-all" / "b.gz", 2**20 + 1)  # 3 MiB and a byte in all
    pattern = str(tmp_path / "Split-all" / "*")
    local = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert executor.shard_count(pattern, 1, local) == 4
    assert executor.shard_count(pattern, 1, None) == 4
    assert executor.shard_count(pattern, 1, ["--runner=DirectRunner"]) == 4
    assert executor.shard_count(pattern, 2, local) == 2
    assert executor.shard_count(pattern, 64, local) == 1
    assert executor.shard_count(pattern, 0, local) == 1  # 0: always one pass
    # A distributed runner's shuffle is not held in memory: one pass.
    assert executor.shard_count(pattern, 1, ["--runner=DataflowRunner", "--project=p"]) == 1
    assert executor.shard_count(pattern, 1, ["--runner", "FlinkRunner"]) == 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64"])
def test_local_shard_mib_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="local_shard_mib"):
        S.SequenceConfig(local_shard_mib=bad)


def _run_executor(tmp_path, shards, monkeypatch):
    """Runs the executor's Do on the hand-built tables with `shards` user shards."""
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts

    from .test_transforms import write_inputs

    patterns = write_inputs(tmp_path / "in")
    inputs = {}
    for table, key in executor.INPUT_KEYS.items():
        artifact = standard_artifacts.Examples()
        artifact.uri = str(tmp_path / "in" / key)
        artifact.split_names = '["all"]'
        os.makedirs(os.path.join(artifact.uri, "Split-all"))
        os.rename(patterns[table], os.path.join(artifact.uri, "Split-all", "data.tfr"))
        inputs[key] = [artifact]
    outputs = {}
    for key in ("examples", "catalog"):
        outputs[key] = [standard_artifacts.Examples()]
        outputs[key][0].uri = str(tmp_path / key)
    monkeypatch.setattr(executor, "shard_count", lambda *args: shards)
    tmp = str(tmp_path / "tmp")
    run = executor.Executor(base_beam_executor.BaseBeamExecutor.Context(tmp_dir=tmp, unique_id="1"))
    cfg = S.SequenceConfig(history_length=3)
    run.Do(inputs, outputs, {f: getattr(cfg, f) for f in S.SequenceConfig.__dataclass_fields__})
    return outputs, tmp


def test_the_sharded_executor_writes_what_one_pass_writes_and_cleans_up(tmp_path, monkeypatch):
    from .test_transforms import _outputs

    one, _ = _run_executor(tmp_path / "one", 1, monkeypatch)
    three, tmp = _run_executor(tmp_path / "three", 3, monkeypatch)
    expected = _outputs(one["examples"][0].uri, one["catalog"][0].uri)
    assert expected["train"]
    assert _outputs(three["examples"][0].uri, three["catalog"][0].uri) == expected
    for key in ("train_examples", "eval_examples", "users", "events_read"):
        got = three["examples"][0].get_int_custom_property(key)
        assert got == one["examples"][0].get_int_custom_property(key) == expected["report"][key]
    assert three["examples"][0].split_names == '["train", "eval"]'
    # The shards' timelines are gone; only the outputs remain.
    assert not glob.glob(os.path.join(tmp, "**", "timelines-*"), recursive=True)
