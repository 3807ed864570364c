"""The group writes' binary arrays (stepd.store.pg_arrays) read back by a real PostgreSQL as
the values they were made of: NULLs, texts beyond ASCII, empty arrays, ints in a float8
column, and the extremes of each type."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.postgres_server import PostgresServer

from stepd.store.pg_arrays import binary_array, binary_columns

CASES: list[tuple[str, list[Any]]] = [
    ("int8", [1, -5, 2**63 - 1, -(2**63)]),
    ("int8", [7, None, 0]),
    ("int4", [2**31 - 1, -(2**31), None]),
    ("float8", [1.5, 2, 1796587281.1234567, -0.0, None]),
    ("bool", [True, False, None]),
    ("text", ["a", "é€😀", "", '{"a":"\\u0001"}', None]),
    ("text", [None, None]),
    ("text", []),
    ("float8", []),
]


@pytest.fixture(scope="module")
def conn(postgres: PostgresServer) -> Any:
    with psycopg.connect(postgres.new_database(), autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("sql_type", "values"), CASES)
def test_an_array_reads_back_as_its_values(conn: Any, sql_type: str, values: list[Any]) -> None:
    row = conn.execute(f"SELECT %b::{sql_type}[]", (binary_array(sql_type, values),)).fetchone()
    assert row[0] == values


def test_rows_unnest_as_they_were(conn: Any) -> None:
    rows = [(1, "a", 1.5, True), (2, None, None, False), (3, "c", 3, None)]
    got = conn.execute(
        "SELECT * FROM unnest(%b::int8[], %b::text[], %b::float8[], %b::bool[])",
        binary_columns(rows, ["int8", "text", "float8", "bool"]),
    ).fetchall()
    assert got == [(1, "a", 1.5, True), (2, None, None, False), (3, "c", 3.0, None)]


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=40),
    floats=st.lists(st.none() | st.floats(allow_nan=False), max_size=40),
    texts=st.lists(st.none() | st.text(st.characters(exclude_characters="\x00")), max_size=40),
)
def test_any_column_reads_back(
    conn: Any, ints: list[int | None], floats: list[float | None], texts: list[str | None]
) -> None:
    got = conn.execute(
        "SELECT %b::int8[], %b::float8[], %b::text[]",
        (binary_array("int8", ints), binary_array("float8", floats), binary_array("text", texts)),
    ).fetchone()
    assert list(got) == [ints, floats, texts]
