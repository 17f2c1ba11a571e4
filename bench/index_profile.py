"""B3: what one ScaNN TF-op search spends beyond ScaNN's own search.

Times one-query searches through nested layers of the call, from ScaNN's pybind search up
to the polymorphic tf.function the bench historically timed; layers run in blocks that
rotate across rounds (load hits them alike); medians over the queries. Each layer's cost
is its median minus the layer below; a no-op tf.function gives TF's per-call floor. A
cProfile of the served calls names the frames that cost most.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time

import numpy as np

# (layer, what it adds over the layer before it)
LAYERS = (
    ("native", "ScaNN's pybind single-query search (the kernel's own work)"),
    (
        "op_eager",
        "the ScannSearchBatched TF op run eagerly on a live handle: TF op "
        "dispatch, tensors in/out, the batched-parallel path for a batch of 1",
    ),
    (
        "function",
        "the op in a tf.function (live handle captured), called flat on the "
        "single-threaded executor: TF's per-call function runtime",
    ),
    (
        "served",
        "the saved searcher's function, called so (serving/servable.py's call): "
        "TensorsToScann's handle lookup and the 9 state-variable reads, per call",
    ),
    ("structured", "the same called with structured arguments (Python argument binding)"),
    ("tf_function", "the polymorphic tf.function (trace-cache lookup, default executor)"),
    ("tf_function_numpy", "the indices copied out to numpy (what the bench's 'scann' times)"),
)


def _layers(searcher, pybind, params, k: int) -> dict:
    """Layer name -> one-query callable taking (query numpy [dim], query tf [1, dim])."""
    import tensorflow as tf

    from models.search.searchers import _scann_ops
    from serving.signature import SINGLE_THREADED, _flat_caller

    ops, handle = _scann_ops(), searcher.state.recreate_handle()
    leaves, pre = params.num_leaves_to_search, searcher.pre_reorder
    kw = dict(final_num_neighbors=k, pre_reorder_num_neighbors=pre, leaves_to_search=leaves)
    spec = [tf.TensorSpec([None, None], tf.float32, name="queries")]
    captured = tf.function(
        lambda q: ops.scann_search_batched(handle, q, k, pre, leaves, True), input_signature=spec
    )
    noop = tf.function(lambda q: (tf.shape(q), tf.shape(q)), input_signature=spec)
    concrete = searcher.search.get_concrete_function()

    def flat(fn):
        call = _flat_caller(fn.get_concrete_function(), {"queries": None})
        return on_single_thread(lambda t: call({"queries": t}))

    def on_single_thread(fn):
        def run(q, t):
            with tf.experimental.function_executor_type(SINGLE_THREADED):
                return fn(t)

        return run

    return {
        "native": lambda q, t: pybind.search(q, **kw),
        "op_eager": lambda q, t: ops.scann_search_batched(handle, t, k, pre, leaves, True),
        "function": flat(captured),
        "served": flat(searcher.search),
        "structured": on_single_thread(concrete),
        "tf_function": lambda q, t: searcher.search(t),
        "tf_function_numpy": lambda q, t: np.asarray(searcher.search(t)[0]),
        "noop_served": flat(noop),
        "noop_tf_function": lambda q, t: noop(t),
    }


def profile_tf_op(searcher, pybind, params, queries: np.ndarray, k: int, rounds: int = 4):
    """Medians (us) per layer, each layer's increment over the one below, and the top
    Python frames (cProfile tottime) of `served` calls.

    Args:
        searcher: a ScannSearcher (TF ops); pybind: scann's pybind searcher, same config.
        params: the IndexParams both were built with; queries: [Q, dim] float32.
    """
    import tensorflow as tf

    layers = _layers(searcher, pybind, params, k)
    inputs = [(q, tf.constant(q[None, :])) for q in queries]
    for fn in layers.values():  # warm-up: trace, build the handle
        fn(*inputs[0])
    times = {name: [] for name in layers}
    names = list(layers)
    for r, block in enumerate(np.array_split(np.arange(len(inputs)), rounds)):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = layers[name]
            for i in block:
                start = time.perf_counter()
                fn(*inputs[i])
                times[name].append(time.perf_counter() - start)
    median = {name: 1e6 * float(np.median(t)) for name, t in times.items()}
    order = [name for name, _ in LAYERS]
    steps = {
        name: {"what": what, "us": median[name] - (median[order[i - 1]] if i else 0.0)}
        for i, (name, what) in enumerate(LAYERS)
    }
    return {
        "median_us": median,
        "steps_us": steps,
        "python_frames": _python_frames(layers["served"], inputs[:200]),
    }


def _python_frames(fn, inputs, top: int = 8) -> list[dict]:
    """The `top` functions by own time (tottime) over calls of fn on inputs, us per call."""
    profiler = cProfile.Profile()
    profiler.enable()
    for args in inputs:
        fn(*args)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [
        {
            "function": f"{name} ({os.path.basename(file)}:{line})",
            "us_per_call": 1e6 * tt / len(inputs),
        }
        for (file, line, name), (_, _, tt, _, _) in rows
    ]


def breakdown_lines(profile: dict) -> list[str]:
    """The profile as printed lines: layer, increment, cumulative median."""
    lines = []
    for name, step in profile["steps_us"].items():
        lines.append(
            f"  {name:<18} +{step['us']:7.1f} us  (= {profile['median_us'][name]:7.1f})  "
            f"{step['what']}"
        )
    floor = profile["median_us"]
    lines.append(
        f"  TF's floor per call (a no-op function): called as served {floor['noop_served']:.1f}"
        f" us, as a tf.function {floor['noop_tf_function']:.1f} us"
    )
    frames = ", ".join(
        f"{f['function']} {f['us_per_call']:.0f}" for f in profile["python_frames"][:4]
    )
    lines.append(f"  cProfile of served calls, own us per call (means, load spikes in): {frames}")
    return lines
