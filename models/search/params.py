"""Index parameters: chosen from the catalog size, overridable by config.

The rules follow ScaNN's tuning guide for dot-product search:
- catalogs under `exact_below` items are searched exactly (brute force);
- otherwise a k-means tree with about sqrt(N) leaves, of which
  max(16, ceil(10%)) are searched per query;
- asymmetric hashing (AH) with 2 dimensions per 4-bit block and an anisotropic
  quantisation threshold of 0.2 scores the items of the searched leaves;
- the best max(200, 10 * k) AH candidates are re-scored exactly (reordering).
The portable (stock-op) searcher is exact when the index is, or under
`portable_exact_below` items, and otherwise searches as many leaves of its own
k-means tree.
"""

from __future__ import annotations

import dataclasses
import math

MIN_LEAVES_TO_SEARCH = 16
SEARCH_FRACTION = 0.1
MIN_REORDER = 200
AH_THRESHOLD = 0.2
TRAINING_SAMPLE = 100_000


@dataclasses.dataclass(frozen=True)
class IndexParams:
    """How an index is built and searched.

    Attributes:
        num_items: N, the catalog size.
        exact: brute-force search (no tree, no quantisation).
        num_leaves: k-means leaves of the tree (0 when exact).
        num_leaves_to_search: leaves scored per query (0 when exact).
        quantize: score leaf items with asymmetric hashing (else exact floats).
        dimensions_per_block: AH block width (dimensions per 4-bit code).
        reorder: AH candidates re-scored exactly (0: no reordering).
        anisotropic_threshold: AH anisotropic (score-aware) quantisation threshold.
        training_sample_size: items sampled to train the tree and AH codebooks.
        portable_partitioned: the portable searcher uses a partitioned search.
    """

    num_items: int
    exact: bool
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    quantize: bool = False
    dimensions_per_block: int = 2
    reorder: int = 0
    anisotropic_threshold: float = AH_THRESHOLD
    training_sample_size: int = TRAINING_SAMPLE
    portable_partitioned: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> IndexParams:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown index params {unknown}; known: {sorted(names)}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    """The ScannIndexBuilder's settings; None means "choose from the catalog size".

    Attributes:
        k: neighbours per query for the recall measurement (recall@k).
        recall_threshold: the index is blessed when recall@k >= this.
        exact_below: catalogs with fewer items are searched exactly.
        portable_exact_below: the portable searcher is exact below this size.
        num_leaves: override of the number of k-means leaves.
        num_leaves_to_search: override of the leaves searched per query.
        quantize: override: 1 = asymmetric hashing, 0 = exact floats in leaves.
        dimensions_per_block: override of the AH block width.
        reorder: override of the reordering depth (0 = none).
    """

    k: int = 10
    recall_threshold: float = 0.95
    exact_below: int = 10_000
    portable_exact_below: int = 50_000
    num_leaves: int | None = None
    num_leaves_to_search: int | None = None
    quantize: int | None = None
    dimensions_per_block: int | None = None
    reorder: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.recall_threshold <= 1.0:
            raise ValueError(f"recall_threshold must be in [0, 1], got {self.recall_threshold}")
        positive = ("k", "num_leaves", "num_leaves_to_search", "dimensions_per_block")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("exact_below", "portable_exact_below", "reorder"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.quantize not in (None, 0, 1):
            raise ValueError(f"quantize must be 0 or 1, got {self.quantize}")

    @classmethod
    def from_properties(cls, props) -> IndexConfig:
        """Rebuilds the config from execution properties (absent ones keep defaults)."""
        values = {}
        for f in dataclasses.fields(cls):
            value = props.get(f.name)
            if value is not None:
                values[f.name] = float(value) if f.name == "recall_threshold" else int(value)
        return cls(**values)


def auto_leaves(num_items: int) -> int:
    """About sqrt(N) leaves: round(sqrt(N)), at least 1."""
    return max(1, round(math.sqrt(num_items)))


def auto_leaves_to_search(num_leaves: int) -> int:
    """max(16, ceil(10% of the leaves)), at most all leaves."""
    return min(num_leaves, max(MIN_LEAVES_TO_SEARCH, math.ceil(SEARCH_FRACTION * num_leaves)))


def choose_params(num_items: int, config: IndexConfig | None = None) -> IndexParams:
    """The index parameters for a catalog of `num_items` items.

    Args:
        num_items: N >= 1.
        config: overrides and thresholds (defaults: IndexConfig()).

    Raises:
        ValueError: naming the field, when an override does not fit the catalog.
    """
    config = config or IndexConfig()
    if num_items < 1:
        raise ValueError(f"the catalog is empty (num_items = {num_items})")
    if num_items < config.exact_below:
        return IndexParams(num_items, exact=True)
    leaves = config.num_leaves or auto_leaves(num_items)
    if leaves > num_items:
        raise ValueError(f"num_leaves = {leaves} exceeds the catalog size {num_items}")
    to_search = config.num_leaves_to_search or auto_leaves_to_search(leaves)
    if to_search > leaves:
        raise ValueError(f"num_leaves_to_search = {to_search} exceeds num_leaves = {leaves}")
    quantize = bool(1 if config.quantize is None else config.quantize)
    reorder = max(MIN_REORDER, 10 * config.k) if config.reorder is None else config.reorder
    if quantize and 0 < reorder < config.k:
        raise ValueError(f"reorder = {reorder} is below k = {config.k}")
    return IndexParams(
        num_items,
        exact=False,
        num_leaves=leaves,
        num_leaves_to_search=to_search,
        quantize=quantize,
        dimensions_per_block=config.dimensions_per_block or 2,
        reorder=min(reorder, num_items) if quantize else 0,
        training_sample_size=min(num_items, TRAINING_SAMPLE),
        portable_partitioned=num_items >= config.portable_exact_below,
    )
