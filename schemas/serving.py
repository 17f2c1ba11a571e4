"""The serving contract: raw input tensors of the exported signatures (DESIGN §5)."""

import tensorflow as tf

from schemas import features as F

# Query side: a user and the recent history, padded with F.PAD ([batch, L], any L).
QUERY_SPEC = {
    F.USER_ID: tf.TensorSpec([None], tf.string, F.USER_ID),
    F.AGE: tf.TensorSpec([None], tf.int64, F.AGE),
    F.GENDER: tf.TensorSpec([None], tf.string, F.GENDER),
    F.OCCUPATION: tf.TensorSpec([None], tf.string, F.OCCUPATION),
    F.TIMESTAMP: tf.TensorSpec([None], tf.int64, F.TIMESTAMP),
    F.HISTORY_ITEM_IDS: tf.TensorSpec([None, None], tf.string, F.HISTORY_ITEM_IDS),
    F.HISTORY_GENRES: tf.TensorSpec([None, None], tf.string, F.HISTORY_GENRES),
}
# Candidate side: one item per row; genres padded with F.PAD ([batch, G]).
CANDIDATE_SPEC = {
    F.ITEM_ID: tf.TensorSpec([None], tf.string, F.ITEM_ID),
    F.GENRES: tf.TensorSpec([None, None], tf.string, F.GENRES),
    F.PRIMARY_GENRE: tf.TensorSpec([None], tf.string, F.PRIMARY_GENRE),
    F.YEAR: tf.TensorSpec([None], tf.int64, F.YEAR),
}
