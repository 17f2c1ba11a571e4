"""Tests of the strict raw-table readers (components/table_gen/formats.py)."""

from __future__ import annotations

import os

import pytest

from components.table_gen import formats
from components.table_gen.formats import CSV, ML_1M, ML_100K, InputError
from schemas import features as F

ML_100K_DIR = "/work/shared/data/ml-100k"


def _write(tmp_path, name: str, text: str, encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def _rows(path: str, table: str, fmt: str = CSV, **kwargs) -> list[dict]:
    return list(formats.read_rows(path, table, fmt, **kwargs))


# ---------------------------------------------------------------------------
# csv
def test_csv_interactions_typed_rows_extra_columns_and_blank_lines(tmp_path):
    header = ",".join([F.USER_ID, "note", F.ITEM_ID, F.RATING, F.TIMESTAMP])
    path = _write(tmp_path, "i.csv", f"{header}\nu1,x,i1,4.5,100\n\nu2,,i2,,200\n")
    formats.check_files([path], F.INTERACTIONS, CSV)
    assert _rows(path, F.INTERACTIONS) == [
        {F.USER_ID: "u1", F.ITEM_ID: "i1", F.RATING: 4.5, F.TIMESTAMP: 100},
        {F.USER_ID: "u2", F.ITEM_ID: "i2", F.TIMESTAMP: 200},
    ]


def test_csv_items_quoting_genres_and_missing_optional_column(tmp_path):
    header = ",".join([F.ITEM_ID, F.TITLE, F.GENRES])  # no year column: optional
    text = f'{header}\ni1,"Toy Story, The (1995)",Animation|Children\'s\ni2,"A ""B""",\n'
    path = _write(tmp_path, "items.csv", text)
    assert _rows(path, F.ITEMS) == [
        {F.ITEM_ID: "i1", F.TITLE: "Toy Story, The (1995)", F.GENRES: ["Animation", "Children's"]},
        {F.ITEM_ID: "i2", F.TITLE: 'A "B"'},
    ]


def test_csv_users_column_mapping_and_delimiter(tmp_path):
    path = _write(tmp_path, "users.csv", "uid;years;gender\n7;31;F\n8;;\n")
    mapping = {F.USER_ID: "uid", F.AGE: "years"}
    formats.check_files([path], F.USERS, CSV, column_mapping=mapping, delimiter=";")
    assert _rows(path, F.USERS, column_mapping=mapping, delimiter=";") == [
        {F.USER_ID: "7", F.AGE: 31, F.GENDER: "F"},
        {F.USER_ID: "8"},
    ]


def test_csv_line_numbers_count_physical_lines(tmp_path):
    header = ",".join([F.ITEM_ID, F.TITLE, F.YEAR])
    path = _write(tmp_path, "items.csv", f'{header}\ni1,"two\nlines",1990\n\ni2,t,19x0\n')
    with pytest.raises(InputError, match=f"^{path}: line 5: field '{F.YEAR}': expected an integer"):
        _rows(path, F.ITEMS)


# ---------------------------------------------------------------------------
# MovieLens
def test_movielens_100k_tables(tmp_path):
    flags = ["0"] * 19
    flags[1] = flags[8] = "1"  # Action, Drama
    items = [
        "1|Café (1995)|01-Jan-1995||http://x|" + "|".join(flags),
        "2|No Year|05-Mar-1997||http://y|" + "|".join(["0"] * 19),
    ]
    item_path = _write(tmp_path, "u.item", "\n".join(items) + "\n", encoding="latin-1")
    assert _rows(item_path, F.ITEMS, ML_100K) == [
        {F.ITEM_ID: "1", F.TITLE: "Café (1995)", F.GENRES: ["Action", "Drama"], F.YEAR: 1995},
        {F.ITEM_ID: "2", F.TITLE: "No Year", F.YEAR: 1997},
    ]
    data_path = _write(tmp_path, "u.data", "196\t242\t3\t881250949\n")
    assert _rows(data_path, F.INTERACTIONS, ML_100K) == [
        {F.USER_ID: "196", F.ITEM_ID: "242", F.RATING: 3.0, F.TIMESTAMP: 881250949}
    ]
    user_path = _write(tmp_path, "u.user", "\n1|24|M|technician|85711\n")
    assert _rows(user_path, F.USERS, ML_100K) == [
        {F.USER_ID: "1", F.AGE: 24, F.GENDER: "M", F.OCCUPATION: "technician"}
    ]


def test_movielens_1m_tables(tmp_path):
    movies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Amélie (2001)::\n"
    movie_path = _write(tmp_path, "movies.dat", movies, encoding="latin-1")
    assert _rows(movie_path, F.ITEMS, ML_1M) == [
        {
            F.ITEM_ID: "1",
            F.TITLE: "Toy Story (1995)",
            F.GENRES: ["Animation", "Children's", "Comedy"],
            F.YEAR: 1995,
        },
        {F.ITEM_ID: "2", F.TITLE: "Amélie (2001)", F.YEAR: 2001},
    ]
    rating_path = _write(tmp_path, "ratings.dat", "1::1193::5::978300760\n")
    assert _rows(rating_path, F.INTERACTIONS, ML_1M) == [
        {F.USER_ID: "1", F.ITEM_ID: "1193", F.RATING: 5.0, F.TIMESTAMP: 978300760}
    ]
    user_path = _write(tmp_path, "users.dat", "1::F::1::10::48067\n2::M::56::0::70072\n")
    assert _rows(user_path, F.USERS, ML_1M) == [
        {F.USER_ID: "1", F.GENDER: "F", F.AGE: 1, F.OCCUPATION: "K-12 student"},
        {F.USER_ID: "2", F.GENDER: "M", F.AGE: 56, F.OCCUPATION: "other"},
    ]
    bad = _write(tmp_path, "bad.dat", "3::M::25::21::1\n")
    with pytest.raises(InputError, match=f"{bad}: line 1: field '{F.OCCUPATION}'.*found '21'"):
        _rows(bad, F.USERS, ML_1M)


def test_default_files():
    assert formats.DEFAULT_FILES[ML_100K][F.INTERACTIONS] == "u.data"
    assert formats.DEFAULT_FILES[ML_1M][F.ITEMS] == "movies.dat"
    assert formats.DEFAULT_FILES[CSV][F.USERS] == f"{F.USERS}.csv"


# ---------------------------------------------------------------------------
# Bad input
_HEADER = ",".join([F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP])


def test_missing_file(tmp_path):
    pattern = str(tmp_path / "span-1" / "*.csv")
    with pytest.raises(InputError, match=f"missing file.*{F.INTERACTIONS}.*span-1"):
        formats.check_files([], F.INTERACTIONS, CSV, pattern=pattern)
    with pytest.raises(InputError, match="nope.csv: missing file"):
        _rows(str(tmp_path / "nope.csv"), F.INTERACTIONS)


def test_missing_required_column_in_any_file(tmp_path):
    good = _write(tmp_path, "a.csv", f"{_HEADER}\nu,i,1,2\n")
    bad = _write(tmp_path, "b.csv", f"user,{F.ITEM_ID},{F.TIMESTAMP}\nu,i,5\n")
    with pytest.raises(InputError) as info:
        formats.check_files([good, bad], F.INTERACTIONS, CSV)
    message = str(info.value)
    assert message.startswith(f"{bad}: line 1: missing required column '{F.USER_ID}'")
    assert f"columns found: {['user', F.ITEM_ID, F.TIMESTAMP]}" in message
    assert "column mapping" in message
    mapped = {F.USER_ID: "user"}
    formats.check_files([bad], F.INTERACTIONS, CSV, column_mapping=mapped)
    assert _rows(bad, F.INTERACTIONS, column_mapping=mapped)[0][F.USER_ID] == "u"
    with pytest.raises(InputError, match=rf"missing required column 'user \({F.USER_ID}\)'"):
        formats.check_files([good], F.INTERACTIONS, CSV, column_mapping=mapped)


def test_wrong_field_count_names_line(tmp_path):
    rows = "".join(f"u{n},i,1,{n}\n" for n in range(15)) + "u,i,1,2,3\n"
    path = _write(tmp_path, "i.csv", f"{_HEADER}\n{rows}")
    with pytest.raises(InputError) as info:
        _rows(path, F.INTERACTIONS)
    assert str(info.value) == f"{path}: line 17: expected 4 fields, found 5"
    data = _write(tmp_path, "u.data", "1\t2\t3\t4\n1\t2\t3\n")
    with pytest.raises(InputError, match=f"^{data}: line 2: expected 4 fields, found 3$"):
        _rows(data, F.INTERACTIONS, ML_100K)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("u,i,abc,5", f"line 3: field '{F.RATING}': expected a number, found 'abc'"),
        ("u,i,nan,5", f"line 3: field '{F.RATING}': expected a number, found 'nan'"),
        (
            "u,i,4,2024-01-01",
            f"line 3: field '{F.TIMESTAMP}': expected an integer, found '2024-01-01'",
        ),
        ("u,i,4,1.5", f"line 3: field '{F.TIMESTAMP}': expected an integer, found '1.5'"),
        (",i,4,5", f"line 3: field '{F.USER_ID}' is empty but required"),
        ("u,  ,4,5", f"line 3: field '{F.ITEM_ID}' is empty but required"),
    ],
)
def test_bad_values_name_file_line_and_field(tmp_path, row, message):
    path = _write(tmp_path, "i.csv", f"{_HEADER}\nu,i,1,2\n{row}\n")
    formats.check_files([path], F.INTERACTIONS, CSV)  # only headers and first rows
    with pytest.raises(InputError) as info:
        _rows(path, F.INTERACTIONS)
    assert str(info.value) == f"{path}: {message}"


def test_bad_values_in_movielens_and_mapped_columns(tmp_path):
    user = _write(tmp_path, "u.user", "1|old|M|writer|0\n")
    with pytest.raises(
        InputError, match=f"line 1: field '{F.AGE}': expected an integer, found 'old'"
    ):
        _rows(user, F.USERS, ML_100K)
    ratings = _write(tmp_path, "ratings.dat", "1::2::five::4\n")
    with pytest.raises(InputError, match=f"line 1: field '{F.RATING}': expected a number"):
        _rows(ratings, F.INTERACTIONS, ML_1M)
    path = _write(tmp_path, "i.csv", "u,i,score,ts\nu,i,x,1\n")
    mapping = {F.USER_ID: "u", F.ITEM_ID: "i", F.RATING: "score", F.TIMESTAMP: "ts"}
    with pytest.raises(
        InputError, match=rf"line 2: field 'score \({F.RATING}\)': expected a number"
    ):
        _rows(path, F.INTERACTIONS, column_mapping=mapping)


def test_empty_input(tmp_path):
    header_only = _write(tmp_path, "a.csv", f"{_HEADER}\n\n")
    blank = _write(tmp_path, "b.csv", "")
    with pytest.raises(InputError) as info:
        formats.check_files([header_only, blank], F.INTERACTIONS, CSV)
    message = str(info.value)
    assert message.startswith(f"empty input: no data row for table '{F.INTERACTIONS}'")
    assert header_only in message and blank in message
    with pytest.raises(InputError, match=f"empty input.*{F.USERS}"):
        formats.check_files([_write(tmp_path, "u.user", "\n\n")], F.USERS, ML_100K)


def test_malformed_csv_and_encoding(tmp_path):
    quoted = _write(tmp_path, "q.csv", f'{_HEADER}\nu,i,1,2\nu,"i"x,1,2\n')
    with pytest.raises(InputError, match=f"^{quoted}: line 3: malformed CSV"):
        _rows(quoted, F.INTERACTIONS)
    latin = _write(tmp_path, "l.csv", f"{_HEADER}\nu,i,1,2\nJosé,i,1,2\n", encoding="latin-1")
    with pytest.raises(InputError, match=f"^{latin}: line 3: not valid utf-8"):
        _rows(latin, F.INTERACTIONS)


def test_bad_options():
    with pytest.raises(InputError, match="unknown input format 'parquet'"):
        formats.validate_options(F.USERS, "parquet")
    with pytest.raises(InputError, match="unknown table"):
        formats.validate_options("no_such_table", CSV)
    with pytest.raises(InputError, match=r"column mapping names \['uid'\]"):
        formats.validate_options(F.USERS, CSV, {"uid": "id"})
    with pytest.raises(InputError, match="column mapping applies to format 'csv' only"):
        formats.validate_options(F.USERS, ML_100K, {F.USER_ID: "id"})


# ---------------------------------------------------------------------------
# tf.train.Example
def test_row_to_example():
    row = {F.ITEM_ID: "i1", F.TITLE: "Café", F.GENRES: ["A", "B"], F.YEAR: 1995}
    feature = formats.row_to_example(row, F.ITEMS).features.feature
    assert sorted(feature) == sorted(row)
    assert feature[F.ITEM_ID].bytes_list.value == [b"i1"]
    assert feature[F.TITLE].bytes_list.value == ["Café".encode()]
    assert feature[F.GENRES].bytes_list.value == [b"A", b"B"]
    assert feature[F.YEAR].int64_list.value == [1995]
    rating = formats.row_to_example(
        {F.USER_ID: "u", F.ITEM_ID: "i", F.RATING: 4.5, F.TIMESTAMP: 7}, F.INTERACTIONS
    )
    assert rating.features.feature[F.RATING].float_list.value == [4.5]
    with pytest.raises(ValueError, match=rf"unknown \['{F.TITLE}'\]"):
        formats.row_to_example({F.USER_ID: "u", F.TITLE: "t"}, F.USERS)
    with pytest.raises(ValueError, match=rf"missing required \['{F.USER_ID}'\]"):
        formats.row_to_example({F.AGE: 3}, F.USERS)


# ---------------------------------------------------------------------------
# The real MovieLens 100K (read-only, shared; never copied into the repo).
@pytest.fixture(scope="module")
def ml_100k():
    if not os.path.isdir(ML_100K_DIR):
        pytest.skip(f"{ML_100K_DIR} is absent")

    def read(table: str) -> list[dict]:
        path = os.path.join(ML_100K_DIR, formats.DEFAULT_FILES[ML_100K][table])
        formats.check_files([path], table, ML_100K)
        return _rows(path, table, ML_100K)

    return read


def test_real_ml_100k_counts_and_spot_checks(ml_100k):
    users, items, ratings = ml_100k(F.USERS), ml_100k(F.ITEMS), ml_100k(F.INTERACTIONS)
    assert (len(users), len(items), len(ratings)) == (943, 1682, 100_000)
    assert len({r[F.USER_ID] for r in users}) == 943
    assert len({r[F.ITEM_ID] for r in items}) == 1682
    assert items[0] == {
        F.ITEM_ID: "1",
        F.TITLE: "Toy Story (1995)",
        F.GENRES: ["Animation", "Children's", "Comedy"],
        F.YEAR: 1995,
    }
    assert users[0] == {F.USER_ID: "1", F.AGE: 24, F.GENDER: "M", F.OCCUPATION: "technician"}
    assert ratings[0] == {F.USER_ID: "196", F.ITEM_ID: "242", F.RATING: 3.0, F.TIMESTAMP: 881250949}
    assert {r[F.RATING] for r in ratings} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert sum(F.YEAR in r for r in items) == 1681  # item 267 "unknown" has no date
    jedi = next(r for r in items if r[F.ITEM_ID] == "181")
    assert jedi[F.YEAR] == 1983  # the title's year, not the 1997 re-release date
