"""Where Transform's time goes: read passes over BehaviorSequenceGen's training split.

Each phase runs alone in this process (Beam phases on the in-process DirectRunner) and
prints its seconds:

- `tfxio`: read and decode the examples into Arrow as Transform does (TFXIO), projected
  to the columns Transform applies to, then to the columns its analyzers read.
- `analyze`: `tft_beam.AnalyzeDataset` over the analyzers' columns (what Transform still
  does with `materialize=False`).
- `tfdata`: one pass of `models.common.data.make_dataset` (what the trainers run) over the
  raw examples, and over Transform's materialized ones when the root has them
  (`--materialize-transform`).

    python -m bench.transform_read PIPELINE_ROOT [--phases tfxio,analyze,tfdata]

PIPELINE_ROOT is a run's `pipeline_root` (the latest BehaviorSequenceGen and Transform
outputs under it are read), e.g. one of `python -m pipeline run --data csv:DIR --until
Transform`.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ("tfxio", "analyze", "tfdata")


def _latest(root: str, *parts: str) -> str | None:
    found = sorted(glob.glob(os.path.join(root, *parts, "*")), key=os.path.getmtime)
    return found[-1] if found else None


def _beam_phases(phases, train_files, schema_path) -> None:
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.public import tfxio

    from models.preprocessing import preprocessing_fn

    with open(schema_path) as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    source = tfxio.TFExampleRecord(file_pattern=train_files, schema=schema)
    specs = source.TensorAdapter().OriginalTypeSpecs()
    columns = {
        "transform": tft.get_transform_input_columns(preprocessing_fn, specs),
        "analyze": tft.get_analyze_input_columns(preprocessing_fn, specs),
    }
    print(f"analyzer columns: {sorted(columns['analyze'])}")

    def timed(label, build):
        start = time.time()
        with beam.Pipeline() as p, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
            build(p)
        print(f"{label}: {time.time() - start:.1f} s", flush=True)

    if "tfxio" in phases:
        for name, cols in columns.items():
            projected = source.Project(cols)
            timed(
                f"tfxio read+decode ({name} columns, {len(cols)})",
                lambda p, s=projected: p | s.BeamSource() | beam.combiners.Count.Globally(),
            )
    if "analyze" in phases:
        projected = source.Project(columns["analyze"])

        def analyze(p):
            data = (p | projected.BeamSource(), projected.TensorAdapterConfig())
            fn = data | tft_beam.AnalyzeDataset(preprocessing_fn)
            _ = fn | tft_beam.WriteTransformFn(tempfile.mkdtemp())

        timed("analyze", analyze)


def _tfdata_phase(root: str, train_files) -> None:
    import tensorflow_transform as tft

    from models.common import data

    output = tft.TFTransformOutput(_latest(root, "Transform", "transform_graph"))
    kinds = {"raw": train_files}
    materialized = _latest(root, "Transform", "transformed_examples")
    if materialized and glob.glob(os.path.join(materialized, "Split-train", "*")):
        kinds["materialized"] = [os.path.join(materialized, "Split-train", "*")]
    for kind, files in kinds.items():
        start, n = time.time(), 0
        for batch in data.make_dataset(files, output, 1024, shuffle=False, num_epochs=1):
            n += int(batch["label"].shape[0])
        print(f"tfdata pass ({kind}): {n} examples {time.time() - start:.1f} s", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="a run's pipeline_root")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {PHASES}")
    args = p.parse_args(argv)
    phases = args.phases.split(",")
    if unknown := sorted(set(phases) - set(PHASES)):
        p.error(f"unknown phases {unknown}: known {PHASES}")
    sys.path.insert(0, REPO)
    examples = _latest(args.root, "BehaviorSequenceGen", "examples")
    schema = _latest(args.root, "ImportSchemaGen", "schema")
    if not examples or not schema:
        p.error(f"{args.root}: no BehaviorSequenceGen examples or ImportSchemaGen schema")
    train_files = sorted(glob.glob(os.path.join(examples, "Split-train", "*")))
    if set(phases) & {"tfxio", "analyze"}:
        _beam_phases(phases, train_files, os.path.join(schema, "schema.pbtxt"))
    if "tfdata" in phases:
        _tfdata_phase(args.root, train_files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
