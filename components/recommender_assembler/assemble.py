"""Assembles the combined model's variants and runs the canary on each (pure logic).

For every variant: export (`models.serving.export`), compute the golden answers with the
pipeline's own two-stage code (`models.serving.reference`), and check them in a fresh
process (`models.serving.canary`; one process checks every variant). The verdict of all
variants is the canary blessing.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from components.recommender_assembler.config import AssemblyConfig
from models.common.memory import release_memory
from models.serving import canary, export, reference
from schemas import features as F
from schemas import model_version
from schemas import serving as C


def assemble(
    retrieval_dir: str,
    ranking_dir: str,
    index,
    catalog: dict,
    queries: dict,
    out_dir: str,
    config: AssemblyConfig,
    info: dict | None = None,
    correction: export.NegativeCorrection | None = None,
) -> dict:
    """Exports every variant to <out_dir>/<variant> and canaries it; returns the report.

    Args:
        retrieval_dir / ranking_dir: the trainers' raw-feature SavedModels.
        index: the loaded item index.
        catalog: catalog columns (item_id, title, genre, year).
        queries: eval queries (request features, [Q] and [Q, L]) for the golden set.
        out_dir: the Model artifact's directory.
        config: see AssemblyConfig.
        info: provenance for export.json.
        correction: the final score's log q(item) term (None: off); the catalog then
            needs its F.ITEM_COUNT column.
    """
    ordered = export.catalog_in_index_order(catalog, index.item_ids)
    requests = canary.golden_requests(queries, ordered[F.ITEM_ID], config.canary_requests)
    retrieval = tf.saved_model.load(retrieval_dir)
    ranking = tf.saved_model.load(ranking_dir)
    embeddings = np.asarray(index.embeddings, np.float32)
    n = min(config.n, len(index.item_ids))
    depth = export.search_depth(n, len(index.item_ids))
    weight, source = export.retrieval_weight(retrieval_dir, config.retrieval_weight)
    logging.info("RecommenderAssembler: final score retrieval weight %.4g (%s)", weight, source)
    bias, terms = export.final_score_terms(
        retrieval_dir, index, ordered, correction, weight, config.prior_kept
    )
    logging.info("RecommenderAssembler: final score terms %s", terms)
    expected = reference.recommend(
        retrieval, ranking, ordered, embeddings, requests, min(config.k, n), n, depth, weight, bias
    )
    report = {"config": dataclasses.asdict(config), "variants": {}}
    report["retrieval_weight"] = {"value": weight, "source": source}
    report.update(terms)  # negative_correction, popularity_prior
    jobs = []
    for variant in config.variants:
        start = time.time()
        target = os.path.join(out_dir, variant)
        logging.info("RecommenderAssembler: exporting the %s variant to %s", variant, target)
        export.export_variant(
            retrieval_dir,
            ranking_dir,
            index,
            catalog,
            target,
            variant,
            config.k,
            config.n,
            info=info,
            warmup=requests,
            weight=config.retrieval_weight,  # resolved as above; export.json records the source
            models=(retrieval, ranking),  # loaded once for the reference and every variant
            correction=correction,
            prior_kept=config.prior_kept,
        )
        # Sizes and SHA-256 of every file: the pusher and the server verify them.
        model_version.write_manifest(target)
        golden = os.path.join(out_dir, f"canary_{variant}.npz")
        canary.save_golden(golden, requests, expected, export.is_exact(variant, index))
        jobs.append((target, golden, os.path.join(out_dir, f"canary_{variant}.json")))
        report["variants"][variant] = {"export_s": round(time.time() - start, 1)}
    # The canary process loads every variant beside this one: this process lets go of
    # the trainers' models first (the pipeline's peak memory is this moment).
    del retrieval, ranking
    release_memory()
    start = time.time()
    logging.info("RecommenderAssembler: canary of %s in a fresh process", list(config.variants))
    verdicts = canary.run_all_in_fresh_process(jobs, config.latency_budget_ms, config.min_overlap)
    canary_s = round(time.time() - start, 1)  # the one process, all variants
    for variant, verdict in zip(config.variants, verdicts, strict=True):
        verdict = {**verdict, **report["variants"][variant], "canary_s": canary_s}
        report["variants"][variant] = verdict
        logging.info("RecommenderAssembler: %s canary %s", variant, verdict)
    report["passed"] = all(v["passed"] for v in report["variants"].values())
    report["example"] = _example(requests, expected, ordered)
    return report


def _example(requests: dict, expected: dict, catalog: dict) -> dict:
    """The first golden request and its expected answer with titles, for the summary."""
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    names = catalog.get(F.TITLE, catalog[F.ITEM_ID])
    titles = {text(i): text(t) for i, t in zip(catalog[F.ITEM_ID], names, strict=True)}
    return {
        "user_id": text(requests[F.USER_ID][0]),
        "history": [text(h) for h in requests[F.HISTORY_ITEM_IDS][0] if h not in (b"", "")],
        "top": [
            {"item_id": text(i), "title": titles.get(text(i), text(i)), "score": float(s)}
            for i, s in zip(expected[C.ITEM_IDS][0], expected[C.SCORES][0], strict=True)
            if i not in (b"", "")
        ],
    }
