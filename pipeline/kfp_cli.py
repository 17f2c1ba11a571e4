"""`python -m pipeline kfp compile|submit|schedule|runs`: Kubeflow Pipelines from the command line.

Examples:
    python -m pipeline kfp compile --image REGISTRY/recsys-tfx:1 \\
        --pipeline-root gs://BUCKET/root --data-root gs://BUCKET/data
    python -m pipeline kfp submit --host http://localhost:8080 --param train_steps=500
    python -m pipeline kfp schedule --host H --cron "0 3 * * *" --param update=full
    python -m pipeline kfp schedule --host H --cron "30 * * * *" --param update=incremental
    python -m pipeline kfp runs --host H
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pipeline import config as C
from pipeline import kfp_client
from pipeline import kfp_params as P

DEFAULT_EXPERIMENT = "recsys"


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True, help="the KFP API server, e.g. http://localhost:8080")
    p.add_argument("--token", help="a bearer token (e.g. `gcloud auth print-access-token`)")


def _upload_args(p: argparse.ArgumentParser) -> None:
    _server_args(p)
    p.add_argument("--package", default=C.KubeflowConfig.output, help="the compiled IR (JSON)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument("--pipeline-name", help="default: the compiled pipeline's name")
    p.add_argument("--version-name", help="upload a new version with this name")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a runtime parameter (repeatable), e.g. update=incremental, train_steps=500, "
        "data_root=gs://b/data, ranking_min_auc=0.6, retrieval_min_hr_at_10=0.05",
    )


def _compile_args(p: argparse.ArgumentParser) -> None:
    k = C.KubeflowConfig
    p.add_argument("--image", default=k.image, help="the pipeline image (deploy/Dockerfile)")
    p.add_argument("--code-root", default=k.code_root, help="the repository's path in the image")
    p.add_argument("--output", default=k.output)
    p.add_argument("--name", default=C.PipelineConfig.name)
    p.add_argument("--pipeline-root", required=True, help="e.g. gs://BUCKET/recsys/root")
    p.add_argument("--data-root", required=True, help="default of the data_root parameter")
    p.add_argument("--format", default=C.CSV, choices=C.SOURCES, help="the tables' format")
    p.add_argument("--column-mapping", default="{}", help="JSON {table: {canonical: column}}")
    p.add_argument("--train-steps", type=int, default=0, help="default of train_args")
    p.add_argument("--ranking-min-auc", type=float, default=C.PipelineConfig.ranking_min_auc)
    p.add_argument("--update", choices=("full", "incremental"), default="full")
    p.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        help="Beam pipeline arg for the Beam stages, e.g. --beam-arg=--runner=DataflowRunner",
    )
    p.add_argument("--no-cache", action="store_true")
    vertex = p.add_argument_group(
        "Vertex AI training", "run both Trainers as Vertex AI CustomJobs (needs --vertex-project)"
    )
    vertex.add_argument("--vertex-project", help="GCP project of the training jobs")
    vertex.add_argument("--vertex-region", default="us-central1")
    vertex.add_argument("--vertex-machine-type", default=C.VertexTraining.machine_type)
    vertex.add_argument(
        "--vertex-workers",
        type=int,
        default=C.VertexTraining.workers,
        help="replicas per job; > 1 trains under MultiWorkerMirroredStrategy",
    )
    vertex.add_argument("--vertex-accelerator", default="", help="e.g. NVIDIA_TESLA_T4")
    vertex.add_argument("--vertex-accelerator-count", type=int, default=0)


def add_parser(sub) -> None:
    """Adds the `kfp` command group to the CLI's subparsers."""
    kfp = sub.add_parser("kfp", help="Kubeflow Pipelines: compile, submit, schedule, runs")
    cmds = kfp.add_subparsers(dest="kfp_command", required=True)
    _compile_args(cmds.add_parser("compile", help="write the KFP v2 / Vertex AI IR (JSON)"))
    submit = cmds.add_parser("submit", help="upload the pipeline (or a new version); start a run")
    _upload_args(submit)
    submit.add_argument("--run-name", help="default: <pipeline>-<time>")
    schedule = cmds.add_parser("schedule", help="upload (if changed) and create a recurring run")
    _upload_args(schedule)
    schedule.add_argument("--cron", required=True, help='e.g. "0 3 * * *" (daily at 03:00)')
    schedule.add_argument("--job-name", help="default: <pipeline>-<update mode>")
    schedule.add_argument("--max-concurrency", type=int, default=1)
    runs = cmds.add_parser("runs", help="list recent runs and their states")
    _server_args(runs)
    runs.add_argument("--experiment", help="only this experiment's runs")
    runs.add_argument("--limit", type=int, default=20)


def _compile(args) -> int:
    print(f"compiling '{args.name}' for Kubeflow V2 (importing TFX takes ~40 s) ...", flush=True)
    from models.retrieval.config import RetrievalConfig
    from pipeline import kubeflow_v2_runner

    data = C.DataConfig(
        source=args.format, path=args.data_root, column_mapping=json.loads(args.column_mapping)
    )
    config = C.PipelineConfig(
        data=data,
        retrieval=RetrievalConfig().with_overrides(mode=args.update),
        pipeline_root=args.pipeline_root,
        name=args.name,
        train_steps=args.train_steps,
        ranking_min_auc=args.ranking_min_auc,
        beam_pipeline_args=tuple(args.beam_arg),
        enable_cache=not args.no_cache,
        vertex_training=vertex_training(args),
    )
    kubeflow = C.KubeflowConfig(image=args.image, code_root=args.code_root, output=args.output)
    job = kubeflow_v2_runner.compile_pipeline(config, kubeflow)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"wrote {kubeflow.output}: {len(tasks)} tasks, image {kubeflow.image}")
    for name, ptype in sorted(P.input_types(job).items()):
        default = job["runtimeConfig"].get("parameterValues", {}).get(name)
        print(f"  parameter {name:<32} {ptype:<15} default {default!r}")
    return 0


def vertex_training(args) -> C.VertexTraining | None:
    """The Vertex AI training shape of the compile flags, or None without --vertex-project;
    ValueError naming the flag's field when another --vertex-* flag is given alone."""
    if not args.vertex_project:
        given = [f"--vertex-{n}" for n in ("workers", "accelerator") if getattr(args, f"vertex_{n}")
                 not in (C.VertexTraining.workers, "")]  # fmt: skip
        if given:
            raise ValueError(f"{', '.join(given)} need --vertex-project")
        return None
    return C.VertexTraining(
        project=args.vertex_project,
        region=args.vertex_region,
        image=args.image,
        machine_type=args.vertex_machine_type,
        workers=args.vertex_workers,
        accelerator_type=args.vertex_accelerator,
        accelerator_count=args.vertex_accelerator_count,
    )


def _load(args) -> tuple[dict, dict]:
    """The compiled PipelineJob and the checked --param values."""
    try:
        with open(args.package) as f:
            job = json.load(f)
    except FileNotFoundError as e:
        raise ValueError(f"--package {args.package}: not found; run `make kfp-compile`") from e
    if "pipelineSpec" not in job:
        raise ValueError(f"--package {args.package}: not a PipelineJob JSON (no pipelineSpec)")
    return job, P.parse_params(args.param, P.input_types(job))


def _upload(args, job: dict):
    client = kfp_client.connect(args.host, args.token)
    name = args.pipeline_name or job["pipelineSpec"]["pipelineInfo"]["name"]
    pid, vid, what = kfp_client.ensure_version(client, job["pipelineSpec"], name, args.version_name)
    print(f"{what}: pipeline {name} ({pid}), version {vid}")
    return client, name, pid, vid, kfp_client.experiment_id(client, args.experiment)


def _submit(args) -> int:
    job, params = _load(args)
    client, name, pid, vid, exp = _upload(args, job)
    run = client.run_pipeline(
        exp,
        args.run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        params=params,
        pipeline_id=pid,
        version_id=vid,
        pipeline_root=job.get("runtimeConfig", {}).get("gcsOutputDirectory"),
    )
    print(f"started run {run.run_id} in experiment {args.experiment} with {params or 'defaults'}")
    return 0


def _schedule(args) -> int:
    job, params = _load(args)
    cron = P.kfp_cron(args.cron)
    client, name, pid, vid, exp = _upload(args, job)
    mode = params.get(P.UPDATE_MODE, "default")
    recurring = client.create_recurring_run(
        exp,
        args.job_name or f"{name}-{mode}",
        cron_expression=cron,
        params=params,
        pipeline_id=pid,
        version_id=vid,
        max_concurrency=args.max_concurrency,
        no_catchup=True,
        pipeline_root=job.get("runtimeConfig", {}).get("gcsOutputDirectory"),
    )
    print(f"created recurring run {recurring.recurring_run_id}: cron '{cron}' with {params}")
    return 0


def _runs(args) -> int:
    client = kfp_client.connect(args.host, args.token)
    exp = None
    if args.experiment:
        exp = client.get_experiment(experiment_name=args.experiment).experiment_id
    response = client.list_runs(page_size=args.limit, sort_by="created_at desc", experiment_id=exp)
    runs = response.runs or []
    print(f"{'created':<26} {'state':<10} {'run id':<38} name")
    for run in runs:
        print(f"{str(run.created_at):<26} {str(run.state):<10} {run.run_id:<38} {run.display_name}")
    print(f"{len(runs)} run(s)")
    return 0


def main(args: argparse.Namespace) -> int:
    """Runs one `kfp` command; errors are one line on stderr and a non-zero exit code."""
    command = {"compile": _compile, "submit": _submit, "schedule": _schedule, "runs": _runs}
    try:
        return command[args.kfp_command](args)
    except (ValueError, kfp_client.KfpError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 (transport and API errors: one line each)
        if args.kfp_command == "compile":
            raise
        print(f"error: {kfp_client.describe(e, args.host)}", file=sys.stderr)
        return 1
