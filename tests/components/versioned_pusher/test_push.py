"""Gates, versions, atomic push and pruning (pure logic, real files)."""

import os
import uuid

import pytest
import tensorflow as tf

from components.versioned_pusher import push
from schemas import model_version


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
    assert push.prune(str(base), keep=2) == ([1, 2], [])
    assert push.versions(str(base)) == [5, 9]
    with pytest.raises(ValueError, match="keep_versions"):
        push.prune(str(base), keep=0)


def test_versions_follow_tf_servings_names(tmp_path):
    base = tmp_path / "m"
    for name in ("3", "²", "99999999999999999999", "0007"):
        _saved_model(base / name)
    assert push.versions(str(base)) == [3, 7]
    assert push.next_version(str(base), now=5) == 8


def _outside(tmp_path):
    """A directory outside the serving dir, with a file that must survive."""
    outside = tmp_path / "elsewhere"
    _saved_model(outside, "keep me")
    return outside


def test_prune_skips_a_version_that_is_a_symlink_and_deletes_nothing_outside(tmp_path):
    base, outside = tmp_path / "serving" / "m", _outside(tmp_path)
    os.makedirs(base)
    os.symlink(outside, base / "50")
    _saved_model(base / "60")
    removed, skipped = push.prune(str(base), keep=1)
    assert removed == [] and len(skipped) == 1 and "50" in skipped[0] and "symbolic" in skipped[0]
    with open(outside / push.SAVED_MODEL) as f:
        assert f.read() == "keep me"
    assert os.path.islink(base / "50") and push.versions(str(base)) == [50, 60]


def test_prune_removes_links_inside_a_version_as_links(tmp_path):
    base, outside = tmp_path / "serving" / "m", _outside(tmp_path)
    _saved_model(base / "50")
    os.symlink(outside, base / "50" / "assets")
    os.symlink(outside / push.SAVED_MODEL, base / "50" / "vocab.txt")
    _saved_model(base / "60")
    assert push.prune(str(base), keep=1) == ([50], [])
    assert sorted(os.listdir(outside)) == [push.SAVED_MODEL, "variables"]
    with open(outside / push.SAVED_MODEL) as f:
        assert f.read() == "keep me"


@pytest.mark.parametrize("kind", ["file", "dir", "loop"])
def test_push_refuses_a_model_with_a_symlink_before_writing(tmp_path, kind):
    src, base, outside = tmp_path / "src", tmp_path / "serving" / "m", _outside(tmp_path)
    _saved_model(src)
    link = src / "variables" / "link"
    if kind == "file":
        os.symlink(outside / push.SAVED_MODEL, link)
    elif kind == "dir":
        os.symlink(outside, link)
    else:
        os.symlink(link, link)
    with pytest.raises(ValueError, match=r"variables/link is a symbolic link"):
        push.push(str(src), str(base), 9)
    assert not os.path.exists(base) or os.listdir(base) == []


def test_push_verifies_the_copy_against_the_manifest(tmp_path):
    src, base = tmp_path / "src", tmp_path / "m"
    _saved_model(src, "abc")
    model_version.write_manifest(str(src))
    assert push.push(str(src), str(base), 1) == str(base / "1")
    with open(src / "variables" / "variables.index", "w") as f:
        f.write("abc")  # 3 bytes instead of 9: the copy no longer matches the manifest
    with pytest.raises(model_version.ManifestError, match="variables/variables.index: 3 bytes"):
        push.push(str(src), str(base), 2)
    assert sorted(os.listdir(base)) == ["1"]  # nothing half-written left


# Object stores: tf.io.gfile's RAM file system stands for gs:// / s3:// (no directories, no
# atomic rename: renaming a directory there even drops its files).


def _ram_model(path, content="abc"):
    """A SavedModel-like tree with a manifest (in assets.extra/), on a non-POSIX file system.

    No `assets/` beside `assets.extra/`: TF's RAM file system lists by bare name prefix,
    so `assets` would list a phantom file ".extra" (GCS and S3 list by "dir/" prefixes).
    """
    files = {
        push.SAVED_MODEL: content,
        "variables/variables.index": content * 2,
        "variables/variables.data-00000-of-00001": content * 3,
        "fingerprint.pb": content,
    }
    for rel, text in files.items():
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(path, rel)))
        with tf.io.gfile.GFile(os.path.join(path, rel), "w") as f:
            f.write(text)
    model_version.write_manifest(path)
    return len(files)


@pytest.fixture
def ram():
    root = f"ram://push-{uuid.uuid4().hex}"
    yield root
    if tf.io.gfile.exists(root):
        tf.io.gfile.rmtree(root)


def test_object_store_push_is_never_visible_incomplete(ram, monkeypatch):
    src, base = f"{ram}/src", f"{ram}/serving/m"
    count = _ram_model(src)
    real_copy, writes = push.fileio.copy, []

    def observed_copy(source, target, overwrite=False):
        real_copy(source, target, overwrite)
        visible = push.versions(base)
        writes.append((target, visible))
        if visible:  # whatever a reader lists as a version must be complete
            model_version.verify_manifest(f"{base}/{visible[-1]}")

    monkeypatch.setattr(push.fileio, "copy", observed_copy)
    final = push.push(src, base, 5)
    assert final == f"{base}/5"
    into_final = [(t, v) for t, v in writes if t.startswith(final + "/")]
    assert len(into_final) == count + 1  # + the manifest
    assert into_final[-1] == (f"{final}/{push.SAVED_MODEL}", [5])
    assert all(v == [] for _, v in into_final[:-1])
    assert model_version.verify_manifest(final) == count
    assert tf.io.gfile.listdir(base) == ["5"]  # the stage is gone


def test_object_store_commit_failure_leaves_nothing(ram, monkeypatch):
    src, base = f"{ram}/src", f"{ram}/serving/m"
    _ram_model(src)
    real_copy = push.fileio.copy

    def copy_failing_in_final(source, target, overwrite=False):
        if target.startswith(f"{base}/7/variables/"):
            raise OSError("connection reset")
        real_copy(source, target, overwrite)

    monkeypatch.setattr(push.fileio, "copy", copy_failing_in_final)
    with pytest.raises(OSError, match="connection reset"):
        push.push(src, base, 7)
    assert push.versions(base) == []
    assert tf.io.gfile.listdir(base) == []


def test_object_store_prune_removes_old_versions(ram):
    src, base = f"{ram}/src", f"{ram}/serving/m"
    _ram_model(src)
    for version in (1, 2, 3):
        push.push(src, base, version)
    assert push.versions(base) == [1, 2, 3]
    assert push.prune(base, keep=1) == ([1, 2], [])
    assert push.versions(base) == [3]
    assert tf.io.gfile.listdir(base) == ["3"]
