"""Command-line flags of `python -m serving` (TF Serving's names, with dashes)."""

from __future__ import annotations

import argparse
import os

from serving import manager as manager_lib
from serving import servable

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config")
DEFAULT_BATCHING_FILE = os.path.join(CONFIG_DIR, "batching_parameters.txt")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (TF Serving's names, with dashes)."""
    p = argparse.ArgumentParser(
        prog="python -m serving", description="A TF-Serving-compatible model server."
    )
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    p.add_argument("--rest-port", type=int, default=0, help="REST port (0: no REST API)")
    p.add_argument("--model-name", default="recommender")
    p.add_argument("--model-base-path", default=".work/serving/recommender")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="file-system poll interval")
    p.add_argument("--version-labels", default="", help="e.g. stable=3,canary=4")
    p.add_argument(
        "--max-num-load-retries",
        type=int,
        default=manager_lib.MAX_NUM_LOAD_RETRIES,
        help="retries of a failed version load (a changed file retries at once)",
    )
    p.add_argument(
        "--load-retry-interval-micros",
        type=int,
        default=int(manager_lib.LOAD_RETRY_INTERVAL_S * 1e6),
        help="interval between load retries",
    )
    p.add_argument("--batching", action="store_true", help="merge concurrent requests")
    p.add_argument("--batching-parameters-file", default=DEFAULT_BATCHING_FILE)
    p.add_argument("--max-batch-size", type=int, help="overrides the batching file")
    p.add_argument("--batch-timeout-micros", type=int, help="overrides the batching file")
    p.add_argument("--max-batch", type=int, default=1024, help="request limit: batch size")
    p.add_argument("--max-history", type=int, default=1000, help="request limit: history length")
    p.add_argument("--max-message-mb", type=int, default=64, help="largest request, MiB")
    p.add_argument("--workers", type=int, default=32, help="gRPC handler threads")
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=1,
        help="TF intra-op threads (0: TF's default, one per core). 1, the default, runs each "
        "request's ops on one core and concurrent requests side by side: on the combined "
        "model's small ops (B4, with this default and a cheaper Dice: 7.0 instead of 7.75 server "
        "CPU ms per request, 245 instead of 216 req/s at concurrency 8, 100k items; "
        "bench/results/serving.json at commit 2b0db92 against its parent)",
    )
    p.add_argument("--inter-op-threads", type=int, default=0, help="TF inter-op threads (0: TF)")
    p.add_argument(
        "--tf-executor",
        choices=(servable.AUTO, servable.DEFAULT),
        default=servable.AUTO,
        help="auto: each request's ops run inline in its gRPC thread (TF's single-threaded "
        "executor) where the signature's graph has no control flow; default: TF's executor, "
        "which hands ops to the inter-op pool (B4's model capacity measures both)",
    )
    p.add_argument("--grace-seconds", type=float, default=30.0, help="shutdown grace period")
    p.add_argument(
        "--ssl-config-file",
        default="",
        help="TF Serving's SSLConfig text proto (server_key, server_cert PEM text; optional "
        "custom_ca, client_verify): TLS on gRPC and REST",
    )
    p.add_argument(
        "--max-inflight-rows",
        type=int,
        default=2048,
        help="memory budget: most request rows run at once across requests (a larger batch "
        "waits to run alone; a wait over --budget-timeout-seconds: RESOURCE_EXHAUSTED)",
    )
    p.add_argument("--budget-timeout-seconds", type=float, default=30.0)
    p.add_argument("--rest-workers", type=int, default=8, help="REST threads running requests")
    p.add_argument("--rest-max-connections", type=int, default=128, help="beyond: 503")
    p.add_argument(
        "--rest-idle-timeout-seconds",
        type=float,
        default=30.0,
        help="close a connection that sends no complete request header for this long",
    )
    p.add_argument("--rest-body-timeout-seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    try:
        args.version_labels = dict(
            (k, int(v)) for k, v in (kv.split("=") for kv in args.version_labels.split(",") if kv)
        )
    except ValueError:
        p.error(f"--version-labels: expected label=version[,...], got {args.version_labels!r}")
    return args
