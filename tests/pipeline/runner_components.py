"""A TFX component for tests/pipeline/test_parallel_runner.py, importable by the
runner's worker processes: it records when and in which process it ran."""

import json
import os
import time

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import String


@component
def Step(  # noqa: N802 -- a TFX component, named like a class
    name: Parameter[str],
    seconds: Parameter[float],
    log_dir: Parameter[str],
    fail: Parameter[int],
    out: OutputArtifact[String],
):
    """Sleeps `seconds`, then writes <log_dir>/<name>.json: start, end, pid; raises if `fail`."""
    start = time.time()
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f"step {name} failed on purpose")
    with open(os.path.join(log_dir, f"{name}.json"), "w") as f:
        json.dump({"start": start, "end": time.time(), "pid": os.getpid()}, f)
    out.value = name
