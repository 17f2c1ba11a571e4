"""`python -m serving.server`: a TF-Serving-compatible gRPC (and REST) model server.

    python -m serving.server --port 8500 --rest-port 8501 --model-name recommender \
        --model-base-path .work/serving/recommender [--poll-seconds 2] [--batching]

SIGTERM or Ctrl-C: stop accepting, finish the requests in flight, exit 0.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import text_format

from serving import manager as manager_lib
from serving import protos, servable, service, tensors
from serving.batching import Batcher
from serving.predictor import Predictor
from serving.rest import start_rest_server

log = logging.getLogger("serving")
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config")
DEFAULT_BATCHING_FILE = os.path.join(CONFIG_DIR, "batching_parameters.txt")


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags (TF Serving's names, with dashes)."""
    p = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.split("\n")[0])
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
    args = p.parse_args(argv)
    try:
        args.version_labels = dict(
            (k, int(v)) for k, v in (kv.split("=") for kv in args.version_labels.split(",") if kv)
        )
    except ValueError:
        p.error(f"--version-labels: expected label=version[,...], got {args.version_labels!r}")
    return args


def make_batcher(args: argparse.Namespace) -> Batcher | None:
    """The Batcher from the batching parameters file and overrides, or None."""
    if not args.batching:
        return None
    try:
        with open(args.batching_parameters_file) as f:
            options = protos.batcher_options(protos.parse_batching_parameters(f.read()))
    except (OSError, text_format.ParseError) as exc:
        path = args.batching_parameters_file
        raise SystemExit(f"--batching-parameters-file {path}: {exc}") from None
    if args.max_batch_size:
        options["max_batch_size"] = args.max_batch_size
    if args.batch_timeout_micros is not None:
        options["batch_timeout_micros"] = args.batch_timeout_micros
    log.info("batching: %s", options)
    return Batcher(**options)


class ModelServer:
    """The running server: model manager, gRPC server, optional REST server and batcher."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.manager = manager_lib.ModelManager(
            args.model_name,
            args.model_base_path,
            args.poll_seconds,
            args.version_labels,
            loader=functools.partial(servable.Servable, executor=args.tf_executor),
            max_retries=args.max_num_load_retries,
            retry_interval=args.load_retry_interval_micros / 1e6,
        )
        limits = tensors.Limits(max_batch=args.max_batch, max_history=args.max_history)
        self.batcher = make_batcher(args)
        self.predictor = Predictor({args.model_name: self.manager}, limits, self.batcher)
        self.stats = service.RequestStats()
        max_bytes = args.max_message_mb << 20
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        service.add_services(self.grpc, self.predictor, self.stats)
        self.rest = None

    def start(self) -> int:
        """Loads the model, then listens; returns the gRPC port."""
        self.manager.start()
        port = self.grpc.add_insecure_port(f"{self.args.host}:{self.args.port}")
        if port == 0:
            raise OSError(f"cannot listen on {self.args.host}:{self.args.port}")
        self.grpc.start()
        log.info("gRPC: listening on %s:%d (model %r)", self.args.host, port, self.args.model_name)
        if self.args.rest_port:
            self.rest = start_rest_server(self.predictor, self.args.host, self.args.rest_port)
            log.info("REST: listening on %s:%d", self.args.host, self.rest.server_address[1])
        return port

    def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish, then releases everything."""
        log.info("shutting down: finishing requests in flight")
        done = self.grpc.stop(self.args.grace_seconds)
        if self.rest:
            self.rest.shutdown()
            self.rest.server_close()  # joins the request threads
        done.wait()
        if self.batcher:
            self.batcher.stop()
        self.manager.stop()
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.stats.counts.items()))
        log.info("stopped; gRPC requests answered: %s", counts or "none")


def main(argv=None) -> int:
    """Runs until SIGTERM / SIGINT; returns the exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    server = ModelServer(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    server.start()
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
