"""Version names and the integrity manifest, on real files."""

import hashlib
import json
import os

import pytest

from schemas import model_version as mv


def test_parse_version_is_tf_servings_rule():
    assert mv.parse_version("0") == 0
    assert mv.parse_version("0017") == 17
    assert mv.parse_version("17/") == 17  # listings of GCS end directories with "/"
    assert mv.parse_version(str(2**63 - 1)) == 2**63 - 1
    for name in ("²", "١٢", "+1", "-1", " 1", "1.0", "", str(2**63), "99999999999999999999"):
        assert mv.parse_version(name) is None, name


def _version(root):
    os.makedirs(root / "variables")
    (root / "saved_model.pb").write_bytes(b"abc")
    (root / "variables" / "variables.index").write_bytes(b"")
    return root


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    root = _version(tmp_path / "1")
    manifest = mv.write_manifest(str(root))
    # SHA-256("abc") and SHA-256("") are the FIPS 180-2 test vectors.
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert manifest == {
        "format": 1,
        "files": {
            "saved_model.pb": {"size": 3, "sha256": abc},
            "variables/variables.index": {"size": 0, "sha256": empty},
        },
    }
    assert hashlib.sha256(b"abc").hexdigest() == abc
    with open(root / mv.MANIFEST_FILE) as f:
        assert json.load(f) == manifest
    assert mv.verify_manifest(str(root)) == 2


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "saved_model.pb").write_bytes(b"ab"), "saved_model.pb: 2 bytes"),
        (lambda r: (r / "saved_model.pb").write_bytes(b"abd"), "saved_model.pb: SHA-256"),
        (lambda r: os.remove(r / "variables" / "variables.index"), "variables.index: listed"),
        (lambda r: (r / "extra").write_bytes(b""), "extra: not listed"),
        (lambda r: (r / mv.MANIFEST_FILE).write_text("{"), "unreadable manifest"),
    ],
)
def test_verify_names_the_damaged_file(tmp_path, damage, message):
    root = _version(tmp_path / "1")
    mv.write_manifest(str(root))
    damage(root)
    with pytest.raises(mv.ManifestError, match=message):
        mv.verify_manifest(str(root))
