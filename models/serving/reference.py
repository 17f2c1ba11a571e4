"""The pipeline's own two-stage computation, in NumPy around the two trainers' models.

This is what the combined SavedModel must reproduce; the canary compares them. It calls
the retrieval model's `query_embedding` and the ranker's `score_candidates` separately,
searches exactly over the index's embeddings, and does the seen-item removal and both
top-k cuts here, not in the graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.serving.recommender import MIN_PROBABILITY
from schemas import features as F
from schemas import serving as C
from schemas.serving import EMBEDDING_KEY as EMBEDDING
from schemas.serving import QUERY_SIGNATURE
from schemas.serving import SCORE_CANDIDATES as SCORE_SIGNATURE
from schemas.serving import SCORES as RANKER_SCORES

_PAD = F.PAD.encode()


def _text(values) -> np.ndarray:
    return np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(), otypes=[object])(
        np.asarray(values, dtype=object)
    )


def _features(catalog: dict, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Primary genre and year of ids (any shape); F.UNKNOWN / F.MISSING_INT when unknown."""
    row = {item: i for i, item in enumerate(_text(catalog[F.ITEM_ID]))}
    genres, years = _text(catalog[F.PRIMARY_GENRE]), np.asarray(catalog[F.YEAR], np.int64)
    flat = [row.get(item, -1) for item in ids.reshape(-1)]
    genre = [genres[r] if r >= 0 else F.UNKNOWN.encode() for r in flat]
    year = [years[r] if r >= 0 else F.MISSING_INT for r in flat]
    return (
        np.array(genre, dtype=object).reshape(ids.shape),
        np.array(year, dtype=np.int64).reshape(ids.shape),
    )


def user_inputs(catalog: dict, request: dict) -> dict:
    """Raw user-side inputs of both models: the request plus history genres."""
    history = _text(request[F.HISTORY_ITEM_IDS])
    genre, _ = _features(catalog, history)
    inputs = {k: np.asarray(request[k]) for k in C.REQUEST_SPEC if k != F.HISTORY_ITEM_IDS}
    inputs[F.HISTORY_ITEM_IDS] = history
    inputs[F.HISTORY_GENRES] = np.where(history == _PAD, _PAD, genre)
    return inputs


def _call(signature, inputs: dict) -> dict:
    specs = signature.structured_input_signature[1]
    return signature(**{k: tf.constant(inputs[k], s.dtype) for k, s in specs.items()})


def rank(ranking, catalog: dict, request: dict, candidates: np.ndarray) -> np.ndarray:
    """Ranker probabilities [B, C] of candidate ids [B, C]."""
    inputs = user_inputs(catalog, request)
    cands = _text(candidates)
    inputs[F.ITEM_ID] = cands
    inputs[F.PRIMARY_GENRE], inputs[F.YEAR] = _features(catalog, cands)
    return _call(ranking.signatures[SCORE_SIGNATURE], inputs)[RANKER_SCORES].numpy()


def retrieve(
    retrieval, catalog: dict, embeddings: np.ndarray, request: dict, n: int, depth: int = 0
):
    """The top-n unseen items among the exact top `depth` (0: the whole catalog), as the
    served model does it: ids [B, n] (F.PAD where fewer remain) and scores [B, n]."""
    inputs = user_inputs(catalog, request)
    query = _call(retrieval.signatures[QUERY_SIGNATURE], inputs)[EMBEDDING].numpy()
    scores = query @ embeddings.T  # [B, V]
    ids = _text(catalog[F.ITEM_ID])
    out_ids = np.full((len(query), n), _PAD, dtype=object)
    out_scores = np.zeros((len(query), n), np.float32)
    for b, history in enumerate(inputs[F.HISTORY_ITEM_IDS]):
        seen = set(history) - {_PAD}
        nearest = np.argsort(-scores[b], kind="stable")[: depth or None]
        order = [i for i in nearest if ids[i] not in seen][:n]
        out_ids[b, : len(order)] = ids[order]
        out_scores[b, : len(order)] = scores[b, order]
    return out_ids, out_scores


def recommend(
    retrieval,
    ranking,
    catalog,
    embeddings,
    request: dict,
    k: int,
    n: int,
    depth: int = 0,
    retrieval_weight: float = 0.0,
    item_bias=None,
) -> dict:
    """Top k by final score among the n best unseen of the exact top `depth` (outputs of C).

    final = log(max(ranker probability, MIN_PROBABILITY)) + retrieval_weight * retrieval score
    + item_bias[the item's catalog row] (item_bias None: 0).
    """
    ids, retrieval_scores = retrieve(retrieval, catalog, embeddings, request, n, depth)
    probs = rank(ranking, catalog, request, ids)
    log_p = np.log(np.maximum(probs, MIN_PROBABILITY))
    final = log_p + retrieval_weight * retrieval_scores
    if item_bias is not None:
        row = {item: i for i, item in enumerate(_text(catalog[F.ITEM_ID]))}
        bias = np.asarray(item_bias, np.float32)
        final = final + np.array([[bias[row.get(i, 0)] for i in r] for r in ids], np.float32)
    final = np.where(ids == _PAD, -np.inf, final)
    order = np.argsort(-final, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(final, order, 1)
    filled = np.isfinite(best)
    pick = lambda x: np.where(filled, np.take_along_axis(x, order, 1), 0.0).astype(np.float32)
    return {
        C.ITEM_IDS: np.where(filled, np.take_along_axis(ids, order, 1), _PAD),
        C.SCORES: pick(probs),
        C.RETRIEVAL_SCORES: pick(retrieval_scores),
        C.FINAL_SCORES: np.where(filled, best, 0.0).astype(np.float32),
    }
