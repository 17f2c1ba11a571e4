"""Gates, versions, atomic push and pruning (pure logic, real files)."""

import os

import pytest

from components.versioned_pusher import push


def _saved_model(path, content="v"):
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, push.SAVED_MODEL), "w") as f:
        f.write(content)
    with open(os.path.join(path, "variables", "variables.index"), "w") as f:
        f.write(content * 3)


def test_refusals_name_every_failed_or_missing_gate():
    gates = {"ranking_blessing": True, "retrieval_blessing": False, "canary_blessing": None}
    assert push.refusals(gates) == [
        "retrieval_blessing: not blessed",
        "canary_blessing: no verdict (the gate's artifact is missing)",
    ]
    assert push.refusals({"a": True, "b": True}) == []


def test_versions_ignore_temporary_and_incomplete_directories(tmp_path):
    base = tmp_path / "m"
    _saved_model(base / "3")
    _saved_model(base / "12")
    os.makedirs(base / "20")  # no saved_model.pb yet: not a version
    _saved_model(base / ".tmp-30-abc")
    assert push.versions(str(base)) == [3, 12]
    assert push.versions(str(tmp_path / "absent")) == []


def test_next_version_is_the_time_unless_a_newer_version_exists(tmp_path):
    base = tmp_path / "m"
    assert push.next_version(str(base), now=1000.7) == 1000
    _saved_model(base / "1000")
    assert push.next_version(str(base), now=1000.2) == 1001
    assert push.next_version(str(base), now=5000) == 5000


def test_push_copies_the_whole_tree_and_never_overwrites(tmp_path):
    src, base = tmp_path / "src", tmp_path / "serving" / "m"
    _saved_model(src, "abc")
    final = push.push(str(src), str(base), 7)
    assert final == str(base / "7")
    with open(base / "7" / "variables" / "variables.index") as f:
        assert f.read() == "abcabcabc"
    with pytest.raises(FileExistsError, match="version 7 exists"):
        push.push(str(src), str(base), 7)
    assert sorted(os.listdir(base)) == ["7"]  # no temporary left behind


def test_push_refuses_a_directory_without_a_saved_model(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nothing to push"):
        push.push(str(tmp_path / "empty"), str(tmp_path / "m"), 1)
    assert not os.path.exists(tmp_path / "m" / "1")


def test_a_failed_copy_leaves_no_version_and_no_temporary(tmp_path, monkeypatch):
    src, base = tmp_path / "src", tmp_path / "m"
    _saved_model(src)

    def broken_copy(a, b, overwrite=False):
        raise OSError("disk full")

    monkeypatch.setattr(push.fileio, "copy", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        push.push(str(src), str(base), 9)
    assert os.listdir(base) == []


def test_prune_keeps_the_newest(tmp_path):
    base = tmp_path / "m"
    for v in (1, 2, 5, 9):
        _saved_model(base / str(v))
    assert push.prune(str(base), keep=2) == [1, 2]
    assert push.versions(str(base)) == [5, 9]
    with pytest.raises(ValueError, match="keep_versions"):
        push.prune(str(base), keep=0)
