"""TF-Serving-compatible local server, TF Serving client and serving configuration (DESIGN §5).

Modules:
    errors: a ServingError carries the gRPC status code every transport answers with.
    tensors: TensorProto / JSON <-> numpy conversion and validation against a SignatureDef.
    servable: one loaded SavedModel version (ScaNN ops registered when the model needs them).
    manager: the file-system source: latest-version policy, polling, hot swap, unloading.
    batching: optional server-side batching of concurrent requests.
    predictor: transport-independent Predict / metadata / status logic.
    service: the gRPC PredictionService and ModelService servicers.
    rest: the REST API of TF Serving's port 8501 (stdlib http.server).
    server: `python -m serving.server`.
    client: `python -m serving.client query`, works against any TF Serving.
    protos: TF Serving's BatchingParameters message (not shipped by tensorflow-serving-api).
    config/: TF Serving's models.config and batching parameters (used by deploy/k8s/).
"""
