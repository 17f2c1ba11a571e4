"""A callable signature of a loaded SavedModel, and how it is called fast.

Executor: a signature whose graph has no control flow runs on TF's single-threaded
executor, inline in the request's thread (see serving/servable.py).
"""

from __future__ import annotations

import dataclasses
import functools

import tensorflow as tf
from tensorflow.python.distribute import distribute_utils
from tensorflow.python.eager.polymorphic_function import concrete_function

SINGLE_THREADED = "SINGLE_THREADED_EXECUTOR"
CONTROL_FLOW_OPS = frozenset(
    {"Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond", "RefSwitch", "RefMerge"}
    | {"RefEnter", "RefExit", "RefNextIteration", "If", "StatelessIf", "While"}
    | {"StatelessWhile", "Case", "StatelessCase"}
)


@dataclasses.dataclass
class Signature:
    """One callable signature.

    Attributes:
        name: the signature key, e.g. "serving_default".
        inputs: input key -> TensorSig.
        outputs: output key -> TensorSig.
        fn: the loaded concrete function; fn(**{key: array}) -> {key: tensor}.
        call: {key: array} -> {key: tensor}, the fastest way to call `fn`.
        flat: whether `call` skips the structured-argument binding.
        executor: the TF executor `fn` runs on: SINGLE_THREADED or "" (TF's default).
    """

    name: str
    inputs: dict
    outputs: dict
    fn: object
    call: object = None
    flat: bool = False
    executor: str = ""

    def __post_init__(self):
        self.call = _flat_caller(self.fn, self.inputs)
        self.flat = self.call is not None
        if not self.flat:
            self.call = lambda inputs: self.fn(**inputs)


def _flat_caller(fn, inputs: dict):
    """Calls `fn` with its flat inputs (dict keys sorted, as tf.nest flattens them), skipping
    the per-call binding and casting of structured arguments (~0.5 ms). None when `fn` does
    not have the expected layout: the placeholders are named after the input keys.

    The captured inputs (the model's variables and tables, ~130 for the combined model) are
    listed once, and a loaded function is called through ConcreteFunction's own _call_flat:
    the loader's wrapper re-resolves every captured input per call for tf.distribute, which
    cost ~0.5 ms per request (cProfile of Predictor.predict, 100k items) and never applies
    here (a servable is loaded outside any distribution strategy, checked below)."""
    order = sorted(inputs)
    call_flat = getattr(fn, "_call_flat", None)
    captured = getattr(fn, "captured_inputs", None)
    if call_flat is None or captured is None or len(fn.inputs) != len(order) + len(captured):
        return None
    if [t.name.split(":")[0] for t in fn.inputs[: len(order)]] != order:
        return None
    captured = list(captured)
    if isinstance(fn, concrete_function.ConcreteFunction) and not any(
        distribute_utils.is_distributed_variable(x) for x in captured
    ):
        call_flat = functools.partial(concrete_function.ConcreteFunction._call_flat, fn)

    def call(arrays: dict) -> dict:
        outputs = call_flat([tf.convert_to_tensor(arrays[k]) for k in order], captured)
        if isinstance(outputs, dict):
            return outputs
        return tf.nest.pack_sequence_as(fn.structured_outputs, outputs, expand_composites=True)

    return call


def control_flow_ops(fn) -> set:
    """The control-flow op types in a concrete function's graph and the functions it calls."""
    graph = fn.graph.as_graph_def()
    ops = {n.op for n in graph.node}
    ops.update(n.op for f in graph.library.function for n in f.node_def)
    return ops & CONTROL_FLOW_OPS


def rejected_by_single_threaded_executor(exc: Exception) -> bool:
    """Whether a TF error is the single-threaded executor refusing the graph (e.g.
    FailedPrecondition "Single-threaded executor does not support switch op")."""
    message = str(exc).lower()
    return "single-threaded executor" in message or "singlethreadedexecutor" in message
