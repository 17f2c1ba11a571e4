"""The ScaNN path of a pipeline run: on the tiny catalog (150 items, below `exact_below`)
the first run searches exactly, so here `exact_below=0` makes ScannIndexBuilder build a
real ScaNN tree from run 1's two-tower. Its gate blesses that index; a deliberately coarse
one (1 of 30 leaves, quantized, no reordering) is refused, and the Pusher follows."""

import dataclasses

import pytest

from models.search.params import IndexConfig
from pipeline import local_runner, summary

INDEX = "ScannIndexBuilder"


def rerun(config, index: IndexConfig, until: str | None):
    changed = dataclasses.replace(config, index=index)
    local_runner.run(changed, until)
    return summary.collect(changed)


@pytest.mark.e2e
def test_the_gate_blesses_a_real_scann_index_and_refuses_a_coarse_one(run):
    config, first = run
    assert first["index"]["exact_fallback"]  # run 1: 150 items, exact search

    real = rerun(config, IndexConfig(exact_below=0), until=INDEX)
    assert real["components"][INDEX]["state"] == "COMPLETE"
    index = real["index"]
    assert not index["exact_fallback"] and index["searchers"]["scann"] == "ScannSearcher"
    assert index["search"].startswith("ScaNN: ")
    assert index["num_queries"] > 0 and index["recall@10"] >= 0.95
    assert index["blessed"], index["reasons"]

    coarse_config = IndexConfig(
        exact_below=0, num_leaves=30, num_leaves_to_search=1, quantize=1, reorder=0
    )
    coarse = rerun(config, coarse_config, until=None)
    index = coarse["index"]
    assert index["params"]["num_leaves"] == 30 and index["params"]["num_leaves_to_search"] == 1
    assert index["recall@10"] < 0.95 and not index["blessed"]
    assert any(r.startswith("recall@10 = ") and "< threshold" in r for r in index["reasons"])
    assert not coarse["push"]["pushed"]
    assert any("index" in reason for reason in coarse["push"]["refused_because"])
