"""B3's ScaNN searchers beside the TF-op one: ScaNN's own (pybind) search, the TF op called
as the server calls a signature, and their leaves_to_search sweeps."""

from __future__ import annotations

import dataclasses

import numpy as np

K, BATCH = 10, 250


def pybind_searcher(items: np.ndarray, params):
    """ScaNN's pybind searcher with the index's config (reference latency)."""
    import scann

    builder = scann.scann_ops_pybind.builder(items, K, "dot_product").tree(
        num_leaves=params.num_leaves,
        num_leaves_to_search=params.num_leaves_to_search,
        training_sample_size=params.training_sample_size,
    )
    builder = builder.score_ah(
        params.dimensions_per_block,
        anisotropic_quantization_threshold=params.anisotropic_threshold,
        training_sample_size=params.training_sample_size,
    )
    return builder.reorder(params.reorder).build()


class Pybind:
    """Adapter: pybind searcher -> search(queries) like the tf.Module searchers."""

    numpy_input = True

    def __init__(self, searcher, params):
        self.searcher, self.params, self.k = searcher, params, K
        self.max_batch = BATCH  # ScaNN's own batched search bounds its memory

    def search(self, queries):
        q = np.asarray(queries, np.float32)
        kwargs = dict(
            final_num_neighbors=K,
            pre_reorder_num_neighbors=self.params.reorder,
            leaves_to_search=self.params.num_leaves_to_search,
        )
        if len(q) == 1:
            return self.searcher.search(q[0], **kwargs)[0][None, :], None
        return self.searcher.search_batched_parallel(q, **kwargs)[0], None


class Served:
    """A TF searcher called as serving/servable.py calls a loaded signature: its concrete
    function with flat inputs (servable's `_flat_caller`: no structured-argument binding),
    on TF's single-threaded executor (graphs without control flow run in the caller's
    thread)."""

    def __init__(self, searcher):
        from serving.servable import SINGLE_THREADED, _flat_caller

        self.call = _flat_caller(searcher.search.get_concrete_function(), {"queries": None})
        if self.call is None:
            raise ValueError("the searcher's function has no flat `queries` input")
        self.executor, self.k, self.max_batch = SINGLE_THREADED, K, BATCH

    def search(self, queries):
        import tensorflow as tf

        with tf.experimental.function_executor_type(self.executor):
            return self.call({"queries": queries})


def leaf_ladder(params) -> list[int]:
    """ScaNN's leaves_to_search values swept for the recall-vs-latency curve."""
    ladder = (2, 4, 8, 12, 16, 24, 32, 48, 64, 100, 150, 200, 300)
    return [v for v in ladder if v <= params.num_leaves]


def sweep_scann(index, params, pybind, queries, exact) -> dict:
    """Recall-vs-p50 sweeps of ScaNN's leaves_to_search, its own search and the served op."""
    from bench.index_sweep import sweep
    from models.search.searchers import ScannSearcher

    held = []  # the ScaNN state at the current value (its own copy of the index tensors)

    def served_at(leaves):
        held.clear()  # free the previous value's copy first
        held.append(ScannSearcher(index.scann_assets, replace(params, leaves), K))
        return Served(held[0])

    ladder = leaf_ladder(params)
    print("    sweep scann_pybind (leaves_to_search)", flush=True)
    out = {
        "scann_pybind": sweep(lambda v: Pybind(pybind, replace(params, v)), ladder, queries, exact)
    }
    print("    sweep scann_served (leaves_to_search)", flush=True)
    out["scann_served"] = sweep(served_at, ladder, queries, exact)
    return out


def replace(params, leaves: int):
    """params with num_leaves_to_search = leaves."""
    return dataclasses.replace(params, num_leaves_to_search=leaves)
