"""Names and input specs of the combined model's signatures (DESIGN §5).

Every signature takes the request tensors below ([B] per user, [B, W] histories of any
width W, most recent last, padded with F.PAD). Item features of the history and of the
candidates are looked up in the catalog baked into the model, so a caller sends ids only.
"""

from __future__ import annotations

import tensorflow as tf

from schemas import features as F
from schemas import serving

SERVING_DEFAULT = "serving_default"
RETRIEVE = "retrieve"
RANK = "rank"
SERVE_TF_EXAMPLES = "serve_tf_examples"
SIGNATURES = (SERVING_DEFAULT, RETRIEVE, RANK, SERVE_TF_EXAMPLES)

# Outputs.
ITEM_IDS = "item_ids"  # string [B, K] (or [B, N] from retrieve); F.PAD where fewer exist
SCORES = "scores"  # float32 [B, K]: ranker probability (0 where the slot is empty)
RETRIEVAL_SCORES = "retrieval_scores"  # float32 [B, K]: query . item (0 where empty)
# float32 [B, K], the order of item_ids: log(scores) + retrieval_weight * retrieval_scores
# (0 where empty). With retrieval_weight = 1 / the two-tower's softmax temperature this is
# log P(next item | user) + log P(liked | user, item) up to a per-user constant.
FINAL_SCORES = "final_scores"

# Inputs.
CANDIDATE_ITEM_IDS = "candidate_item_ids"  # rank: string [B, C]
EXAMPLES = "examples"  # serve_tf_examples: serialized tf.Examples [B]

# The query signature inputs of schemas/serving.py minus history genres (the combined
# model looks those up in its catalog).
REQUEST_SPEC = {k: v for k, v in serving.QUERY_SPEC.items() if k != F.HISTORY_GENRES}
RANK_SPEC = {
    **REQUEST_SPEC,
    CANDIDATE_ITEM_IDS: tf.TensorSpec([None, None], tf.string, CANDIDATE_ITEM_IDS),
}
# serve_tf_examples: a feature absent from an example takes this value.
EXAMPLE_DEFAULTS = {
    F.USER_ID: F.PAD,
    F.AGE: F.MISSING_INT,
    F.GENDER: F.UNKNOWN,
    F.OCCUPATION: F.UNKNOWN,
    F.TIMESTAMP: 0,
}

# Files written next to the SavedModel.
ASSETS_EXTRA = "assets.extra"
ITEMS_TSV = "items.tsv"  # item_id <TAB> title, for clients that print titles
WARMUP_FILE = "tf_serving_warmup_requests"  # TF Serving's warm-up PredictionLog records
EXPORT_INFO = "export.json"  # variant, K, N, catalog size, source artifacts
