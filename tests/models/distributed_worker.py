"""One worker of a multi-worker training test: `python -m tests.models.distributed_worker
'<json>'` runs trainers' run_fns in turn, each with the FnArgs of the JSON
([{"run_fn": "models.x.trainer", "fn_args": {...}}, ...]), under the TF_CONFIG of the
environment, as a Vertex AI or TFJob worker does (one trainer per process there; here
both share the process's one MultiWorkerMirroredStrategy). Kept free of TF imports
before the trainers', so the first strategy comes before any TF op."""

import importlib
import json
import sys


def main(argv: list[str]) -> int:
    jobs = json.loads(argv[0])
    from tfx.components.trainer.fn_args_utils import FnArgs

    for job in jobs:
        trainer = importlib.import_module(job["run_fn"])
        trainer.run_fn(FnArgs(**job["fn_args"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
