"""Index parameters chosen from the catalog size, overrides and validation (hand-derived)."""

import pytest

from models.search.params import IndexConfig, IndexParams, choose_params


def _shape(p: IndexParams):
    return p.num_leaves, p.num_leaves_to_search, p.reorder


def test_parameters_follow_the_catalog_size():
    # 1M: sqrt = 1000 leaves; 10% of 1000 = 100 searched; reorder max(200, 10 * k=10) = 200
    p = choose_params(1_000_000)
    assert _shape(p) == (1000, 100, 200)
    assert p.quantize and p.dimensions_per_block == 2 and not p.exact
    assert p.training_sample_size == 100_000 and p.portable_partitioned
    # 100k: sqrt = 316.23 -> 316 leaves; 10% = 31.6 -> 32
    assert _shape(choose_params(100_000)) == (316, 32, 200)
    # 60k: sqrt = 244.95 -> 245; 10% = 24.5 -> 25; >= 50k: the portable searcher is partitioned
    assert _shape(choose_params(60_000)) == (245, 25, 200)
    assert choose_params(60_000).portable_partitioned
    # 10k: 100 leaves; 10% = 10 < the minimum 16; under 50k the portable searcher is exact
    p = choose_params(10_000)
    assert _shape(p) == (100, 16, 200) and not p.exact and not p.portable_partitioned
    assert p.training_sample_size == 10_000


def test_small_catalogs_fall_back_to_exact_search():
    for n in (1, 150, 9_999):
        p = choose_params(n)
        assert p.exact and _shape(p) == (0, 0, 0) and not p.quantize
        assert not p.portable_partitioned
    # exact_below = 0 forces a tree even on 150 items: sqrt = 12.2 -> 12 leaves, all
    # searched (the minimum 16 > 12), reorder min(200, 150) = 150
    p = choose_params(150, IndexConfig(exact_below=0))
    assert not p.exact and _shape(p) == (12, 12, 150)
    # ... and on 50: 7 leaves, min(7, 16) = 7 searched, reorder min(200, 50) = 50
    assert _shape(choose_params(50, IndexConfig(exact_below=0))) == (7, 7, 50)


def test_overrides_win():
    config = IndexConfig(num_leaves=2000, num_leaves_to_search=40, dimensions_per_block=4, k=30)
    p = choose_params(1_000_000, config)
    # reorder default for k = 30: max(200, 10 * 30) = 300
    assert _shape(p) == (2000, 40, 300) and p.dimensions_per_block == 4
    p = choose_params(1_000_000, IndexConfig(quantize=0, reorder=300))
    assert not p.quantize and p.reorder == 0  # no AH: leaves are scored exactly, no reordering
    assert choose_params(1_000_000, IndexConfig(reorder=0)).reorder == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"recall_threshold": 1.5}, "recall_threshold"),
        ({"k": 0}, "k must be"),
        ({"quantize": 2}, "quantize"),
        ({"exact_below": -1}, "exact_below"),
        ({"num_leaves_to_search": 0}, "num_leaves_to_search"),
    ],
)
def test_invalid_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IndexConfig(**kwargs)


def test_overrides_that_do_not_fit_the_catalog_name_the_field():
    with pytest.raises(ValueError, match="num_leaves = 200 exceeds the catalog size 100"):
        choose_params(100, IndexConfig(exact_below=0, num_leaves=200))
    with pytest.raises(ValueError, match="num_leaves_to_search = 20 exceeds num_leaves = 10"):
        choose_params(100, IndexConfig(exact_below=0, num_leaves=10, num_leaves_to_search=20))
    with pytest.raises(ValueError, match="reorder = 5 is below k = 10"):
        choose_params(20_000, IndexConfig(reorder=5))
    with pytest.raises(ValueError, match="empty"):
        choose_params(0)


def test_config_from_execution_properties_and_params_round_trip():
    config = IndexConfig.from_properties({"k": 20, "recall_threshold": 0.9, "num_leaves": None})
    assert config == IndexConfig(k=20, recall_threshold=0.9)
    p = choose_params(100_000)
    assert IndexParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown index params"):
        IndexParams.from_dict({**p.to_dict(), "leaves": 3})
