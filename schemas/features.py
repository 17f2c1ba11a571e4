"""Feature names, types, vocabulary settings and history length.

This module is the single place where a feature name is spelled out
(DESIGN §3). Every other module imports the constants below.
"""

from __future__ import annotations

import dataclasses

# ---------------------------------------------------------------------------
# Raw tables (DESIGN §3).
USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"

TITLE = "title"
GENRES = "genres"
YEAR = "year"

AGE = "age"
GENDER = "gender"
OCCUPATION = "occupation"

GENRE_SEPARATOR = "|"

INT, FLOAT, STRING, STRING_LIST = "int", "float", "string", "string_list"


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a raw table.

    Attributes:
        name: canonical column name.
        dtype: one of INT, FLOAT, STRING, STRING_LIST (pipe-separated).
        required: whether the column must be present in the input.
    """

    name: str
    dtype: str
    required: bool


INTERACTIONS, ITEMS, USERS = "interactions", "items", "users"

TABLES: dict[str, tuple[Column, ...]] = {
    INTERACTIONS: (
        Column(USER_ID, STRING, True),
        Column(ITEM_ID, STRING, True),
        Column(RATING, FLOAT, False),
        Column(TIMESTAMP, INT, True),
    ),
    ITEMS: (
        Column(ITEM_ID, STRING, True),
        Column(TITLE, STRING, False),
        Column(GENRES, STRING_LIST, False),
        Column(YEAR, INT, False),
    ),
    USERS: (
        Column(USER_ID, STRING, True),
        Column(AGE, INT, False),
        Column(GENDER, STRING, False),
        Column(OCCUPATION, STRING, False),
    ),
}

# Key of each table: rows are joined on it.
TABLE_KEYS = {INTERACTIONS: (USER_ID, ITEM_ID, TIMESTAMP), ITEMS: (ITEM_ID,), USERS: (USER_ID,)}

# ---------------------------------------------------------------------------
# Sequence examples written by BehaviorSequenceGen (one per event or sampled
# negative). History features are padded with PAD to HISTORY_LENGTH, most
# recent item last.
LABEL = "label"
EVENT = "event"  # 1: an interaction from the log (any rating); 0: a sampled ranker negative
HISTORY_ITEM_IDS = "history_item_ids"
HISTORY_GENRES = "history_genres"  # primary genre of each history item
HISTORY_LENGTH_FEATURE = "history_length"
HISTORY_BUCKET = "history_length_bucket"  # for evaluation slices, e.g. "5-9"
PRIMARY_GENRE = "genre"

HISTORY_LENGTH = 20
HISTORY_BUCKET_EDGES = (0, 1, 5, 10, 20)  # buckets "0", "1-4", "5-9", "10-19", "20+"
PAD = ""
UNKNOWN = "__unknown__"  # written for a missing categorical value
MISSING_INT = -1  # written for a missing int (age, year)

# Raw features of a sequence example and their dtype. The curated
# schemas/schema.pbtxt states the same contract for TFDV.
SEQUENCE_FEATURES: dict[str, str] = {
    USER_ID: STRING,
    ITEM_ID: STRING,
    TIMESTAMP: INT,
    LABEL: INT,
    EVENT: INT,
    AGE: INT,
    GENDER: STRING,
    OCCUPATION: STRING,
    GENRES: STRING_LIST,
    PRIMARY_GENRE: STRING,
    YEAR: INT,
    HISTORY_ITEM_IDS: STRING_LIST,
    HISTORY_GENRES: STRING_LIST,
    HISTORY_LENGTH_FEATURE: INT,
    HISTORY_BUCKET: STRING,
}
FIXED_LENGTH_LISTS = (HISTORY_ITEM_IDS, HISTORY_GENRES)

# Catalog examples (BehaviorSequenceGen's catalog output): one per item.
ITEM_COUNT = "item_count"  # interactions of the item in the training split
CATALOG_FEATURES: dict[str, str] = {
    ITEM_ID: STRING,
    TITLE: STRING,
    GENRES: STRING_LIST,
    PRIMARY_GENRE: STRING,
    YEAR: INT,
    ITEM_COUNT: INT,
}
# Custom properties of BehaviorSequenceGen's examples artifact: how it drew the ranker's
# negatives (NEGATIVE_RATIO per positive, with probability ~ ITEM_COUNT ** NEGATIVE_POWER),
# which the served score's log q(item) term needs (RecommenderAssembler).
NEGATIVE_POWER_PROPERTY = "negative_power"
NEGATIVE_RATIO_PROPERTY = "negative_ratio"

# ---------------------------------------------------------------------------
# Transform: vocabularies and transformed feature names.
ITEM_VOCAB = "item_id_vocab"  # shared by item_id and history_item_ids
ITEM_POSITIVE_FREQ_VOCAB = "item_id_positive_frequency"  # for log-Q
USER_VOCAB = "user_id_vocab"
GENRE_VOCAB = "genre_vocab"  # shared by genres, genre and history_genres
GENDER_VOCAB = "gender_vocab"
OCCUPATION_VOCAB = "occupation_vocab"

ITEM_OOV_BUCKETS = 10
USER_OOV_BUCKETS = 10
CATEGORY_OOV_BUCKETS = 1

AGE_BUCKET_BOUNDARIES = (18, 25, 35, 45, 50, 56)
YEAR_MIN, YEAR_MAX = 1900, 2030


def history_bucket(length: int) -> str:
    """The slice name of a history length, e.g. 7 -> "5-9", 0 -> "0", 25 -> "20+"."""
    edges = HISTORY_BUCKET_EDGES
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= length < hi:
            return str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"
    return f"{edges[-1]}+"


def transformed_name(name: str) -> str:
    """Returns the name of a transformed feature, e.g. `item_id_idx`."""
    return f"{name}_idx"


HISTORY_MASK = "history_mask"
HOUR_OF_DAY = "hour_of_day"
DAY_OF_WEEK = "day_of_week"
YEAR_NORMALIZED = "year_normalized"
