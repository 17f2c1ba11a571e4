"""One loaded SavedModel version: its SignatureDefs, callable signatures and in-flight count.

The combined model has a `scann` variant using ScaNN's custom TF ops (`Scann>...`). Those
ops are registered by importing `scann`, done only when the model's op list needs them,
so a missing `scann` package fails only such a model, with a message that says so.

Executor: a signature whose graph has no control flow runs on TF's single-threaded
executor, inline in the request's thread. TF's default executor hands every ready op to
its inter-op thread pool, which costs CPU on the combined model's ~1000 small ops: B4's
"model capacity" (bench/serving.py, 8 threads, no gRPC) reports both executors. Requests
still run side by side, one per gRPC thread. A graph with Switch/Merge frames or
functional If/While keeps the default executor, as does one whose first call the
single-threaded executor rejects.

Batch limit: an export may state `max_batch` in assets.extra/export.json, the largest batch
its graph runs within its memory budget (the serving model's searcher has no in-graph
chunking loop, see models/search/searchers.py). A larger request is run in
slices of that size and the outputs concatenated, so it is answered, not refused.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import numpy as np
import tensorflow as tf
from tensorflow.python.checkpoint import trackable_view
from tensorflow.python.ops import gen_resource_variable_ops, resource_variable_ops
from tensorflow.python.saved_model import loader_impl
from tensorflow.python.trackable import resource as resource_lib
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from schemas import serving as contract
from serving import errors
from serving.signature import (  # noqa: F401 - Signature and CONTROL_FLOW_OPS re-exported
    CONTROL_FLOW_OPS,
    SINGLE_THREADED,
    Signature,
    control_flow_ops,
    rejected_by_single_threaded_executor,
)
from serving.tensors import TensorSig, batch_size

log = logging.getLogger(__name__)

SCANN_OP_PREFIX = "Scann>"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
WARMUP_FILE = os.path.join(contract.ASSETS_EXTRA, contract.WARMUP_FILE)
MAX_WARMUP_RECORDS = 1000  # as TF Serving
DEFAULT_SIGNATURE = contract.SERVING_DEFAULT
EXPORT_INFO_FILE = os.path.join(contract.ASSETS_EXTRA, contract.EXPORT_INFO)
MAX_BATCH_KEY = "max_batch"
# --tf-executor choices: AUTO picks the single-threaded executor where the graph allows it.
AUTO, DEFAULT = "auto", "default"
_scann_lock = threading.Lock()


def read_max_batch(path: str) -> int | None:
    """`max_batch` from the version's assets.extra/export.json (None: absent or unusable)."""
    try:
        with open(os.path.join(path, EXPORT_INFO_FILE)) as f:
            value = json.load(f).get(MAX_BATCH_KEY)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def ensure_scann_ops() -> None:
    """Registers ScaNN's TF ops (`import scann`).

    Raises:
        RuntimeError: scann is not installed or its ops library does not load.
    """
    with _scann_lock:
        try:
            import scann  # noqa: F401 - the import registers the Scann> ops
        except Exception as exc:  # noqa: BLE001 - ImportError or a failing .so load
            raise RuntimeError(
                "this model uses ScaNN TF ops (Scann>*) but `import scann` failed "
                f"({type(exc).__name__}: {exc}); install scann==1.3.2 or serve the "
                "portable variant"
            ) from exc


def has_saved_model(path: str) -> bool:
    """Whether `path` holds a complete SavedModel (its saved_model.pb is renamed in last)."""
    return any(os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES)


class Servable:
    """A loaded SavedModel version.

    Attributes:
        version: the integer version.
        path: the version directory.
        signature_defs: the MetaGraphDef's SignatureDefMap proto, as TF Serving returns it.
        signatures: callable signature key -> Signature.
        needs_scann: whether the graph uses ScaNN ops.
        max_batch: the export's batch limit (None: none stated); larger batches run in slices.

    Args:
        executor: AUTO (the single-threaded executor where the graph allows it) or DEFAULT.
    """

    def __init__(self, path: str, version: int, executor: str = AUTO):
        if executor not in (AUTO, DEFAULT):
            raise ValueError(f"executor must be {AUTO!r} or {DEFAULT!r}, got {executor!r}")
        self.path = path
        self.version = version
        self.max_batch = read_max_batch(path)
        saved_model = loader_impl.parse_saved_model(path)
        if not saved_model.meta_graphs:
            raise ValueError(
                "saved_model.pb holds no MetaGraphDef (an empty or truncated file): "
                "not a SavedModel"
            )
        meta_graph = saved_model.meta_graphs[0]
        self.signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, sig_def in meta_graph.signature_def.items():
            self.signature_defs.signature_def[key].CopyFrom(sig_def)
        ops = {op.name for op in meta_graph.meta_info_def.stripped_op_list.op}
        self.needs_scann = any(op.startswith(SCANN_OP_PREFIX) for op in ops)
        if self.needs_scann:
            ensure_scann_ops()
        self._loaded = tf.saved_model.load(path)
        self.signatures = {}
        for key, fn in self._loaded.signatures.items():
            sig_def = meta_graph.signature_def[key]
            self.signatures[key] = Signature(
                name=key,
                inputs={k: TensorSig.from_tensor_info(v) for k, v in sig_def.inputs.items()},
                outputs={k: TensorSig.from_tensor_info(v) for k, v in sig_def.outputs.items()},
                fn=fn,
                executor=SINGLE_THREADED if executor == AUTO and not control_flow_ops(fn) else "",
            )
        self._inflight = 0
        self._idle = threading.Condition()
        self.warmup_count = self._warm_up()

    def _warm_up(self) -> int:
        """Replays `assets.extra/tf_serving_warmup_requests` (PredictionLog TFRecords) as TF
        Serving does before a version becomes available; returns the number replayed.

        Raises:
            RuntimeError: a warm-up request fails (the version then fails to load).
        """
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if not entry.HasField("predict_log"):
                continue
            request = entry.predict_log.request
            key = request.model_spec.signature_name or DEFAULT_SIGNATURE
            try:
                arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                self.run(self.signatures[key], arrays)
            except Exception as exc:  # noqa: BLE001 - reported as a failed load
                raise RuntimeError(f"warm-up request {count} ({key}) failed: {exc!r}") from exc
            count += 1
        return count

    def run(self, signature: Signature, inputs: dict) -> dict:
        """Calls a signature.

        Args:
            signature: one of `self.signatures`.
            inputs: input key -> np.ndarray, already validated.

        Returns:
            output key -> np.ndarray.
        """
        rows = batch_size(inputs, signature.inputs) if self.max_batch else None
        if self.max_batch and rows is not None and rows > self.max_batch:
            parts = [
                self._call(
                    signature, {k: v[start : start + self.max_batch] for k, v in inputs.items()}
                )
                for start in range(0, rows, self.max_batch)
            ]
            return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        return self._call(signature, inputs)

    def _call(self, signature: Signature, inputs: dict) -> dict:
        try:
            if signature.executor:
                try:
                    with tf.experimental.function_executor_type(signature.executor):
                        outputs = signature.call(inputs)
                except tf.errors.OpError as exc:
                    if not rejected_by_single_threaded_executor(exc):
                        raise
                    log.warning(
                        "%s: signature %s falls back to TF's default executor: %s",
                        self.path,
                        signature.name,
                        str(exc).splitlines()[0],
                    )
                    signature.executor = ""
                    outputs = signature.call(inputs)
            else:
                outputs = signature.call(inputs)
        except UnicodeDecodeError as exc:
            # TF failed to decode an op's error message that quotes request bytes (e.g. an
            # unparsable tf.Example): the op rejected the input.
            raw = exc.object if isinstance(exc.object, bytes) else str(exc).encode()
            message = raw.decode("utf-8", "replace")
            raise errors.invalid(f"the model rejected the input: {message}") from None
        return {key: np.asarray(value) for key, value in outputs.items()}

    def acquire(self) -> None:
        """Counts one in-flight request (the manager calls it under its lock)."""
        with self._idle:
            self._inflight += 1

    def release(self) -> None:
        """Ends one in-flight request."""
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until no request uses this servable; True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def table_handles(self) -> list:
        """Resource handles of the loaded model's tables (restored resources that are not
        variables: hash tables, vocabularies), each an eager resource tensor."""
        if self._loaded is None:
            return []
        handles = []
        for obj in trackable_view.TrackableView(self._loaded).descendants():
            if isinstance(obj, resource_lib.CapturableResource) and not isinstance(
                obj, resource_variable_ops.BaseResourceVariable
            ):
                handle = obj._resource_handle  # noqa: SLF001 - None when never created
                if handle is not None:
                    handles.append(handle)
        return handles

    def unload(self) -> None:
        """Drops the loaded model and destroys its tables (call once idle).

        Variables and functions are freed with their Python objects, but TF never destroys
        a restored table: a SavedModel's hash table is created under a load-unique shared
        name in the device's resource manager, and `RestoredResource` has no destructor
        (TF's TODO b/124205571). Without this, every unloaded version's vocabularies stayed
        in memory (~13 MiB per swap for a 200k-key table).
        """
        for handle in self.table_handles():
            gen_resource_variable_ops.destroy_resource_op(handle, ignore_lookup_error=True)
        self.signatures = {}
        self._loaded = None
