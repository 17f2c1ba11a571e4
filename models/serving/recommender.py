"""One tf.Module that serves both stages: query tower -> index -> DIN rerank -> top K.

The module composes the two trainers' raw-feature SavedModels (each carries its own
Transform graph) with an item index and the catalog's item features:

1. history genres are looked up in the catalog (unknown items: F.UNKNOWN);
2. the retrieval model's `query_embedding` gives the query vector [B, D];
3. the searcher returns the top S = N + exclude_margin catalog items [B, S];
4. items in the request's history are removed, the best N remain [B, N];
5. the ranker scores them with the user's history [B, N]: `serving_default` calls its
   `score_transformed_candidates` on the catalog's transformed item features, computed
   once at export by its `transform_candidates`, so no request runs the Transform over
   candidates; `rank` (caller-supplied ids, maybe unknown) calls `score_candidates`;
6. the top K by final score come out, with their ranker and retrieval scores.

The final score chains the two stages' probabilities: the two-tower is a softmax over the
catalog with logits q . c / temperature, so q . c / temperature is log P(item | user) up
to a per-user constant; the DIN ranker estimates P(liked | user, item). Their sum

    final = log(ranker probability) + retrieval_weight * (q . c) + item_bias[item],

with retrieval_weight = 1 / temperature, ranks by P(the user's next liked item). With
retrieval_weight = 0 the ranker alone orders the candidates. `item_bias` is a constant per
catalog item: the pipeline sets it to log q(item), q the ranker's negative-sampling
distribution (`models.serving.export.NegativeCorrection`). A classifier trained against
negatives drawn from q learns log P(item | user) - log q(item) + const; adding log q(item)
undoes that popularity discount (B1 validation: +.009 to +.011 HR@10 on both data sets).

Empty slots (a catalog smaller than K plus the history) hold item F.PAD and score 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.common.requests import USER_FEATURES as _USER_KEYS
from schemas import features as F
from schemas import serving as C
from schemas.serving import SCORE_CANDIDATES as SCORE_SIGNATURE
from schemas.serving import SCORE_TRANSFORMED, TRANSFORM_CANDIDATES
from schemas.serving import SCORES as RANKER_SCORES

TRANSFORM_CHUNK = 4096  # catalog rows per transform_candidates call at export


# The ranker probability is floored before the log: a saturated sigmoid (p = 0 in float32)
# would otherwise give -inf, the marker of an empty slot.
MIN_PROBABILITY = 1e-30


def final_score(probs, retrieval_scores, retrieval_weight: float, bias=None):
    """log(max(probs, MIN_PROBABILITY)) + retrieval_weight * retrieval_scores + bias, all
    of one shape (bias None: 0)."""
    log_p = tf.math.log(tf.maximum(probs, MIN_PROBABILITY))
    final = log_p + tf.constant(retrieval_weight, tf.float32) * retrieval_scores
    return final if bias is None else final + bias


def catalog_columns(catalog: dict) -> dict:
    """item_id and primary genre as bytes, year as int64: arrays [V] (the ranker's dtypes)."""
    return {
        F.ITEM_ID: np.asarray(catalog[F.ITEM_ID], dtype=object).astype(bytes),
        F.PRIMARY_GENRE: np.asarray(catalog[F.PRIMARY_GENRE], dtype=object).astype(bytes),
        F.YEAR: np.asarray(catalog[F.YEAR], dtype=np.int64),
    }


def transform_catalog(ranking, columns: dict, chunk: int = TRANSFORM_CHUNK) -> dict:
    """The ranker's transformed item inputs of every catalog item: {key: array [V]}.

    Args:
        ranking: the loaded ranker SavedModel.
        columns: `catalog_columns` of the catalog.

    Raises:
        ValueError: the ranker lacks the signatures (exported before they existed).
    """
    missing = {TRANSFORM_CANDIDATES, SCORE_TRANSFORMED} - set(ranking.signatures)
    if missing:
        raise ValueError(
            f"the ranker SavedModel lacks signatures {sorted(missing)}; re-export it with "
            "models.ranking.export.export_serving_model"
        )
    if not len(columns[F.ITEM_ID]):
        raise ValueError("the catalog is empty")
    transform = ranking.signatures[TRANSFORM_CANDIDATES]
    parts = []
    for start in range(0, len(columns[F.ITEM_ID]), chunk):
        part = {key: tf.constant(values[start : start + chunk]) for key, values in columns.items()}
        parts.append({key: value.numpy() for key, value in transform(**part).items()})
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


class Recommender(tf.Module):
    """The combined model; its tf.functions become the SavedModel's signatures.

    Args:
        retrieval: the loaded retrieval SavedModel (signature `query_embedding`).
        ranking: the loaded ranker SavedModel (signatures `score_candidates`,
            `score_transformed_candidates` and `transform_candidates`).
        searcher: a trackable object whose `search(queries [B, D])` returns
            (indices int32 [B, S] into `catalog[F.ITEM_ID]`, scores float32 [B, S]), best
            first, and whose `max_batch` is the largest B it searches within its memory
            budget (the model's `max_batch`, recorded at export).
        catalog: item_id, primary genre and year, arrays [V] aligned with the searcher.
        k: items returned by serving_default.
        n: candidates the ranker scores.
        retrieval_weight: weight of the retrieval score in the final score (see above).
        item_bias: float [V] aligned with the catalog, added to each item's final score
            (None: 0; see above).
    """

    def __init__(
        self,
        retrieval,
        ranking,
        searcher,
        catalog: dict,
        k: int,
        n: int,
        retrieval_weight=0.0,
        item_bias=None,
    ):
        super().__init__()
        if not np.isfinite(retrieval_weight) or retrieval_weight < 0:
            raise ValueError(f"retrieval_weight must be finite and >= 0, got {retrieval_weight}")
        self.retrieval, self.ranking, self.searcher = retrieval, ranking, searcher
        self.max_batch = int(searcher.max_batch)
        self.retrieval_weight = float(retrieval_weight)
        size = len(catalog[F.ITEM_ID])
        self._bias = None
        if item_bias is not None:
            bias = np.asarray(item_bias, np.float32)
            if bias.shape != (size,) or not np.all(np.isfinite(bias)):
                raise ValueError(
                    f"item_bias must be {size} finite values (one per catalog item), got "
                    f"shape {bias.shape} with {int(np.sum(~np.isfinite(bias)))} non-finite"
                )
            self._bias = tf.constant(bias)
        self.n = min(n, size)
        self.k = min(k, self.n)
        columns = catalog_columns(catalog)
        self._ids = tf.constant(columns[F.ITEM_ID])
        self._genre = tf.constant(columns[F.PRIMARY_GENRE])
        self._year = tf.constant(columns[F.YEAR])
        self._index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self._ids, tf.range(size, dtype=tf.int64)), -1
        )
        self._item_features = {
            key: tf.constant(values) for key, values in transform_catalog(ranking, columns).items()
        }

    # -- catalog look-ups ---------------------------------------------------------------
    def _lookup(self, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Primary genre, year (F.UNKNOWN / F.MISSING_INT if unknown) and catalog row (int32,
        -1 if unknown) of item ids [...]."""
        row = self._index.lookup(ids)
        known = row >= 0
        safe = tf.maximum(row, 0)
        genre = tf.where(known, tf.gather(self._genre, safe), F.UNKNOWN)
        year = tf.where(known, tf.gather(self._year, safe), tf.constant(F.MISSING_INT, tf.int64))
        return genre, year, tf.cast(row, tf.int32)

    def _query_inputs(self, request: dict) -> tuple[dict, tf.Tensor]:
        """The two models' user-side raw inputs (user features [B], histories [B, W]), and
        the history's catalog rows [B, W] int32 (-1: unknown or padding)."""
        history = request[F.HISTORY_ITEM_IDS]
        genre, _, rows = self._lookup(history)
        inputs = {key: request[key] for key in _USER_KEYS}
        inputs[F.HISTORY_ITEM_IDS] = history
        inputs[F.HISTORY_GENRES] = tf.where(tf.equal(history, F.PAD), F.PAD, genre)
        return inputs, rows

    # -- the two stages -----------------------------------------------------------------
    def _retrieve(self, user: dict, seen_rows: tf.Tensor):
        """Top N unseen catalog items: ids, catalog rows, retrieval scores, valid; all [B, N].

        Args:
            user: `_query_inputs`' raw inputs.
            seen_rows: [B, W] int32 catalog rows of the history (-1 matches no row).
        """
        query = self.retrieval.signatures[C.QUERY_SIGNATURE](**user)[C.EMBEDDING_KEY]
        rows, scores = self.searcher.search(query)  # [B, S]
        ids = tf.gather(self._ids, rows)
        # Compared as int catalog rows: S x W int compares instead of string compares.
        seen = tf.reduce_any(tf.equal(rows[:, :, None], seen_rows[:, None, :]), axis=-1)
        unseen = tf.logical_and(tf.logical_not(seen), tf.not_equal(ids, F.PAD))
        masked = tf.where(unseen, scores, -np.inf)
        best, keep = tf.math.top_k(masked, k=tf.minimum(self.n, tf.shape(masked)[1]))
        valid = tf.math.is_finite(best)
        ids = tf.where(valid, tf.gather(ids, keep, batch_dims=1), F.PAD)
        rows = tf.where(valid, tf.gather(rows, keep, batch_dims=1), 0)
        return ids, rows, tf.where(valid, best, 0.0), valid

    def _rank(self, user: dict, candidates: tf.Tensor) -> tf.Tensor:
        """Ranker probabilities [B, C] of candidate item ids [B, C] for each user."""
        genre, year, _ = self._lookup(candidates)
        inputs = dict(user)
        inputs.update({F.ITEM_ID: candidates, F.PRIMARY_GENRE: genre, F.YEAR: year})
        return self.ranking.signatures[SCORE_SIGNATURE](**inputs)[RANKER_SCORES]

    def _rank_rows(self, user: dict, rows: tf.Tensor) -> tf.Tensor:
        """Ranker probabilities [B, N] of catalog rows [B, N] (their features precomputed)."""
        inputs = {key: tf.gather(values, rows) for key, values in self._item_features.items()}
        inputs.update(user)
        return self.ranking.signatures[SCORE_TRANSFORMED](**inputs)[RANKER_SCORES]

    def _recommend(self, request: dict) -> dict:
        user, seen_rows = self._query_inputs(request)
        ids, rows, retrieval_scores, valid = self._retrieve(user, seen_rows)
        probs = self._rank_rows(user, rows)
        bias = None if self._bias is None else tf.gather(self._bias, rows)
        final = final_score(probs, retrieval_scores, self.retrieval_weight, bias)
        best, keep = tf.math.top_k(
            tf.where(valid, final, -np.inf), k=tf.minimum(self.k, tf.shape(final)[1])
        )
        filled = tf.math.is_finite(best)
        pick = lambda x: tf.where(filled, tf.gather(x, keep, batch_dims=1), tf.zeros([], x.dtype))
        return {
            C.ITEM_IDS: tf.where(filled, tf.gather(ids, keep, batch_dims=1), F.PAD),
            C.SCORES: pick(probs),
            C.RETRIEVAL_SCORES: pick(retrieval_scores),
            C.FINAL_SCORES: tf.where(filled, best, 0.0),
        }

    # -- signatures ---------------------------------------------------------------------
    @tf.function(input_signature=[C.REQUEST_SPEC])
    def serving_default(self, request):
        return self._recommend(request)

    @tf.function(input_signature=[C.REQUEST_SPEC])
    def retrieve(self, request):
        ids, _, scores, _ = self._retrieve(*self._query_inputs(request))
        return {C.ITEM_IDS: ids, C.RETRIEVAL_SCORES: scores}

    @tf.function(input_signature=[C.RANK_SPEC])
    def rank(self, request):
        user, _ = self._query_inputs(request)
        return {C.SCORES: self._rank(user, request[C.CANDIDATE_ITEM_IDS])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, C.EXAMPLES)])
    def serve_tf_examples(self, examples):
        spec = {
            key: tf.io.FixedLenFeature([], C.REQUEST_SPEC[key].dtype, default)
            for key, default in C.REQUEST_DEFAULTS.items()
        }
        spec[F.HISTORY_ITEM_IDS] = tf.io.VarLenFeature(tf.string)
        parsed = tf.io.parse_example(examples, spec)
        parsed[F.HISTORY_ITEM_IDS] = tf.sparse.to_dense(parsed[F.HISTORY_ITEM_IDS], F.PAD)
        return self._recommend(parsed)

    def signatures(self) -> dict:
        """The SavedModel signatures, by name."""
        return {
            C.SERVING_DEFAULT: self.serving_default,
            C.RETRIEVE: self.retrieve,
            C.RANK: self.rank,
            C.SERVE_TF_EXAMPLES: self.serve_tf_examples,
        }
