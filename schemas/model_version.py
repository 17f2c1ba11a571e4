"""The on-disk contract of a served model version, shared by the assembler (writes the
manifest), the pusher (verifies it after copying) and the server (verifies it before
loading, and names versions as TF Serving does).

A version is `<model_base>/<version>/` with `<version>` ASCII digits that fit an int64
(TF Serving's `strings::safe_strto64`); anything else is not a version. The manifest,
`assets.extra/manifest.json`, lists every other file of the version with its size and
SHA-256, so a truncated or half-copied file is caught before it is served.

Paths go through `tf.io.gfile`, so the pusher can verify a push to GCS as well.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re

import tensorflow as tf

INT64_MAX = (1 << 63) - 1
MANIFEST_FILE = "assets.extra/manifest.json"
MANIFEST_FORMAT = 1
_DIGITS = re.compile(r"[0-9]+")
_CHUNK = 1 << 20


class ManifestError(ValueError):
    """A version's files do not match its manifest (the message names the file)."""


def parse_version(name: str) -> int | None:
    """The version number of a directory name, or None if it is not a version.

    Args:
        name: a directory name, e.g. "17" or "0017" (both 17, as TF Serving reads them).

    Returns:
        The int64 version; None for non-ASCII digits ("²"), signs, or a value past 2^63 - 1.
    """
    name = name.rstrip("/")
    if not _DIGITS.fullmatch(name):
        return None
    value = int(name)
    return value if value <= INT64_MAX else None


def _files(root: str) -> list[str]:
    """Relative paths of the regular files under root, sorted (the manifest excluded)."""
    found = []
    for dirpath, _, filenames in tf.io.gfile.walk(root):
        rel_dir = posixpath.relpath(dirpath.replace("\\", "/"), root.replace("\\", "/"))
        for filename in filenames:
            rel = filename if rel_dir == "." else posixpath.join(rel_dir, filename)
            if rel != MANIFEST_FILE:
                found.append(rel)
    return sorted(found)


def file_digest(path: str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of one file, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_manifest(version_dir: str) -> dict:
    """Writes `assets.extra/manifest.json` listing every file of a finished export.

    Returns:
        The manifest: {"format": 1, "files": {relative path: {"size", "sha256"}}}.
    """
    files = {}
    for rel in _files(version_dir):
        size, sha = file_digest(posixpath.join(version_dir, rel))
        files[rel] = {"size": size, "sha256": sha}
    manifest = {"format": MANIFEST_FORMAT, "files": files}
    path = posixpath.join(version_dir, MANIFEST_FILE)
    tf.io.gfile.makedirs(posixpath.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


def has_manifest(version_dir: str) -> bool:
    """Whether the version has a manifest."""
    return tf.io.gfile.exists(posixpath.join(version_dir, MANIFEST_FILE))


def read_manifest(version_dir: str) -> dict:
    """The parsed manifest.

    Raises:
        ManifestError: unreadable, not JSON, or not the expected layout.
    """
    try:
        with tf.io.gfile.GFile(posixpath.join(version_dir, MANIFEST_FILE)) as f:
            manifest = json.load(f)
        files = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"format {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
        for rel, entry in files.items():
            if not isinstance(entry.get("size"), int) or not isinstance(entry.get("sha256"), str):
                raise ValueError(f"entry {rel!r} lacks an integer size or a sha256")
    except (tf.errors.OpError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{MANIFEST_FILE}: unreadable manifest ({exc})") from None
    return manifest


def verify_manifest(version_dir: str) -> int:
    """Checks every file of the version against its manifest; returns the file count.

    Raises:
        ManifestError: naming the first file that is missing, unlisted, of another size
            or with another SHA-256 (sizes are compared first: a half-written file fails
            without being hashed).
    """
    expected = read_manifest(version_dir)["files"]
    present = set(_files(version_dir))
    missing = sorted(set(expected) - present)
    if missing:
        raise ManifestError(f"{missing[0]}: listed in {MANIFEST_FILE} but missing")
    unlisted = sorted(present - set(expected))
    if unlisted:
        raise ManifestError(f"{unlisted[0]}: not listed in {MANIFEST_FILE}")
    for rel in sorted(expected):
        size = tf.io.gfile.stat(posixpath.join(version_dir, rel)).length
        if size != expected[rel]["size"]:
            raise ManifestError(f"{rel}: {size} bytes, the manifest says {expected[rel]['size']}")
    for rel in sorted(expected):
        _, sha = file_digest(posixpath.join(version_dir, rel))
        if sha != expected[rel]["sha256"]:
            raise ManifestError(f"{rel}: SHA-256 differs from {MANIFEST_FILE}")
    return len(expected)
