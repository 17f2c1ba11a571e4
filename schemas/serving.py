"""The serving contract, in one place (docs/architecture.md#the-serving-contract).

Every module that names a signature, an input or output tensor, a serving variant, a
request default or a file beside a SavedModel imports it from here:
- the retrieval model's signatures (two-tower, `models/retrieval/export.py`);
- the ranker's signatures (DIN, `models/ranking/export.py`);
- the combined model's signatures, inputs and outputs (`models/serving/`), which the
  server (`serving/`), the clients and the benchmarks read;
- the serving variants and the directories the pusher writes them to.

The names import no TensorFlow (the pipeline's config and the CLI use them); the
TensorSpecs (QUERY_SPEC, CANDIDATE_SPEC, REQUEST_SPEC, RANK_SPEC) are built on first
access, which imports TensorFlow.
"""

from __future__ import annotations

from schemas import features as F

# The retrieval model (two-tower): raw tensors in, {EMBEDDING_KEY: [B, D]} out; with its
# popularity prior (the default), D is the towers' width + 1: query . item is
# cos + beta * log(1 + n) (models/retrieval/prior.py).
QUERY_SIGNATURE = "query_embedding"  # QUERY_SPEC -> the query embedding
CANDIDATE_SIGNATURE = "candidate_embedding"  # CANDIDATE_SPEC -> the item embedding
EMBEDDING_KEY = "embedding"

# The ranker (DIN).
SCORE_CANDIDATES = "score_candidates"  # raw user [B], history [B, L], candidates [B, N]
TRANSFORM_CANDIDATES = "transform_candidates"  # raw item features [V] -> model inputs [V]
SCORE_TRANSFORMED = "score_transformed_candidates"  # as score_candidates, items transformed
PROBABILITIES = "probabilities"  # serving_default (tf.Examples) -> float32 [B]

# The combined model's signatures (and the name every model gives serve-tf.Examples).
SERVING_DEFAULT = "serving_default"
RETRIEVE = "retrieve"
RANK = "rank"
SERVE_TF_EXAMPLES = "serve_tf_examples"
SIGNATURES = (SERVING_DEFAULT, RETRIEVE, RANK, SERVE_TF_EXAMPLES)

# Outputs.
ITEM_IDS = "item_ids"  # string [B, K] (or [B, N] from retrieve); F.PAD where fewer exist
SCORES = "scores"  # float32 [B, K]: ranker probability (0 where the slot is empty)
# float32 [B, K]: query . item (the retrieval model's score, prior included; 0 where empty)
RETRIEVAL_SCORES = "retrieval_scores"
# float32 [B, K], the order of item_ids: log(scores) + retrieval_weight * retrieval_scores
# + log_q_weight * log q(item) (0 where empty), q the ranker's negative-sampling distribution
# (export.json: retrieval_weight, negative_correction). With retrieval_weight = 1 / the
# two-tower's softmax temperature and log_q_weight 1 (the defaults) this is
# log P(next item | user) + log P(liked | user, item) up to a per-user constant.
FINAL_SCORES = "final_scores"
OUTPUTS = (ITEM_IDS, SCORES, RETRIEVAL_SCORES, FINAL_SCORES)

# Inputs besides the request features (REQUEST_FEATURES).
CANDIDATE_ITEM_IDS = "candidate_item_ids"  # rank: string [B, C]
EXAMPLES = "examples"  # serve_tf_examples / serving_default of the parts: tf.Examples [B]

# A request: a user and the recent history ([B, W] of any width W, most recent last,
# padded with F.PAD); the combined model looks the history's genres up in its catalog.
REQUEST_FEATURES = (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP, F.HISTORY_ITEM_IDS)
# A feature a request (or a tf.Example) lacks takes this value.
REQUEST_DEFAULTS = {
    F.USER_ID: F.PAD,
    F.AGE: F.MISSING_INT,
    F.GENDER: F.UNKNOWN,
    F.OCCUPATION: F.UNKNOWN,
    F.TIMESTAMP: 0,
}

# Serving variants: `portable` uses stock TF ops only, `scann` ScaNN's ops. The pusher
# writes variant v of model M to <serving_dir>/<served_model_name(M, v)>/<version>/.
PORTABLE, SCANN = "portable", "scann"
VARIANTS = (PORTABLE, SCANN)

# Files written next to a SavedModel.
ASSETS_EXTRA = "assets.extra"
ITEMS_TSV = "items.tsv"  # item_id <TAB> title, for clients that print titles
WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving's warm-up PredictionLog records
EXPORT_INFO = "export.json"  # variant, K, N, catalog size, max_batch, source artifacts


def served_model_name(model_name: str, variant: str) -> str:
    """The TF Serving model name of a variant: `recommender`, `recommender_scann`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown serving variant {variant!r}; expected one of {VARIANTS}")
    return model_name if variant == PORTABLE else f"{model_name}_{variant}"


_SPECS = ("QUERY_SPEC", "CANDIDATE_SPEC", "REQUEST_SPEC", "RANK_SPEC")


def _build_specs() -> dict:
    """The TensorSpecs of the signatures' raw inputs (imports TensorFlow)."""
    import tensorflow as tf

    def spec(name, dtype, rank=1):
        return tf.TensorSpec([None] * rank, dtype, name)

    query = {
        F.USER_ID: spec(F.USER_ID, tf.string),
        F.AGE: spec(F.AGE, tf.int64),
        F.GENDER: spec(F.GENDER, tf.string),
        F.OCCUPATION: spec(F.OCCUPATION, tf.string),
        F.TIMESTAMP: spec(F.TIMESTAMP, tf.int64),
        F.HISTORY_ITEM_IDS: spec(F.HISTORY_ITEM_IDS, tf.string, 2),
        F.HISTORY_GENRES: spec(F.HISTORY_GENRES, tf.string, 2),
    }
    request = {k: query[k] for k in REQUEST_FEATURES}
    return {
        # Query side: a user and the history with its genres ([batch, L], any L).
        "QUERY_SPEC": query,
        # Candidate side: one item per row; genres padded with F.PAD ([batch, G]).
        "CANDIDATE_SPEC": {
            F.ITEM_ID: spec(F.ITEM_ID, tf.string),
            F.GENRES: spec(F.GENRES, tf.string, 2),
            F.PRIMARY_GENRE: spec(F.PRIMARY_GENRE, tf.string),
            F.YEAR: spec(F.YEAR, tf.int64),
        },
        # The combined model's serving_default / retrieve inputs.
        "REQUEST_SPEC": request,
        "RANK_SPEC": {**request, CANDIDATE_ITEM_IDS: spec(CANDIDATE_ITEM_IDS, tf.string, 2)},
    }


def __getattr__(name: str):
    if name in _SPECS:
        specs = _build_specs()
        globals().update(specs)
        return specs[name]
    raise AttributeError(f"module 'schemas.serving' has no attribute {name!r}")
