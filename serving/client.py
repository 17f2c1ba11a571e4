"""`python -m serving.client query`: ask any TF Serving (this repo's server or the real one).

    python -m serving.client query --host localhost --port 8500 --model-name recommender \
        --user 42 --history 50 172 133 -k 10 [--signature serving_default|retrieve|rank] \
        [--candidates 1 2 3] [--json] [--catalog items.tsv]

The request is built from the model's own SignatureDef (GetModelMetadata), so only the
inputs the signature declares are sent, with the ranks it declares. Titles come from a
TSV `item_id<TAB>title[<TAB>genres]`: `--catalog`, else `<base>/<version>/assets.extra/
items.tsv` when the model's base path is local.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from schemas import features as F
from schemas import serving as C
from schemas.serving import FINAL_SCORES, ITEM_IDS, RETRIEVAL_SCORES, SCORES

ITEMS_TSV = os.path.join(C.ASSETS_EXTRA, C.ITEMS_TSV)


def load_catalog(path: str) -> dict:
    """item_id -> (title, primary genre or F.UNKNOWN) from a TSV; {} when absent."""
    catalog = {}
    if not path or not os.path.isfile(path):
        return catalog
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if cols and cols[0]:
                genres = cols[2].split(F.GENRE_SEPARATOR) if len(cols) > 2 and cols[2] else []
                catalog[cols[0]] = (cols[1] if len(cols) > 1 else "", (genres or [F.UNKNOWN])[0])
    return catalog


def signature_def(stub, model: str, signature: str, timeout: float, version=None):
    """The SignatureDef of `signature` and the served version, from GetModelMetadata."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    response = stub.GetModelMetadata(request, timeout=timeout)
    defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(defs)
    if signature not in defs.signature_def:
        raise SystemExit(
            f"model {model} has no signature {signature!r}: {sorted(defs.signature_def)}"
        )
    return defs.signature_def[signature], response.model_spec.version.value


def input_values(args: argparse.Namespace, catalog: dict) -> dict:
    """Feature name -> one request row (scalars, or lists for list features)."""
    history = args.history or [F.PAD]
    candidates = args.candidates or []

    def genre(item: str) -> str:
        return F.PAD if item == F.PAD else catalog.get(item, ("", F.UNKNOWN))[1]

    return {
        F.USER_ID: args.user,
        F.AGE: args.age,
        F.GENDER: args.gender,
        F.OCCUPATION: args.occupation,
        F.TIMESTAMP: args.timestamp or int(time.time()),
        F.HISTORY_ITEM_IDS: history,
        F.HISTORY_GENRES: [genre(i) for i in history],
        F.ITEM_ID: candidates,
        F.PRIMARY_GENRE: [genre(i) for i in candidates],
        F.GENRES: [[genre(i)] for i in candidates],
        F.YEAR: [F.MISSING_INT] * len(candidates),
    }


def _is_candidate_list(info) -> bool:
    """A [batch, C] string input the client has no other value for: the candidate ids."""
    return info.dtype == tf.string.as_datatype_enum and len(info.tensor_shape.dim) == 2


def build_request(sig_def, name: str, signature: str, values: dict) -> predict_pb2.PredictRequest:
    """A PredictRequest with batch 1 for every input of `sig_def`.

    Raises:
        SystemExit: the signature needs an input this client cannot fill.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, info in sig_def.inputs.items():
        if key not in values and _is_candidate_list(info):
            values = {**values, key: values[F.ITEM_ID]}
        elif key not in values:
            raise SystemExit(
                f"signature {signature!r} needs input {key!r}, which this client lacks"
            )
        dtype = tf.as_dtype(info.dtype)
        array = np.array(
            [values[key]], dtype=object if dtype == tf.string else dtype.as_numpy_dtype
        )
        rank = len(info.tensor_shape.dim)
        if not info.tensor_shape.unknown_rank and array.ndim != rank:
            array = array.reshape(array.shape + (1,) * (rank - array.ndim))
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
    return request


def ranked_items(outputs: dict, candidates: list, k: int, catalog: dict) -> list[dict]:
    """The top-k items of row 0: item_id, title, score (and retrieval_score, final_score
    when given)."""
    if ITEM_IDS in outputs:
        ids = [i.decode("utf-8", "replace") for i in outputs[ITEM_IDS][0]]
        order = range(len(ids))
    else:  # rank: caller-supplied candidates
        ids = candidates
        order = np.argsort(-outputs[SCORES][0], kind="stable")
    items = []
    for i in [i for i in order if ids[i] != F.PAD][:k]:  # F.PAD: fewer items than slots
        item = {"item_id": ids[i], "title": catalog.get(ids[i], ("", ""))[0]}
        for key in (SCORES, RETRIEVAL_SCORES, FINAL_SCORES):
            if key in outputs:
                item[key[:-1]] = float(outputs[key][0][i])
        items.append(item)
    return items


def format_table(result: dict) -> str:
    """The human-readable answer."""
    lines = [
        f"{result['model']} v{result['version']} ({result['signature']}) for user "
        f"{result['user']}, history of {len(result['history'])} items:",
        f"{'rank':>4}  {'item_id':<10} {'ranker':>9} {'retrieval':>9} {'final':>9}  title",
    ]
    cell = lambda item, key: f"{item[key]:9.4f}" if key in item else f"{'':9}"
    for n, item in enumerate(result["items"], 1):
        scores = " ".join(cell(item, k) for k in ("score", "retrieval_score", "final_score"))
        lines.append(f"{n:>4}  {item['item_id']:<10} {scores}  {item['title']}")
    return "\n".join(lines)


def _catalog_path(args: argparse.Namespace, version: int) -> str:
    return args.catalog or os.path.join(args.model_base_path, str(version), ITEMS_TSV)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    """A TLS channel when --ssl-root-cert is given (with a client certificate if given)."""
    target = f"{args.host}:{args.port}"
    if not args.ssl_root_cert:
        return grpc.insecure_channel(target)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    key = read(args.ssl_client_key) if args.ssl_client_key else None
    cert = read(args.ssl_client_cert) if args.ssl_client_cert else None
    return grpc.secure_channel(
        target, grpc.ssl_channel_credentials(read(args.ssl_root_cert), key, cert)
    )


def query(args: argparse.Namespace) -> dict:
    """Sends one query; returns the machine-readable result."""
    with _channel(args) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        sig_def, version = signature_def(
            stub, args.model_name, args.signature, args.timeout, args.version
        )
        catalog = load_catalog(_catalog_path(args, version))
        values = input_values(args, catalog)
        request = build_request(sig_def, args.model_name, args.signature, values)
        if args.version is not None:
            request.model_spec.version.value = args.version
        response = stub.Predict(request, timeout=args.timeout)
    if response.model_spec.version.value != version:  # swapped meanwhile: titles of the answer
        catalog = load_catalog(_catalog_path(args, response.model_spec.version.value))
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    return {
        "model": args.model_name,
        "version": response.model_spec.version.value,
        "signature": response.model_spec.signature_name,
        "user": args.user,
        "history": args.history,
        "items": ranked_items(outputs, args.candidates or [], args.k, catalog),
    }


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(prog="python -m serving.client")
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("query", help="recommend items for one user")
    q.add_argument("--host", default="localhost")
    q.add_argument("--port", type=int, default=8500)
    q.add_argument("--model-name", default="recommender")
    q.add_argument("--model-base-path", default=".work/serving/recommender")
    q.add_argument("--version", type=int, help="a specific version (default: the latest)")
    q.add_argument("--signature", default=C.SERVING_DEFAULT)
    q.add_argument("--user", required=True)
    q.add_argument("--history", nargs="*", default=[], help="item ids, oldest first")
    q.add_argument("--candidates", nargs="*", default=[], help="item ids for --signature rank")
    q.add_argument("-k", type=int, default=10)
    q.add_argument("--age", type=int, default=F.MISSING_INT)
    q.add_argument("--gender", default=F.UNKNOWN)
    q.add_argument("--occupation", default=F.UNKNOWN)
    q.add_argument("--timestamp", type=int, default=0, help="seconds (default: now)")
    q.add_argument("--catalog", help="TSV item_id<TAB>title[<TAB>genres]")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--timeout", type=float, default=10.0)
    q.add_argument("--ssl-root-cert", help="PEM file of the CA that signed the server: use TLS")
    q.add_argument("--ssl-client-cert", help="PEM client certificate (server's client_verify)")
    q.add_argument("--ssl-client-key", help="PEM key of --ssl-client-cert")
    args = p.parse_args(argv)
    if args.signature == C.RANK and not args.candidates:
        p.error("--signature rank needs --candidates")
    return args


def main(argv=None) -> int:
    """Runs the CLI; 0 on success, 1 on an RPC error."""
    args = parse_args(argv)
    try:
        result = query(args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
