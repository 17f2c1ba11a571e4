"""`python -m serving` (or `python -m serving.server`): a TF-Serving-compatible gRPC (and
REST) model server; flags in serving/flags.py.

    python -m serving --port 8500 --rest-port 8501 --model-name recommender \
        --model-base-path .work/serving/recommender [--poll-seconds 2] [--batching]

SIGTERM or Ctrl-C: stop accepting, finish the requests in flight, exit 0.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import text_format

from serving import manager as manager_lib
from serving import protos, servable, service, tensors, tls
from serving.batching import Batcher
from serving.budget import RowBudget
from serving.flags import parse_args
from serving.predictor import Predictor
from serving.rest import RestOptions, RestServer

log = logging.getLogger("serving")
__all__ = ["ModelServer", "main", "parse_args"]


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
        budget = RowBudget(args.max_inflight_rows, args.budget_timeout_seconds)
        self.predictor = Predictor({args.model_name: self.manager}, limits, self.batcher, budget)
        self.ssl = tls.read_ssl_config(args.ssl_config_file) if args.ssl_config_file else None
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
        args = self.args
        address = f"{args.host}:{args.port}"
        if self.ssl:
            port = self.grpc.add_secure_port(address, tls.grpc_credentials(self.ssl))
        else:
            port = self.grpc.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        self.grpc.start()
        scheme = "TLS" if self.ssl else "plaintext"
        log.info("gRPC (%s): listening on %s:%d (model %r)", scheme, args.host, port,
                 args.model_name)  # fmt: skip
        if args.rest_port:
            options = RestOptions(
                max_body_bytes=args.max_message_mb << 20,
                idle_timeout_s=args.rest_idle_timeout_seconds,
                body_timeout_s=args.rest_body_timeout_seconds,
                max_connections=args.rest_max_connections,
                workers=args.rest_workers,
            )
            context = tls.ssl_context(self.ssl) if self.ssl else None
            self.rest = RestServer(self.predictor, args.host, args.rest_port, options, context)
            log.info("REST (%s): listening on %s:%d", "HTTPS" if self.ssl else "HTTP",
                     args.host, self.rest.port)  # fmt: skip
        return port

    def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish, then releases everything."""
        log.info("shutting down: finishing requests in flight")
        done = self.grpc.stop(self.args.grace_seconds)  # returns at once; both drain together
        if self.rest:
            self.rest.stop(self.args.grace_seconds)
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
    manager_lib.limit_malloc_arenas()  # before the server's threads start: bounded RSS over swaps
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
