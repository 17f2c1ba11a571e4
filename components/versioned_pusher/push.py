"""Gated, atomic, versioned pushes to a TF Serving model base path (pure logic).

Layout, as TF Serving's file-system source reads it: `<serving_dir>/<model_name>/<version>/`
with an integer version. A version is written beside its final place (a dot-prefixed
temporary directory TF Serving ignores) and renamed into place, so a reader never sees a
half-written version; the newest `keep` versions are kept, older ones removed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping

from tfx.dsl.io import fileio

SAVED_MODEL = "saved_model.pb"


def refusals(blessings: Mapping[str, bool | None]) -> list[str]:
    """Why a push must not happen: one line per gate that is missing or not blessed."""
    reasons = []
    for gate, blessed in blessings.items():
        if blessed is None:
            reasons.append(f"{gate}: no verdict (the gate's artifact is missing)")
        elif not blessed:
            reasons.append(f"{gate}: not blessed")
    return reasons


def versions(model_base: str) -> list[int]:
    """Integer version directories under model_base that hold a SavedModel, ascending."""
    if not fileio.exists(model_base):
        return []
    found = []
    for name in fileio.listdir(model_base):
        name = name.rstrip("/")
        if name.isdigit() and fileio.exists(os.path.join(model_base, name, SAVED_MODEL)):
            found.append(int(name))
    return sorted(found)


def next_version(model_base: str, now: float | None = None) -> int:
    """The Unix time in seconds (as TFX's Pusher does), or latest + 1 if that is not newer."""
    now = int(time.time() if now is None else now)
    existing = versions(model_base)
    return max(now, existing[-1] + 1) if existing else now


def _copy_tree(src: str, dst: str) -> None:
    fileio.makedirs(dst)
    for name in fileio.listdir(src):
        name = name.rstrip("/")
        source, target = os.path.join(src, name), os.path.join(dst, name)
        if fileio.isdir(source):
            _copy_tree(source, target)
        else:
            fileio.copy(source, target)


def stage(src: str, model_base: str, version: int) -> str:
    """Copies the SavedModel at src beside its final place; returns the temporary path.

    Raises:
        FileNotFoundError: src holds no SavedModel.
        FileExistsError: the version exists already (nothing is overwritten).
    """
    if not fileio.exists(os.path.join(src, SAVED_MODEL)):
        raise FileNotFoundError(f"no {SAVED_MODEL} in {src}: nothing to push")
    if fileio.exists(os.path.join(model_base, str(version))):
        raise FileExistsError(f"version {version} exists under {model_base}; not overwriting it")
    tmp = os.path.join(model_base, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(src, tmp)
    except BaseException:
        discard(tmp)
        raise
    return tmp


def commit(tmp: str, model_base: str, version: int) -> str:
    """Renames a staged version into place (atomic on a local or POSIX file system)."""
    final = os.path.join(model_base, str(version))
    fileio.rename(tmp, final)
    return final


def discard(tmp: str) -> None:
    """Removes a staged version that will not be committed."""
    if fileio.exists(tmp):
        fileio.rmtree(tmp)


def push(src: str, model_base: str, version: int) -> str:
    """stage + commit: <model_base>/<version> appears complete or not at all."""
    return commit(stage(src, model_base, version), model_base, version)


def prune(model_base: str, keep: int) -> list[int]:
    """Removes all but the newest `keep` versions; returns the removed versions."""
    if keep < 1:
        raise ValueError(f"keep_versions must be >= 1, got {keep}")
    old = versions(model_base)[:-keep]
    for version in old:
        fileio.rmtree(os.path.join(model_base, str(version)))
    return old
