"""Gated, atomic, versioned pushes to a TF Serving model base path (pure logic).

Layout, as TF Serving's file-system source reads it: `<serving_dir>/<model_name>/<version>/`
with an int64 version named in ASCII digits (`schemas.model_version`). A version is written
beside its final place (a dot-prefixed temporary directory TF Serving ignores), checked
against its manifest, and committed, so a reader never sees a half-written or corrupt
version; the newest `keep` versions are kept, older ones removed.

The commit depends on the file system. On a local (POSIX) path it is one directory rename,
atomic. On an object store (gs://, s3://, and any `scheme://` tf.io.gfile offers, e.g.
ram://) there are no directories: a "rename" is a copy and a delete per object, in listing
order, so `saved_model.pb` could appear before `variables/` is complete (TF's RAM file
system even loses the files). There the staged files are copied into `<version>/` one by
one with `saved_model.pb` last: a directory without it is no version to TF Serving's
SavedModel loader, to serving/ or to `versions` below. Pruning on an object store deletes
`saved_model.pb` first, for the same reason.

Symbolic links: the push copies regular files only (a link in the model is an error that
names it, before anything is written), and prune never follows one: a version directory
that is a link is skipped and reported, and a link inside a version is removed as a link,
so nothing outside the serving directory is read or deleted.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Mapping

from absl import logging
from tfx.dsl.io import fileio

from schemas import model_version

SAVED_MODEL = "saved_model.pb"


def _is_local(path: str) -> bool:
    return "://" not in path


def refusals(blessings: Mapping[str, bool | None]) -> list[str]:
    """Why a push must not happen: one line per gate that is missing or not blessed."""
    reasons = []
    for gate, blessed in blessings.items():
        if blessed is None:
            reasons.append(f"{gate}: no verdict (the gate's artifact is missing)")
        elif not blessed:
            reasons.append(f"{gate}: not blessed")
    return reasons


def _exists(path: str) -> bool:
    if _is_local(path):
        return os.path.exists(path)  # False for a link loop, where gfile raises
    return fileio.exists(path)


def version_dirs(model_base: str) -> dict[int, str]:
    """version -> directory name, for the version directories holding a SavedModel."""
    if not _exists(model_base):
        return {}
    found = {}
    for name in fileio.listdir(model_base):
        name = name.rstrip("/")
        version = model_version.parse_version(name)
        if version is not None and _exists(os.path.join(model_base, name, SAVED_MODEL)):
            if version not in found or name == str(version):
                found[version] = name
    return found


def versions(model_base: str) -> list[int]:
    """The versions under model_base that hold a SavedModel, ascending."""
    return sorted(version_dirs(model_base))


def next_version(model_base: str, now: float | None = None) -> int:
    """The Unix time in seconds (as TFX's Pusher does), or latest + 1 if that is not newer."""
    now = int(time.time() if now is None else now)
    existing = versions(model_base)
    return max(now, existing[-1] + 1) if existing else now


def check_no_links(src: str) -> None:
    """Raises ValueError naming the first symbolic link under a local src (none is followed)."""
    if not _is_local(src):
        return
    if os.path.islink(src):
        raise ValueError(f"{src} is a symbolic link: the push copies regular files only")
    for dirpath, dirnames, filenames in os.walk(src):  # os.walk does not follow links
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                raise ValueError(
                    f"{path} is a symbolic link (to {os.readlink(path)}): the push copies "
                    "regular files only; nothing was pushed"
                )


def _copy_tree(src: str, dst: str) -> None:
    fileio.makedirs(dst)
    for name in fileio.listdir(src):
        name = name.rstrip("/")
        source, target = os.path.join(src, name), os.path.join(dst, name)
        if _is_local(source) and os.path.islink(source):
            raise ValueError(f"{source} is a symbolic link: the push copies regular files only")
        if fileio.isdir(source):
            _copy_tree(source, target)
        else:
            fileio.copy(source, target)


def stage(src: str, model_base: str, version: int) -> str:
    """Copies the SavedModel at src beside its final place; returns the temporary path.

    Raises:
        FileNotFoundError: src holds no SavedModel.
        FileExistsError: the version exists already (nothing is overwritten).
        ValueError: src holds a symbolic link (nothing is written).
        ManifestError: the copy differs from the model's manifest (the copy is removed).
    """
    if not _exists(os.path.join(src, SAVED_MODEL)):
        raise FileNotFoundError(f"no {SAVED_MODEL} in {src}: nothing to push")
    if version in version_dirs(model_base) or _exists(os.path.join(model_base, str(version))):
        raise FileExistsError(f"version {version} exists under {model_base}; not overwriting it")
    check_no_links(src)
    tmp = os.path.join(model_base, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(src, tmp)
        if model_version.has_manifest(tmp):
            count = model_version.verify_manifest(tmp)
            logging.info("VersionedPusher: %d files match the manifest in %s", count, tmp)
        else:
            logging.warning("VersionedPusher: %s has no manifest: copy not verified", src)
    except BaseException:
        discard(tmp)
        raise
    return tmp


def _relative_files(root: str) -> list[str]:
    """The files under root as relative paths, sorted."""
    found, root = [], root.rstrip("/")
    for dirpath, _, filenames in fileio.walk(root):
        rel_dir = dirpath.rstrip("/")[len(root) :].strip("/")
        found += [os.path.join(rel_dir, name) if rel_dir else name for name in filenames]
    return sorted(found)


def commit(tmp: str, model_base: str, version: int) -> str:
    """Moves a staged version into place; a reader sees it complete or not at all.

    Local path: one rename (atomic). Object store: the files are copied with
    saved_model.pb last, then the stage is removed; a failed copy removes what it wrote.
    """
    final = os.path.join(model_base, str(version))
    if _is_local(tmp):
        fileio.rename(tmp, final)
        return final
    files = _relative_files(tmp)
    ordered = [f for f in files if f != SAVED_MODEL] + [f for f in files if f == SAVED_MODEL]
    try:
        for rel in ordered:
            target = os.path.join(final, rel)
            fileio.makedirs(os.path.dirname(target))
            fileio.copy(os.path.join(tmp, rel), target)
    except BaseException:
        _remove_version(final)
        raise
    discard(tmp)
    return final


def _remove_version(path: str) -> None:
    """Removes a version directory of an object store, saved_model.pb first."""
    pb = os.path.join(path, SAVED_MODEL)
    if fileio.exists(pb):
        fileio.remove(pb)
    if fileio.exists(path):
        fileio.rmtree(path)


def discard(tmp: str) -> None:
    """Removes a staged version that will not be committed."""
    if fileio.exists(tmp):
        fileio.rmtree(tmp)


def push(src: str, model_base: str, version: int) -> str:
    """stage + commit: <model_base>/<version> appears complete or not at all."""
    tmp = stage(src, model_base, version)
    try:
        return commit(tmp, model_base, version)
    except BaseException:
        discard(tmp)
        raise


def prune(model_base: str, keep: int) -> tuple[list[int], list[str]]:
    """Removes all but the newest `keep` versions, never following a symbolic link.

    Returns:
        (removed versions, one line per version skipped: a link, kept as it is).
    """
    if keep < 1:
        raise ValueError(f"keep_versions must be >= 1, got {keep}")
    dirs = version_dirs(model_base)
    removed, skipped = [], []
    for version in sorted(dirs)[:-keep]:
        path = os.path.join(model_base, dirs[version])
        if not _is_local(path):
            _remove_version(path)
        elif os.path.islink(path):
            skipped.append(f"{path}: a symbolic link (to {os.readlink(path)}), not removed")
            logging.warning("VersionedPusher: prune skipped %s", skipped[-1])
            continue
        else:
            shutil.rmtree(path)  # removes links inside as links (does not follow them)
        removed.append(version)
    return removed, skipped
