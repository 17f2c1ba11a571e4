"""tf.Transform preprocessing_fn shared by both trainers and the serving model.

Vocabularies are computed on the train split only. One item vocabulary serves
`item_id` and `history_item_ids`; one genre vocabulary serves `genres`, `genre`
and `history_genres`. History padding (F.PAD) maps to index -1 with mask 0.

Both vocabularies are analysed over the targets only (`item_id`, `genres`, `genre`),
never over the history arrays: every history item of a training example is an earlier
kept event of the same user, and BehaviorSequenceGen emits every kept event as an
example of that split or an earlier one, so the targets already hold every history item
and genre. Analysing the L-long histories too reads L + 1 times the strings for the same
vocabulary; the frequencies that order the ids (and choose `item_vocabulary_size`'s top
k) are target counts. (B6 at 1M events, `python -m bench.scale --sizes 1m`: Transform took
308 s after this change and 317 s before, so most of its time is elsewhere, in applying
the graph and writing the examples.)
The positive count of every item is saved as a frequency vocabulary for the
retrieval model's log-Q correction.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from schemas import features as F

SECONDS_PER_DAY = 86400
PADDING_INDEX = -1
# Transform's custom_config key: keep the most frequent N items (tft.vocabulary top_k);
# the rest hash into the F.ITEM_OOV_BUCKETS buckets after them. Absent: every item.
ITEM_VOCABULARY_SIZE = "item_vocabulary_size"


def _apply(x, vocab, oov: int, pad_to_minus_one: bool = False):
    """Looks ids up in a vocabulary; OOV ids hash into `oov` buckets after it."""
    idx = tft.apply_vocabulary(x, vocab, num_oov_buckets=oov)
    if pad_to_minus_one:
        idx = tf.where(tf.equal(x, F.PAD), tf.cast(PADDING_INDEX, idx.dtype), idx)
    return idx


def _dense(x, default):
    """A [batch] dense tensor from a [batch, 1] dense or sparse input."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value=default)
    return tf.reshape(x, [-1])


def _genres(inputs):
    """Vocabulary of the targets' genres and primary genres, shared with history genres."""
    genres = inputs[F.GENRES]
    values = genres.values if isinstance(genres, tf.SparseTensor) else tf.reshape(genres, [-1])
    vocab = tft.vocabulary(
        tf.concat([values, _dense(inputs[F.PRIMARY_GENRE], "")], axis=0),
        vocab_filename=F.GENRE_VOCAB,
    )
    oov = F.CATEGORY_OOV_BUCKETS
    out = {
        F.transformed_name(F.PRIMARY_GENRE): _apply(
            _dense(inputs[F.PRIMARY_GENRE], ""), vocab, oov
        ),
        F.transformed_name(F.HISTORY_GENRES): _apply(inputs[F.HISTORY_GENRES], vocab, oov, True),
    }
    if isinstance(genres, tf.SparseTensor):
        out[F.transformed_name(F.GENRES)] = _apply(genres, vocab, oov)
    return out


def _items(inputs, top_k: int | None = None):
    item_id = _dense(inputs[F.ITEM_ID], "")
    history = inputs[F.HISTORY_ITEM_IDS]
    label = _dense(inputs[F.LABEL], 0)
    vocab = tft.vocabulary(item_id, top_k=top_k, vocab_filename=F.ITEM_VOCAB)
    # Positive counts per item, for log-Q sampling-bias correction.
    tft.vocabulary(
        tf.boolean_mask(item_id, tf.equal(label, 1)),
        store_frequency=True,
        vocab_filename=F.ITEM_POSITIVE_FREQ_VOCAB,
    )
    return {
        F.transformed_name(F.ITEM_ID): _apply(item_id, vocab, F.ITEM_OOV_BUCKETS),
        F.transformed_name(F.HISTORY_ITEM_IDS): _apply(history, vocab, F.ITEM_OOV_BUCKETS, True),
        F.HISTORY_MASK: tf.cast(tf.not_equal(history, F.PAD), tf.float32),
    }


def _user(inputs):
    out = {}
    user_id = _dense(inputs[F.USER_ID], "")
    out[F.transformed_name(F.USER_ID)] = tft.compute_and_apply_vocabulary(
        user_id, num_oov_buckets=F.USER_OOV_BUCKETS, vocab_filename=F.USER_VOCAB
    )
    for name, vocab in ((F.GENDER, F.GENDER_VOCAB), (F.OCCUPATION, F.OCCUPATION_VOCAB)):
        out[F.transformed_name(name)] = tft.compute_and_apply_vocabulary(
            _dense(inputs[name], F.UNKNOWN),
            num_oov_buckets=F.CATEGORY_OOV_BUCKETS,
            vocab_filename=vocab,
        )
    age = _dense(inputs[F.AGE], F.MISSING_INT)
    bucket = tf.raw_ops.Bucketize(input=age, boundaries=[float(b) for b in F.AGE_BUCKET_BOUNDARIES])
    out[F.transformed_name(F.AGE)] = tf.where(
        age < 0, tf.constant(0, tf.int64), tf.cast(bucket, tf.int64) + 1
    )  # 0: missing
    return out


def _context(inputs):
    ts = _dense(inputs[F.TIMESTAMP], 0)
    year = tf.cast(_dense(inputs[F.YEAR], F.MISSING_INT), tf.float32)
    known = year > 0
    mean = tft.mean(tf.boolean_mask(year, known))
    std = tf.sqrt(tft.var(tf.boolean_mask(year, known)))
    return {
        F.HOUR_OF_DAY: (ts // 3600) % 24,
        F.DAY_OF_WEEK: (ts // SECONDS_PER_DAY + 3) % 7,  # 1970-01-01 was a Thursday; 0 = Monday
        F.YEAR_NORMALIZED: tf.where(known, (year - mean) / tf.maximum(std, 1e-6), 0.0),
        F.HISTORY_LENGTH_FEATURE: _dense(inputs[F.HISTORY_LENGTH_FEATURE], 0),
        F.LABEL: _dense(inputs[F.LABEL], 0),
        F.EVENT: _dense(inputs[F.EVENT], 1),
    }


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Maps raw sequence features to model inputs.

    Args:
        inputs: raw features per schemas/schema.pbtxt: scalars as [batch] or
            [batch, 1], histories as [batch, L] strings padded with F.PAD,
            `genres` as a SparseTensor [batch, None].
        custom_config: Transform's custom_config; ITEM_VOCABULARY_SIZE caps the item
            vocabulary (absent or None: every item of the train split).

    Returns:
        Transformed features: `*_idx` int64 ids (OOV ids hash into buckets after
        the vocabulary; padding is -1), `history_mask` [batch, L] float32,
        time context, `year_normalized`, `history_length` and `label`.
    """
    top_k = (custom_config or {}).get(ITEM_VOCABULARY_SIZE)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"Transform custom_config {ITEM_VOCABULARY_SIZE} must be an int >= 1, "
                         f"got {top_k!r}")  # fmt: skip
    return {**_items(inputs, top_k), **_genres(inputs), **_user(inputs), **_context(inputs)}
