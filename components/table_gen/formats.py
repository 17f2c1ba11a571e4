"""Strict readers of the raw tables (interactions, items, users) in three input formats.

Formats:
    csv: canonical CSV with a header row (an optional column mapping renames columns).
    movielens-100k: GroupLens ML-100K files `u.data`, `u.item` and `u.user`.
    movielens-1m: GroupLens ML-1M files `ratings.dat`, `movies.dat` and `users.dat`.

Every reader yields canonical rows (dicts keyed by the names of `schemas.features`) and
raises `InputError` with the file, the physical line number (header = line 1) and the
field for any malformed input. This module knows nothing of TFX.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterator, Mapping

import tensorflow as tf

from models.common import example_codec
from schemas import features as F

CSV, ML_100K, ML_1M = "csv", "movielens-100k", "movielens-1m"
FORMATS = (CSV, ML_100K, ML_1M)

DEFAULT_FILES: dict[str, dict[str, str]] = {
    CSV: {table: f"{table}.csv" for table in F.TABLES},  # interactions.csv, ...
    ML_100K: {F.INTERACTIONS: "u.data", F.ITEMS: "u.item", F.USERS: "u.user"},
    ML_1M: {F.INTERACTIONS: "ratings.dat", F.ITEMS: "movies.dat", F.USERS: "users.dat"},
}

# Genre names in the order of the 19 flags of `u.item` (the order of `u.genre`).
ML_100K_GENRES = tuple(
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|Drama|Fantasy|"
    "Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|Western".split("|")
)
# Occupation of each ML-1M code (index = code), as named in the ML-1M README.
ML_1M_OCCUPATIONS = tuple(
    "other|academic/educator|artist|clerical/admin|college/grad student|customer service|"
    "doctor/health care|executive/managerial|farmer|homemaker|K-12 student|lawyer|programmer|"
    "retired|sales/marketing|scientist|self-employed|technician/engineer|tradesman/craftsman|"
    "unemployed|writer".split("|")
)

_INT_RE = re.compile(r"[+-]?\d+")
_TITLE_YEAR_RE = re.compile(r"\((\d{4})\)")
_ML_100K_DATE_RE = re.compile(r"\d{1,2}-[A-Za-z]{3}-(\d{4})")


class InputError(ValueError):
    """Malformed or missing raw input; the message names the file, line and field."""


# ---------------------------------------------------------------------------
# Options and pre-flight checks.
def validate_options(
    table: str, fmt: str, column_mapping: Mapping[str, str] | None = None, delimiter: str = ","
) -> None:
    """Raises InputError for an unknown table or format, or a bad mapping or delimiter."""
    if table not in F.TABLES:
        raise InputError(f"unknown table {table!r}; expected one of {sorted(F.TABLES)}")
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; expected one of {list(FORMATS)}")
    if column_mapping and fmt != CSV:
        raise InputError(f"a column mapping applies to format {CSV!r} only, not {fmt!r}")
    if len(delimiter) != 1:
        raise InputError(f"the CSV delimiter must be one character, got {delimiter!r}")
    canonical = [c.name for c in F.TABLES[table]]
    unknown = sorted(set(column_mapping or {}) - set(canonical))
    if unknown:
        raise InputError(
            f"column mapping names {unknown}, which are not columns of table {table!r}; "
            f"its canonical columns are {canonical}"
        )


def check_files(
    paths: list[str],
    table: str,
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    delimiter: str = ",",
    pattern: str | None = None,
) -> None:
    """Checks the input files of a table before any row is read.

    Args:
        paths: the files matched for the table.
        table: one of F.TABLES.
        fmt: one of FORMATS.
        column_mapping: csv only: {canonical column: column name in the file}.
        delimiter: csv only: the field delimiter.
        pattern: the file pattern the paths came from, for the messages.

    Raises:
        InputError: no file ("missing file"), a CSV header without a required column,
            or no data row in any file ("empty input").
    """
    validate_options(table, fmt, column_mapping, delimiter)
    if not paths:
        raise InputError(f"missing file: no {table} input matches {pattern or 'the given paths'}")
    has_data = False
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise InputError(f"{path}: missing file ({table} input)")
        # Reads the CSV header (checked for required columns) and the first data row.
        records = _records(path, fmt, table, column_mapping, delimiter)
        try:
            has_data = next(records, None) is not None or has_data
        finally:
            records.close()
    if not has_data:
        raise InputError(f"empty input: no data row for table {table!r} in {list(paths)}")


# ---------------------------------------------------------------------------
# Reading.
def read_rows(
    path: str,
    table: str,
    fmt: str,
    column_mapping: Mapping[str, str] | None = None,
    delimiter: str = ",",
) -> Iterator[dict]:
    """Yields the typed canonical rows of one file.

    STRING values are str, INT int, FLOAT float and STRING_LIST list[str]; a missing or
    empty optional value is absent from the row. Blank lines are skipped.

    Args:
        path: the file (any tf.io.gfile path, e.g. gs://).
        table: one of F.TABLES.
        fmt: one of FORMATS.
        column_mapping: csv only: {canonical column: column name in the file}.
        delimiter: csv only: the field delimiter.

    Raises:
        InputError: a malformed row, naming the file, line and field.
    """
    validate_options(table, fmt, column_mapping, delimiter)
    if not tf.io.gfile.exists(path):
        raise InputError(f"{path}: missing file ({table} input)")
    columns = {c.name: c for c in F.TABLES[table]}
    for where, raw, labels in _records(path, fmt, table, column_mapping, delimiter):
        yield _typed(raw, columns, where, labels)


def _records(path, fmt, table, column_mapping, delimiter) -> Iterator[tuple[str, dict, dict]]:
    """Yields (location, {canonical: raw string}, {canonical: label}) per data row."""
    if fmt == CSV:
        yield from _csv_records(path, table, column_mapping or {}, delimiter)
        return
    sep, n_fields, to_raw = _FIXED_LAYOUTS[fmt][table]
    labels = {c.name: c.name for c in F.TABLES[table]}
    for number, line in enumerate(_lines(path, "latin-1"), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        fields = line.split(sep)
        if len(fields) != n_fields:
            raise InputError(f"{where}: expected {n_fields} fields, found {len(fields)}")
        yield where, to_raw(fields, where), labels


def _lines(path: str, encoding: str) -> Iterator[str]:
    """Yields the decoded physical lines of a file, line endings kept."""
    with tf.io.gfile.GFile(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise InputError(
                    f"{path}: line {number}: not valid {encoding} at byte {e.start}: {e.reason}"
                ) from None
            yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_records(path, table, column_mapping, delimiter) -> Iterator[tuple[str, dict, dict]]:
    """Yields the data rows of a canonical CSV file; see `_records`."""
    reader = csv.reader(_lines(path, "utf-8"), delimiter=delimiter, strict=True)
    header, positions, labels = None, {}, {}
    consumed = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"{path}: line {consumed + 1}: malformed CSV: {e}") from None
        number, consumed = consumed + 1, reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        where = f"{path}: line {number}"
        if header is None:
            header = [name.strip() for name in fields]
            positions, labels = _resolve_header(header, table, column_mapping, where)
            continue
        if len(fields) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields, found {len(fields)}")
        yield where, {name: fields[i] for name, i in positions.items()}, labels


def _resolve_header(header, table, column_mapping, where) -> tuple[dict, dict]:
    """Returns {canonical: column index} and {canonical: label} for a CSV header."""
    positions, labels = {}, {}
    for column in F.TABLES[table]:
        source = column_mapping.get(column.name, column.name)
        label = source if source == column.name else f"{source} ({column.name})"
        if header.count(source) > 1:
            raise InputError(f"{where}: column {source!r} appears more than once")
        if source in header:
            positions[column.name], labels[column.name] = header.index(source), label
        elif column.required:
            raise InputError(
                f"{where}: missing required column {label!r} of table {table!r}; "
                f"columns found: {header}; a column mapping {{{column.name!r}: "
                "'<column in the file>'} can name the column that holds it"
            )
    return positions, labels


def _typed(raw: Mapping[str, str], columns: Mapping[str, F.Column], where: str, labels) -> dict:
    """Converts raw strings to typed values; empty optional values are left out."""
    row = {}
    for name, column in columns.items():
        value = (raw.get(name) or "").strip()
        if not value:
            if column.required:
                raise InputError(f"{where}: field {labels[name]!r} is empty but required")
            continue
        typed = _convert(value, column.dtype, f"{where}: field {labels[name]!r}")
        if typed is not None:
            row[name] = typed
    return row


def _convert(value: str, dtype: str, where: str):
    """Converts one non-empty string to `dtype`; None for an empty STRING_LIST."""
    if dtype == F.INT:
        if not _INT_RE.fullmatch(value):
            raise InputError(f"{where}: expected an integer, found {value!r}")
        return int(value)
    if dtype == F.FLOAT:
        try:
            number = float(value) if "_" not in value else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InputError(f"{where}: expected a number, found {value!r}")
        return number
    if dtype == F.STRING_LIST:
        return [part.strip() for part in value.split(F.GENRE_SEPARATOR) if part.strip()] or None
    return value


# ---------------------------------------------------------------------------
# MovieLens layouts: (separator, number of fields, fields -> {canonical: raw string}).
def _title_year(title: str) -> str:
    """The year in the last "(1995)" of a MovieLens title, or ""."""
    years = _TITLE_YEAR_RE.findall(title)
    return years[-1] if years else ""


def _ml_100k_item(fields: list[str], where: str) -> dict:
    """u.item: id|title|release date|video release date|url|19 genre flags."""
    flags = fields[5:]
    genres = []
    for genre, flag in zip(ML_100K_GENRES, flags, strict=True):
        if flag.strip() not in ("0", "1"):
            raise InputError(
                f"{where}: field {F.GENRES!r} (flag {genre!r}): expected 0 or 1, found {flag!r}"
            )
        if flag.strip() == "1":
            genres.append(genre)
    date, date_year = fields[2].strip(), ""
    if date:
        match = _ML_100K_DATE_RE.fullmatch(date)
        if not match:
            raise InputError(
                f"{where}: field 'release date': expected a date like 01-Jan-1995, found {date!r}"
            )
        date_year = match.group(1)
    return {
        F.ITEM_ID: fields[0],
        F.TITLE: fields[1],
        F.GENRES: F.GENRE_SEPARATOR.join(genres),
        # The film's year from its title, as for ML-1M; else the (re-)release year.
        F.YEAR: _title_year(fields[1]) or date_year,
    }


def _ml_1m_user(fields: list[str], where: str) -> dict:
    """users.dat: UserID::Gender::Age::Occupation code::Zip-code."""
    code = fields[3].strip()
    if not code.isdigit() or int(code) >= len(ML_1M_OCCUPATIONS):
        raise InputError(
            f"{where}: field {F.OCCUPATION!r}: expected a code 0-{len(ML_1M_OCCUPATIONS) - 1}, "
            f"found {code!r}"
        )
    occupation = ML_1M_OCCUPATIONS[int(code)]
    return {F.USER_ID: fields[0], F.GENDER: fields[1], F.AGE: fields[2], F.OCCUPATION: occupation}


def _positional(*names: str) -> Callable[[list[str], str], dict]:
    """A layout whose first fields are `names`, in order (e.g. u.data, ratings.dat)."""
    return lambda fields, where: dict(zip(names, fields[: len(names)], strict=True))


def _ml_1m_item(fields: list[str], where: str) -> dict:
    """movies.dat: MovieID::Title (Year)::Genres (pipe-separated)."""
    del where
    year = _title_year(fields[1])
    return {F.ITEM_ID: fields[0], F.TITLE: fields[1], F.GENRES: fields[2], F.YEAR: year}


_RATINGS = _positional(F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP)
_Layout = tuple[str, int, Callable[[list[str], str], dict]]
_FIXED_LAYOUTS: dict[str, dict[str, _Layout]] = {
    ML_100K: {
        F.INTERACTIONS: ("\t", 4, _RATINGS),
        F.ITEMS: ("|", 5 + len(ML_100K_GENRES), _ml_100k_item),
        F.USERS: ("|", 5, _positional(F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION)),
    },
    ML_1M: {
        F.INTERACTIONS: ("::", 4, _RATINGS),
        F.ITEMS: ("::", 3, _ml_1m_item),
        F.USERS: ("::", 5, _ml_1m_user),
    },
}


# ---------------------------------------------------------------------------
# tf.train.Example.
def row_to_example(row: Mapping[str, object], table: str) -> tf.train.Example:
    """Encodes a canonical row of `table` as a tf.train.Example.

    Args:
        row: a row as yielded by `read_rows`.
        table: one of F.TABLES.

    Raises:
        ValueError: the row has a column the table lacks, or lacks a required one.
    """
    columns = {c.name: c for c in F.TABLES[table]}
    unknown = sorted(set(row) - set(columns))
    missing = sorted(c.name for c in columns.values() if c.required and c.name not in row)
    if unknown or missing:
        raise ValueError(f"row of table {table!r}: unknown {unknown}, missing required {missing}")
    return example_codec.encode(row, example_codec.table_dtypes(table))
