"""The quiet entry points: python -m pipeline / python -m serving outside make."""

import importlib
import os
import subprocess
import sys

import pytest

from schemas import environment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_prepare_sets_what_tf_needs_and_keeps_the_users_choices():
    env = {"TF_USE_LEGACY_KERAS": "0", "PYTHONWARNINGS": "default"}
    changed = environment.prepare(environ=env)
    assert env["TF_USE_LEGACY_KERAS"] == "1"  # required: TFRS needs Keras 2
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2" and env["PYTHONWARNINGS"] == "default"
    assert changed == {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    verbose = {}
    environment.prepare(verbose=True, environ=verbose)
    assert verbose == {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}


def test_split_verbose_takes_the_flag_anywhere():
    assert environment.split_verbose(["run", "--verbose", "--data", "x"]) == (
        True,
        ["run", "--data", "x"],
    )
    assert environment.split_verbose(["run"]) == (False, ["run"])


def _run(*args):
    """Runs the interpreter as a user would outside make: no TF variables, no PYTHONPATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("module", ["pipeline", "serving"])
def test_entry_point_outside_make_prints_nothing_on_stderr(module):
    done = _run("-m", module, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout
    assert done.stderr == ""


def test_verbose_shows_tensorflows_own_lines():
    done = _run("-m", "serving", "--verbose", "--help")
    assert done.returncode == 0 and "usage" in done.stdout
    assert "tensorflow" in done.stderr or "cuda" in done.stderr.lower(), done.stderr


def test_the_server_module_without_the_entry_point_is_noisy():
    # What the entry point fixes: the same import without its environment.
    done = _run("-m", "serving.server", "--help")
    assert done.returncode == 0 and done.stderr != ""


def test_console_scripts_name_callable_entry_points():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        section = f.read().split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    lines = [line.split("#")[0] for line in section.splitlines()]
    scripts = dict(
        (k.strip(), v.strip().strip('"')) for k, v in (x.split("=") for x in lines if "=" in x)
    )
    assert set(scripts) == {"recsys", "recsys-serve", "recsys-query"}
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target
