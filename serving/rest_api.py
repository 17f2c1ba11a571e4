"""TF Serving's REST API (port 8501), independent of the HTTP server: routes, model status,
metadata and `:predict`. Request formats: row ("instances") and columnar ("inputs")."""

from __future__ import annotations

import json
import re

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from schemas import model_version
from serving import errors, tensors
from serving.predictor import SIGNATURE_DEF_FIELD, Predictor

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<metadata>/metadata)?(?::(?P<verb>[a-z]+))?$"
)


def _spec(match) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=match["name"], version_label=match["label"] or "")
    if match["version"]:
        version = model_version.parse_version(match["version"])
        if version is None:
            raise errors.invalid(f"version {errors.clip(match['version'])} is not an int64")
        spec.version.value = version
    return spec


def _columns(body: dict, signature) -> dict:
    """Input key -> JSON value, from the row or columnar format."""
    single = next(iter(signature.inputs)) if len(signature.inputs) == 1 else None
    if ("instances" in body) == ("inputs" in body):
        raise errors.invalid('the request must have exactly one of "instances" or "inputs"')
    if "inputs" in body:
        value = body["inputs"]
        if single is not None and not (isinstance(value, dict) and set(value) == {single}):
            return {single: value}
        if not isinstance(value, dict):
            raise errors.invalid('"inputs" must be an object keyed by input name')
        return value
    rows = body["instances"]
    if not isinstance(rows, list):
        raise errors.invalid('"instances" must be a list')
    if single is not None and not (rows and isinstance(rows[0], dict) and single in rows[0]):
        return {single: rows}
    if not all(isinstance(row, dict) for row in rows):
        raise errors.invalid('"instances" must be a list of objects keyed by input name')
    names = set().union(*(row.keys() for row in rows)) if rows else set(signature.inputs)
    for i, row in enumerate(rows):
        if set(row) != names:
            raise errors.invalid(f"instance {i}: inputs {sorted(row)} differ from {sorted(names)}")
    return {name: [row[name] for row in rows] for name in names}


def predict_json(predictor: Predictor, spec: model_pb2.ModelSpec, body: dict) -> dict:
    """Answers a REST `:predict` body."""
    if not isinstance(body, dict):
        raise errors.invalid("the request body must be a JSON object")
    version = spec.version.value if spec.HasField("version") else None
    signature_name = body.get("signature_name", "")
    with predictor.signature(spec.name, version, spec.version_label, signature_name) as held:
        servable, signature = held
        columns = _columns(body, signature)
        predictor.check_input_names(signature, columns.keys())
        arrays = {
            name: tensors.json_to_array(name, value, signature.inputs[name], predictor.limits)
            for name, value in columns.items()
        }
        results = predictor.run(servable, signature, arrays)
        outputs = {k: tensors.array_to_json(v) for k, v in results.items()}
        if "inputs" in body:
            return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        rows = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(rows)]}


def _get(predictor: Predictor, match) -> dict:
    spec = _spec(match)
    if match["metadata"]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=[SIGNATURE_DEF_FIELD]
        )
        response = predictor.metadata(request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
        return {
            "model_spec": json_format.MessageToDict(response.model_spec),
            "metadata": {SIGNATURE_DEF_FIELD: json_format.MessageToDict(signature_defs)},
        }
    status = predictor.status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec))
    return json_format.MessageToDict(status, including_default_value_fields=True)


def handle(predictor: Predictor, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """Answers one REST request; returns (HTTP status, JSON payload). Never raises.

    Args:
        method: "GET" or "POST" (anything else: 501).
        path: the URL path without the query string.
        body: the request body (POST).
    """
    try:
        match = _ROUTE.match(path)
        if match is None:
            raise errors.not_found(f"Malformed request: {method} {errors.clip(path)}")
        if method == "GET" and not match["verb"]:
            return 200, _get(predictor, match)
        if method != "POST" or match["verb"] != "predict" or match["metadata"]:
            raise errors.ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"{method} {errors.clip(path)}"
            )
        try:
            parsed = json.loads(body or b"null")
        except ValueError as exc:
            raise errors.invalid(f"JSON parse error: {errors.clip(exc)}") from None
        return 200, predict_json(predictor, _spec(match), parsed)
    except Exception as exc:  # noqa: BLE001 - every request gets an answer
        error = errors.from_exception(exc)
        return error.http_status, {"error": error.message}
