"""Exports the combined model: one SavedModel per variant, written atomically.

A variant is a searcher: `portable` uses only stock TensorFlow ops (exact matmul + top_k,
or a partitioned search for large catalogs) and runs on stock TF Serving; `scann` uses
ScaNN's ops and needs a ScaNN-enabled TF Serving. Next to `saved_model.pb`, in
`assets.extra/` (which TF Serving ignores, except for warm-up requests):
- `items.tsv`: item_id <TAB> title of the catalog, for clients that print titles;
- `export.json`: variant, K, N, the final score's retrieval weight, catalog size and
  where the parts came from;
- `tf_serving_warmup_requests`: golden requests as TF Serving PredictionLog records,
  written by the canary step (`canary.write_warmup`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid

import numpy as np
import tensorflow as tf

from models.serving.recommender import Recommender
from schemas import features as F
from schemas import serving as C
from schemas.serving import PORTABLE, SCANN, VARIANTS

# Extra items searched so that N remain after removing the request's seen items: a
# history with more than this many items in the top N + margin leaves fewer than N.
EXCLUDE_MARGIN = 50


def make_searcher(variant: str, index, depth: int):
    """The index's searcher for `variant`, returning the top `depth` items per query."""
    from models.search import index as search

    if variant == PORTABLE:
        return search.portable_searcher(index, depth)
    if variant == SCANN:
        return search.scann_searcher(index, depth)
    raise ValueError(f"unknown serving variant {variant!r}; expected one of {VARIANTS}")


def search_depth(n: int, catalog_size: int) -> int:
    """How many nearest items the searcher returns before seen items are removed."""
    return min(n + EXCLUDE_MARGIN, catalog_size)


def is_exact(variant: str, index) -> bool:
    """Whether a variant searches `index` exactly (then the canary wants equal answers)."""
    if variant == PORTABLE:
        return index.partitions is None
    return index.scann_assets is None


def retrieval_weight(retrieval_dir: str, configured: float | None = None) -> tuple[float, str]:
    """The final score's retrieval weight and where it came from.

    `configured` wins when given; else 1 / the two-tower's recorded softmax temperature.

    Raises:
        ValueError: nothing configured and the retrieval model records no temperature.
    """
    if configured is not None:
        return float(configured), "configured"
    from models.retrieval.export import MODEL_INFO_FILE, read_temperature

    temperature = read_temperature(retrieval_dir)
    if temperature is None or temperature <= 0:
        raise ValueError(
            f"{retrieval_dir} records no softmax temperature (assets.extra/{MODEL_INFO_FILE}); "
            "re-export it with this version or set AssemblyConfig.retrieval_weight"
        )
    return 1.0 / temperature, f"1 / temperature {temperature:g} of the retrieval model"


@dataclasses.dataclass(frozen=True)
class NegativeCorrection:
    """The final score's item term: weight * log q(item), q the ranker's negative sampler.

    BehaviorSequenceGen draws the ranker's negatives with probability count ** power over
    the items' training interaction counts (the catalog's `item_count`). A classifier
    trained against them learns log P(item | user) - log q(item) + const, so adding
    log q(item) undoes the sampler's popularity discount (weight 1: exactly).

    Attributes:
        weight: multiple of log q(item) added to the final score (0: off).
        power: the sampler's exponent (SequenceConfig.negative_power).
        source: where the two came from, for export.json.
    """

    weight: float = 1.0
    power: float = 0.75
    source: str = "configured"

    def __post_init__(self):
        for name in ("weight", "power"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 100.0):
                raise ValueError(f"NegativeCorrection.{name}={value} not in [0, 100]")

    def item_bias(self, counts) -> np.ndarray | None:
        """weight * log q(item), float32 [V], from training interaction counts [V]; None
        when the weight is 0. An item without training interactions is never drawn as a
        negative (q = 0, log q = -inf); it counts as 1 here, the rarest drawn item, so it
        stays rankable."""
        if self.weight == 0.0:
            return None
        counts = np.asarray(counts, np.float64)
        if counts.ndim != 1 or not len(counts) or np.any(~np.isfinite(counts) | (counts < 0)):
            raise ValueError("item counts must be a non-empty vector of finite counts >= 0")
        weights = np.maximum(counts, 1.0) ** self.power
        log_q = np.log(weights) - np.log(weights[counts > 0].sum() or weights.sum())
        return (self.weight * log_q).astype(np.float32)

    def describe(self) -> dict:
        return {"weight": self.weight, "power": self.power, "source": self.source}


def negative_correction(
    weight: float, power: float, ratio: int, where: str
) -> NegativeCorrection | None:
    """The log q(item) term of a ranker whose negatives were drawn `ratio` per positive
    with probability count ** `power` (`where` says where that was read); None when the
    weight is 0 or the ranker had no sampled negatives."""
    if weight == 0.0 or ratio == 0:
        return None
    source = f"the ranker's negative sampler (count ** {power:g}, {where})"
    return NegativeCorrection(weight=weight, power=power, source=source)


def catalog_in_index_order(catalog: dict, item_ids) -> dict:
    """Catalog columns (item_id, genre, year, title; any order) re-ordered to `item_ids`.

    Raises:
        ValueError: an index item is missing from the catalog.
    """
    position = {str(item): i for i, item in enumerate(catalog[F.ITEM_ID])}
    missing = [str(item) for item in item_ids if str(item) not in position]
    if missing:
        raise ValueError(f"{len(missing)} index items are not in the catalog, e.g. {missing[:5]}")
    order = np.array([position[str(item)] for item in item_ids], dtype=np.int64)
    return {name: np.asarray(values, dtype=object)[order] for name, values in catalog.items()}


def item_bias(catalog: dict, correction: NegativeCorrection | None) -> np.ndarray | None:
    """The final score's per-item term for catalog rows (None: no correction).

    Raises:
        ValueError: a correction is asked for and the catalog has no F.ITEM_COUNT column.
    """
    if correction is None or correction.weight == 0.0:
        return None
    if F.ITEM_COUNT not in catalog:
        raise ValueError(
            f"the negative-sampling correction needs the catalog's {F.ITEM_COUNT!r} column "
            f"(BehaviorSequenceGen writes it); the catalog has {sorted(catalog)}"
        )
    return correction.item_bias(np.asarray(catalog[F.ITEM_COUNT], np.float64))


def retrieval_prior(retrieval_dir: str, index) -> np.ndarray | None:
    """The retrieval model's popularity prior beta * log(1 + n) per index item, float64
    [V] (None: the model has none). Its candidate embeddings carry s * log(1 + n) in their
    last column and its queries beta / s (models/retrieval/prior.py); the product is read
    back here from the index's embeddings and the model's assets.extra/retrieval.json.
    """
    from models.retrieval.export import prior_query_value

    value = prior_query_value(retrieval_dir)
    if value is None:
        return None
    return np.asarray(index.embeddings, np.float64)[:, -1] * value


def prior_record(retrieval_dir: str, prior_kept: float) -> dict:
    """export.json's record of the retrieval model's prior and the share the final keeps."""
    from models.retrieval.export import read_model_info
    from models.retrieval.prior import INFO_KEY

    return {**read_model_info(retrieval_dir)[INFO_KEY], "kept_in_final_score": prior_kept}


def final_score_terms(
    retrieval_dir: str,
    index,
    catalog: dict,
    correction: NegativeCorrection | None,
    weight: float,
    prior_kept: float = 0.0,
) -> tuple[np.ndarray | None, dict]:
    """The final score's per-item term (`final_item_bias`) for catalog rows in index order,
    and its provenance for export.json and the assembler's report:
    {"negative_correction": ..., "popularity_prior": ...} (None where a term is off)."""
    prior = retrieval_prior(retrieval_dir, index)
    bias = final_item_bias(catalog, correction, prior, weight, prior_kept)
    terms = {
        "negative_correction": correction.describe() if correction else None,
        "popularity_prior": None if prior is None else prior_record(retrieval_dir, prior_kept),
    }
    return bias, terms


def final_item_bias(
    catalog: dict,
    correction: NegativeCorrection | None,
    prior: np.ndarray | None,
    weight: float,
    prior_kept: float = 0.0,
) -> np.ndarray | None:
    """The final score's per-item term [V] for catalog rows in index order (None: 0).

    It is the ranker's log q(item) term (`item_bias`) minus (1 - prior_kept) * weight *
    prior[item]: the retrieval score r = cos + prior enters the final score as weight * r,
    so this leaves weight * (cos + prior_kept * prior). The prior picks the N candidates;
    with prior_kept 0 it does not order them (B1 validation, seed 0, keeping all of it
    against none: HR@10 / NDCG@10 -.0015 / +.0017 on synthetic, -.014 / -.005 on ML-100K;
    `python -m bench.retrieval_rerank`, the "(r-prior)" rules).

    Raises:
        ValueError: prior_kept outside [0, 1], or a prior not one finite value per item.
    """
    if not 0.0 <= prior_kept <= 1.0:
        raise ValueError(f"prior_kept={prior_kept} not in [0, 1]")
    bias = item_bias(catalog, correction)
    if prior is None or prior_kept == 1.0 or weight == 0.0:
        return bias
    prior = np.asarray(prior, np.float64)
    size = len(catalog[F.ITEM_ID])
    if prior.shape != (size,) or not np.all(np.isfinite(prior)):
        raise ValueError(f"the retrieval prior must be {size} finite values, got {prior.shape}")
    removed = (1.0 - prior_kept) * weight * prior
    return (-removed if bias is None else bias - removed).astype(np.float32)


def write_atomically(export_dir: str, write) -> str:
    """Calls write(tmp_dir), then renames tmp_dir to export_dir; a failure leaves nothing."""
    parent = os.path.dirname(os.path.normpath(export_dir))
    tf.io.gfile.makedirs(parent)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(export_dir)}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        if tf.io.gfile.exists(export_dir):
            raise FileExistsError(f"{export_dir} exists; refusing to overwrite it")
        tf.io.gfile.rename(tmp, export_dir)
    finally:
        if tf.io.gfile.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return export_dir


def export_variant(
    retrieval_dir: str,
    ranking_dir: str,
    index,
    catalog: dict,
    export_dir: str,
    variant: str = PORTABLE,
    k: int = 10,
    n: int = 100,
    info: dict | None = None,
    warmup: dict | None = None,
    weight: float | None = None,
    models: tuple | None = None,
    correction: NegativeCorrection | None = None,
    prior_kept: float = 0.0,
) -> str:
    """Writes one variant of the combined SavedModel to export_dir (atomically).

    Args:
        retrieval_dir: the two-tower's raw-feature SavedModel.
        ranking_dir: the DIN ranker's raw-feature SavedModel.
        index: a loaded item index (`models.search.index.Index`).
        catalog: columns item_id, genre, year, title (arrays [V], any order).
        export_dir: where the SavedModel goes (must not exist).
        variant: PORTABLE or SCANN.
        k: items per answer; n: candidates the ranker scores.
        info: extra provenance recorded in export.json.
        warmup: requests (C.REQUEST_SPEC arrays [B], [B, W]) written as TF Serving
            warm-up records, one per row.
        weight: the final score's retrieval weight (None: see `retrieval_weight`).
        models: (retrieval, ranking) already loaded from those two directories, so
            that exporting several variants loads each SavedModel once.
        correction: the final score's log q(item) term (None: none); needs the
            catalog's F.ITEM_COUNT column.
        prior_kept: share of the retrieval model's popularity prior kept in the final
            score (`final_item_bias`; 0: it only picks the candidates).
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    ordered = catalog_in_index_order(catalog, index.item_ids)
    depth = search_depth(n, len(index.item_ids))
    weight, source = retrieval_weight(retrieval_dir, weight)
    retrieval, ranking = models or (
        tf.saved_model.load(retrieval_dir),
        tf.saved_model.load(ranking_dir),
    )
    bias, terms = final_score_terms(retrieval_dir, index, ordered, correction, weight, prior_kept)
    module = Recommender(
        retrieval,
        ranking,
        make_searcher(variant, index, depth),
        ordered,
        k=k,
        n=n,
        retrieval_weight=weight,
        item_bias=bias,
    )
    meta = {"variant": variant, "k": module.k, "n": module.n, "search_depth": depth}
    meta["max_batch"] = module.max_batch  # serving/servable.py runs larger batches in slices
    meta.update({"retrieval_weight": weight, "retrieval_weight_source": source})
    meta.update(terms)
    meta.update({"catalog_size": len(index.item_ids), **(info or {})})

    def write(tmp: str) -> None:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        extra = os.path.join(tmp, C.ASSETS_EXTRA)
        tf.io.gfile.makedirs(extra)
        titles = ordered.get(F.TITLE, ordered[F.ITEM_ID])
        lines = [
            f"{_clean(i)}\t{_clean(t)}\n" for i, t in zip(ordered[F.ITEM_ID], titles, strict=False)
        ]
        with tf.io.gfile.GFile(os.path.join(extra, C.ITEMS_TSV), "w") as f:
            f.write("".join(lines))
        with tf.io.gfile.GFile(os.path.join(extra, C.EXPORT_INFO), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        if warmup is not None:
            write_warmup(os.path.join(extra, C.WARMUP_FILE), warmup)

    return write_atomically(export_dir, write)


def write_warmup(path: str, requests: dict, limit: int = 100) -> int:
    """Writes one serving_default PredictionLog per request row (TF Serving replays them on
    load, so the first real request does not pay for graph warm-up); returns the count."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    rows = min(limit, len(requests[F.USER_ID]))
    with tf.io.TFRecordWriter(path) as writer:
        for row in range(rows):
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = C.SERVING_DEFAULT
            for key, spec in C.REQUEST_SPEC.items():
                value = np.asarray(requests[key][row : row + 1])
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value, spec.dtype))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return rows


def _clean(value) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.replace("\t", " ").replace("\n", " ")


def read_titles(model_dir: str) -> dict[str, str]:
    """item_id -> title from a combined model's assets.extra/items.tsv ({} if absent)."""
    path = os.path.join(model_dir, C.ASSETS_EXTRA, C.ITEMS_TSV)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return dict(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)
