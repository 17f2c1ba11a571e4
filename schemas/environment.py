"""The process environment the stack needs, set before TensorFlow is imported.

TFRS 0.7 needs Keras 2: `TF_USE_LEGACY_KERAS=1` must be in the environment when
TensorFlow is first imported (docs/architecture.md, "The stack"). The entry points
(`python -m pipeline`, `python -m serving`, the console scripts) call `prepare` first
thing, so that running them outside make is as quiet as `make run`:

- quiet (the default): TF's C++ INFO and WARNING lines off (`TF_CPP_MIN_LOG_LEVEL=2`),
  Python warnings off in this process and in its children (`PYTHONWARNINGS=ignore`:
  Beam and the parallel runner's workers), and `import_tensorflow` drops the three
  "Unable to register cuFFT/cuDNN/cuBLAS factory" lines TF's CUDA plugins print on a
  machine without a GPU (every other line it prints still shows);
- verbose (`--verbose`): everything TF, absl and Python print.

Values already in the environment win, except TF_USE_LEGACY_KERAS, which is required.
This module imports nothing heavy, so that it can run before TensorFlow is imported.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

REQUIRED = {"TF_USE_LEGACY_KERAS": "1"}
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
VERBOSE = {"TF_CPP_MIN_LOG_LEVEL": "0"}
VERBOSE_FLAG = "--verbose"
# Printed by TF's CUDA plugins at import on every machine without a GPU (harmless).
HARMLESS = re.compile(r"Unable to register cu(FFT|DNN|BLAS) factory")


def prepare(verbose: bool = False, environ=None) -> dict:
    """Sets the environment variables TF needs (and quiets it unless verbose).

    Args:
        verbose: leave every log line and warning on.
        environ: the mapping to update (default os.environ).

    Returns:
        The variables this call set, name -> value.
    """
    environ = os.environ if environ is None else environ
    wanted = {**(VERBOSE if verbose else QUIET)}
    changed = {}
    for name, value in REQUIRED.items():
        if environ.get(name) != value:
            environ[name] = changed[name] = value
    for name, value in wanted.items():
        if name not in environ:
            environ[name] = changed[name] = value
    if environ is os.environ and not verbose and environ.get("PYTHONWARNINGS") == "ignore":
        warnings.simplefilter("ignore")
    return changed


def split_verbose(argv: list[str]) -> tuple[bool, list[str]]:
    """(whether VERBOSE_FLAG is among argv, argv without it)."""
    return VERBOSE_FLAG in argv, [a for a in argv if a != VERBOSE_FLAG]


def import_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow; unless verbose, without the HARMLESS lines its C++ side prints.

    TF writes them to file descriptor 2 directly, so fd 2 is captured during the import
    and every other line is written back to stderr.
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    sys.stderr.write("".join(x for x in text.splitlines(True) if not HARMLESS.search(x)))
    sys.stderr.flush()
