"""TF-Serving-compatible local server, TF Serving client and serving configuration (DESIGN §5).

Modules:
    errors: a ServingError carries the gRPC status code every transport answers with;
        client-supplied names are clipped and server paths redacted in messages.
    tensors: TensorProto / JSON <-> numpy conversion and validation against a SignatureDef.
    servable: one loaded SavedModel version (ScaNN ops registered when the model needs them);
        unloading destroys its tables.
    signature: one callable signature and its fast call path.
    manager: the file-system source: version names as TF Serving's, latest-version policy,
        manifest check, load retries, polling, hot swap, unloading.
    batching: optional server-side batching of concurrent requests.
    budget: the memory budget (rows in flight across requests).
    predictor: transport-independent Predict / metadata / status logic.
    service: the gRPC PredictionService and ModelService servicers (own request parsing).
    rest_api: the REST API of TF Serving's port 8501 (routes, JSON formats).
    rest: its HTTP server (tornado: body cap, timeouts, connection cap, graceful stop).
    tls: TF Serving's --ssl_config_file for gRPC and REST.
    flags: the command-line flags.
    server: `python -m serving` (or `python -m serving.server`).
    client: `python -m serving.client query`, works against any TF Serving.
    protos: TF Serving's BatchingParameters message (not shipped by tensorflow-serving-api).
    config/: TF Serving's models.config and batching parameters (used by deploy/k8s/).
"""
