"""bench.retrieval_tune's overrides: the flat and nested forms its recorded commands use."""

import json
import os
import shlex
import sys
import types

import pytest

import bench
from bench import retrieval as B
from bench import retrieval_tune as T
from models.retrieval.config import Listwise, Pointwise, RetrievalConfig, SampledSoftmax

RESULTS = os.path.join(os.path.dirname(B.__file__), "results", "retrieval_tuning.json")


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + "/" + key, key, value
            yield from _walk(value, path + "/" + key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def _recorded():
    with open(RESULTS) as f:
        return list(_walk(json.load(f)))


def test_every_recorded_override_set_still_applies():
    sets = [(p, v) for p, k, v in _recorded() if k == "overrides" and isinstance(v, dict)]
    assert len(sets) >= 10
    for _, overrides in sets:
        RetrievalConfig().with_overrides(overrides)  # raises, naming the field, if not


def test_every_recorded_ranking_override_set_still_applies(tmp_path):
    from bench.retrieval_rerank import RETRIEVED
    from models.ranking.config import RankingConfig

    sets = [v for _, k, v in _recorded() if k == "ranking_overrides" and isinstance(v, dict)]
    assert len(sets) >= 3
    for overrides in sets:
        given = {k: (str(tmp_path) if v == RETRIEVED else v) for k, v in overrides.items()}
        RankingConfig.from_dict(given)  # raises, naming the field, if not


def test_every_recorded_command_builds_its_variants():
    commands = [
        v for _, k, v in _recorded() if k.startswith("command") and "retrieval_tune" in str(v)
    ]
    built = 0
    for command in commands:
        words = shlex.split(command.split("  (")[0])
        pairs = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
        base = RetrievalConfig().with_overrides(B._overrides(pairs))
        for i, word in enumerate(words):
            if word != "--variant":
                continue
            name, _, spec = words[i + 1].partition("=")
            if "..." in spec:  # the usage line's placeholder
                continue
            config = base.with_overrides(json.loads(spec))
            built += 1
            if name.startswith(("tapas", "per_row")):
                assert isinstance(config.loss, SampledSoftmax) and config.loss.adaptive_top_m
    assert built >= 8


def test_run_variants_applies_flat_and_nested_overrides(monkeypatch):
    trained = []

    def two_tower(config, graph, work):
        trained.append(config)
        return lambda validation: (None, {"train_s": 1.0, "examples_per_sec": 2.0})

    metrics = {"metrics": {k: 0.5 for k in T.KEYS}}
    fake = types.SimpleNamespace(two_tower=two_tower, evaluate_top=lambda *a: metrics)
    monkeypatch.setitem(sys.modules, "bench.retrieval_systems", fake)
    monkeypatch.setattr(bench, "retrieval_systems", fake, raising=False)
    validation = types.SimpleNamespace(data=types.SimpleNamespace(targets=None), item_ids=[1])
    variants = {"flat": {"epochs": 5}, "nested": {"training": {"epochs": 5}}}
    out = T.run_variants(validation, "graph", "/nonexistent", RetrievalConfig(), variants)
    assert trained[0] == trained[1] and trained[0].training.epochs == 5
    assert out["flat"]["overrides"] == {"epochs": 5} and out["nested"]["hr@10"] == 0.5


def test_the_ablation_skips_what_the_base_already_is():
    assert set(T.ablation_variants(RetrievalConfig())) == set(T.ABLATION)
    pointwise = RetrievalConfig(loss=Pointwise())
    assert "pointwise" not in T.ablation_variants(pointwise)
    no_log_q = RetrievalConfig().with_overrides(log_q=False)
    assert "no_log_q" not in T.ablation_variants(no_log_q)
    mixed = RetrievalConfig(loss=Listwise(num_mixed_negatives=256))
    assert "mixed_negatives_256" not in T.ablation_variants(mixed)
    assert "mixed_negatives_256" not in T.ablation_variants(pointwise)  # not its loss's
    with pytest.raises(ValueError, match="num_mixed_negatives belongs to loss 'listwise'"):
        pointwise.with_overrides(T.ABLATION["mixed_negatives_256"])
