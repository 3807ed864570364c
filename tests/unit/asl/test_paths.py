"""Reference paths, wildcard paths and ResultPath writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stepd.asl import paths
from stepd.errors import INVALID_DEFINITION, ParseError, PathError, ResultPathMatchError

DATA = {
    "a": {"b": 1},
    "a b": 2,
    "a.b": 3,
    "items": [{"id": 1, "tag": "x"}, {"id": 2}, {"id": 3, "tag": "z"}],
    "none": None,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$", DATA, id="root"),
        pytest.param("$.a", {"b": 1}, id="member"),
        pytest.param("$.a.b", 1, id="nested-member"),
        pytest.param("$['a b']", 2, id="quoted-name-with-space"),
        pytest.param('$["a b"]', 2, id="double-quoted-name"),
        pytest.param("$['a.b']", 3, id="quoted-name-with-dot"),
        pytest.param("$['a']['b']", 1, id="bracket-chain"),
        pytest.param("$.items[0].id", 1, id="index"),
        pytest.param("$.items[-1].id", 3, id="negative-index"),
        pytest.param("$.none", None, id="null-value"),
        pytest.param("$.items[*].id", [1, 2, 3], id="wildcard-index"),
        pytest.param("$.items[*].tag", ["x", "z"], id="wildcard-skips-missing"),
        pytest.param("$.a.*", [1], id="wildcard-member"),
        pytest.param("$.items[*].nothing", [], id="wildcard-no-match"),
    ],
)
def test_read(path: str, expected: Any) -> None:
    """read returns the value at a path, or every match of a wildcard path."""
    assert expected == paths.read(DATA, path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$.items[1:]", [{"id": 2}, {"id": 3, "tag": "z"}], id="slice-from"),
        pytest.param("$.items[:1]", [{"id": 1, "tag": "x"}], id="slice-to"),
        pytest.param("$.items[0:2].id", [1, 2], id="slice-then-member"),
        pytest.param("$.items[-1:].id", [3], id="slice-from-the-end"),
        pytest.param("$.items[1:5].id", [2, 3], id="slice-past-the-end"),
        pytest.param("$.items[:]", DATA["items"], id="slice-everything"),
        pytest.param("$.missing[1:5]", [], id="slice-of-missing-is-empty"),
        pytest.param("$.missing[:1].id", [], id="slice-of-missing-then-member"),
        pytest.param("$.a[0:1]", [], id="slice-of-object-is-empty"),
    ],
)
def test_read_slices(path: str, expected: Any) -> None:
    """A slice gives the items from start up to end, and [] where there is no array."""
    assert expected == paths.read(DATA, path)


USERS = {"users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1, "name": "b"}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$.users[?(@.status == 0)]", [USERS["users"][0]], id="equal-number"),
        pytest.param("$.users[?(@.year <= 1998)].year", [1997, 1998], id="at-most"),
        pytest.param("$.users[?(@.year > 1997)].year", [1998], id="more-than"),
        pytest.param("$.users[?(@.name == 'b')].year", [1998], id="equal-quoted-string"),
        pytest.param("$.users[?(@.status != 1)].year", [1997], id="not-equal"),
        pytest.param('$.users[?(@.name != "c")].year', [1998], id="without-the-member-no-match"),
        pytest.param("$.users[?(@.name)].year", [1998], id="has-member"),
        pytest.param("$.users[?(@.status == '0')]", [], id="string-is-not-number"),
        pytest.param("$.[?(@.status == 1)].year", [], id="object-filtered-itself"),
        pytest.param("$.missing[?(@.a)]", [], id="filter-of-missing-is-empty"),
    ],
)
def test_read_filters(path: str, expected: Any) -> None:
    """A filter keeps the array items for which its comparison holds, as Jayway does."""
    assert expected == paths.read(USERS, path)


STORE = {
    "id": 1,
    "store": {"id": 2, "book": [{"id": 3, "t": "a"}, {"id": 4}], "bike": {"id": 5}},
    "book": [],
    "shelf": [[{"id": 6}]],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$..id", [1, 2, 3, 4, 5, 6], id="document-order"),
        pytest.param("$.store..id", [2, 3, 4, 5], id="below-a-member"),
        pytest.param("$..['t']", ["a"], id="quoted-name"),
        pytest.param("$..book[0]", [{"id": 3, "t": "a"}], id="then-index-empty-array-skipped"),
        pytest.param("$..book[*].id", [3, 4], id="then-wildcard"),
        pytest.param("$..book[?(@.t)].id", [3], id="then-filter"),
        pytest.param("$..nothing", [], id="no-match"),
        pytest.param("$.store.bike..*", [5], id="everything-below"),
        pytest.param(
            "$.shelf..*", [[{"id": 6}], {"id": 6}, 6], id="everything-children-before-descendants"
        ),
    ],
)
def test_read_deep_scan(path: str, expected: Any) -> None:
    """`..` finds a name at any depth, each object's own member before its descendants'."""
    assert expected == paths.read(STORE, path)


def test_deep_scan_finds_a_member_inside_a_match() -> None:
    """A match that holds the name again is followed by the inner match, as Jayway gives."""
    assert paths.read({"id": {"id": 1}}, "$..id") == [{"id": 1}, 1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$.items[0,2].id", [1, 3], id="indexes"),
        pytest.param("$.items[2,0].id", [3, 1], id="indexes-in-written-order"),
        pytest.param("$.items[ 0 , -1 ].id", [1, 3], id="spaces-and-from-the-end"),
        pytest.param("$.items[0,7].id", [1], id="missing-index-skipped"),
        pytest.param("$.a[0,1]", [], id="indexes-of-object"),
        pytest.param("$['a','a b']", {"a": {"b": 1}, "a b": 2}, id="names-ending-merge"),
        pytest.param("$[\"a b\", 'zz']", {"a b": 2}, id="names-missing-skipped"),
        pytest.param("$['zz','yy']", {}, id="names-none-present"),
        pytest.param(
            "$.items[*]['id','tag']",
            [{"id": 1, "tag": "x"}, {"id": 2}, {"id": 3, "tag": "z"}],
            id="names-each-match",
        ),
        pytest.param("$['a','items'][0]", [{"id": 1, "tag": "x"}], id="names-before-more-steps"),
    ],
)
def test_read_unions(path: str, expected: Any) -> None:
    """A union gives the items or members written; names ending a path make one object."""
    assert expected == paths.read(DATA, path)


NUMBERS = {"n": [{"n": i, "s": s} for i, s in enumerate(["zero", "One", "two", None, 7])]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$.n[?(@.n > 0 && @.n < 3)].n", [1, 2], id="and"),
        pytest.param("$.n[?(@.n == 0 || @.n == 4)].n", [0, 4], id="or"),
        pytest.param("$.n[?(@.n == 0 || @.n > 1 && @.n < 3)].n", [0, 2], id="and-binds-tighter"),
        pytest.param("$.n[?((@.n == 0 || @.n > 1) && @.n < 3)].n", [0, 2], id="parentheses"),
        pytest.param("$.n[?((@.n == 0 || @.n > 3) && @.s)].n", [0, 4], id="parentheses-first"),
        pytest.param("$.n[?(@.n>0&&@.n<2)].n", [1], id="no-spaces"),
        pytest.param("$.n[?(@.s == ')]' || @.n == 1)].n", [1], id="bracket-in-string"),
        pytest.param("$.n[?(@.s =~ /t.*/)].n", [2], id="regex-matches-whole-string"),
        pytest.param("$.n[?(@.s =~ /one/i)].n", [1], id="regex-ignore-case"),
        pytest.param("$.n[?(@.s =~ /one/)].n", [], id="regex-case-sensitive"),
        pytest.param("$.n[?(@.n =~ /[24]/)].n", [2, 4], id="regex-on-number"),
        pytest.param("$.n[?(@.s =~ /.*/)].n", [0, 1, 2, 3, 4], id="regex-null-and-number-as-text"),
        pytest.param(r"$.n[?(@.s =~ /\w+\/?/)].n", [0, 1, 2, 4], id="regex-escaped-slash"),
        pytest.param("$.n[?(@.s =~ /z.*/ && @.n < 1)].n", [0], id="regex-and"),
    ],
)
def test_read_compound_filters(path: str, expected: Any) -> None:
    """`&&`, `||`, parentheses and `=~` in filters select as Jayway does."""
    assert expected == paths.read(NUMBERS, path)


def test_regex_matches_any_item_of_an_array() -> None:
    """`=~` on an array holds when one of its items matches."""
    data = {"l": [{"tags": ["a", "bc"]}, {"tags": ["d"]}, {"tags": []}]}
    assert paths.read(data, "$.l[?(@.tags =~ /b./)].tags") == [["a", "bc"]]


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        pytest.param(r"""$['a\"b']""", {r"a\"b": 1}, 1, id="backslash-kept-in-name"),
        pytest.param(r"$['a\'b']", {r"a\'b": 2}, 2, id="escaped-quote-kept-in-name"),
        pytest.param(r'$["x\"y"]', {r"x\"y": 3}, 3, id="double-quoted"),
    ],
)
def test_quoted_names_keep_their_backslashes(path: str, data: Any, expected: Any) -> None:
    """A backslash in a quoted name stops the quote from ending it and stays in the name."""
    assert expected == paths.read(data, path)


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        pytest.param(
            "$.missing",
            "Invalid path '$.missing' : No results for path: $['missing']",
            id="missing-member",
        ),
        pytest.param(
            "$.a.b.c",
            "Invalid path '$.a.b.c' : No results for path: $['a']['b']['c']",
            id="member-of-number",
        ),
        pytest.param(
            "$.no.such.path",
            "Invalid path '$.no.such.path' : Missing property in path $['no']",
            id="missing-member-on-the-way",
        ),
        pytest.param(
            "$.a.x.y",
            "Invalid path '$.a.x.y' : Missing property in path $['a']['x']",
            id="missing-member-deeper",
        ),
        pytest.param(
            "$.items[3]",
            "Invalid path '$.items[3]' : No results for path: $['items'][3]",
            id="index-out-of-range",
        ),
        pytest.param(
            "$.a[0]",
            "Invalid path '$.a[0]' : No results for path: $['a'][0]",
            id="index-into-object",
        ),
    ],
)
def test_read_missing_raises_path_error(path: str, cause: str) -> None:
    """A definite path with no value raises PathError with AWS's cause text."""
    with pytest.raises(PathError) as raised:
        paths.read(DATA, path)
    assert cause == raised.value.message


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        pytest.param("a.b", "Invalid path 'a.b': a path must start with '$'", id="no-dollar"),
        pytest.param("$.", "Invalid path '$.': empty name after '.'", id="empty-name"),
        pytest.param("$[0", "Invalid path '$[0': missing ']'", id="unclosed-bracket"),
        pytest.param("$.a[", "Invalid path '$.a[': missing ']'", id="open-bracket-at-end"),
        pytest.param("$[x]", "Invalid path '$[x]': unsupported selector [x]", id="bare-word"),
        pytest.param("$[1_0]", "Invalid path '$[1_0]': unsupported selector [1_0]", id="digits"),
        pytest.param("$['a]", "Invalid path '$['a]': unterminated quoted name", id="open-quote"),
        pytest.param("$1", "Invalid path '$1': unexpected '1' at 1", id="digit-without-dot"),
        pytest.param(
            "$..", "Invalid path '$..': a deep scan ('..') needs a name or '*' after it", id="scan"
        ),
        pytest.param(
            "$..[0]",
            "Invalid path '$..[0]': a deep scan ('..') needs a name or '*' after it",
            id="deep-scan-of-index",
        ),
        pytest.param(
            "$..[?(@.a)]",
            "Invalid path '$..[?(@.a)]': a deep scan ('..') needs a name or '*' after it",
            id="deep-scan-of-filter",
        ),
        pytest.param(
            "$..*.a", "Invalid path '$..*.a': a deep scan '..*' must end the path", id="scan-all"
        ),
        pytest.param(
            "$.a[?(!@.b)]",
            "Invalid path '$.a[?(!@.b)]': unsupported filter [?(!@.b)]",
            id="negated-filter",
        ),
        pytest.param(
            "$.a[?(@.b && )]",
            "Invalid path '$.a[?(@.b && )]': unsupported filter [?(@.b && )]",
            id="and-without-right-side",
        ),
        pytest.param(
            "$.a[?((@.b || @.c)]",
            "Invalid path '$.a[?((@.b || @.c)]': a filter '[?(' needs ')]'",
            id="unbalanced-parentheses",
        ),
        pytest.param(
            "$.a[?(@.b =~ 'x')]",
            "Invalid path '$.a[?(@.b =~ 'x')]': unsupported filter [?(@.b =~ 'x')]",
            id="regex-match-needs-a-regex",
        ),
        pytest.param(
            "$.a[?(@.b =~ /x/g)]",
            "Invalid path '$.a[?(@.b =~ /x/g)]': unsupported regex flag 'g' in filter "
            "[?(@.b =~ /x/g)]",
            id="regex-flag",
        ),
        pytest.param(
            r"$.a[?(@.b =~ /\p{Alpha}/)]",
            r"Invalid path '$.a[?(@.b =~ /\p{Alpha}/)]': unsupported regex /\p{Alpha}/ in filter "
            r"[?(@.b =~ /\p{Alpha}/)]: bad escape \p at position 0",
            id="java-only-regex",
        ),
        pytest.param(
            "$.a[?(@.b == x)]",
            "Invalid path '$.a[?(@.b == x)]': unsupported value x in filter [?(@.b == x)]",
            id="filter-value",
        ),
        pytest.param(None, "Invalid path null: a path is a string starting with '$'", id="null"),
        pytest.param(
            ["$"], "Invalid path [\"$\"]: a path is a string starting with '$'", id="list"
        ),
    ],
)
def test_invalid_paths_raise_parse_error(path: Any, problem: str) -> None:
    """A path outside the supported syntax raises ParseError saying what is wrong."""
    with pytest.raises(ParseError) as raised:
        paths.read(DATA, path)
    assert (problem, INVALID_DEFINITION + problem) == (raised.value.problem, raised.value.message)


@pytest.mark.parametrize(
    ("parse", "path", "problem"),
    [
        pytest.param(
            paths.parse_reference,
            "$.a[*]",
            "Invalid path '$.a[*]': a reference path cannot hold a '*' wildcard",
            id="reference-wildcard",
        ),
        pytest.param(
            paths.parse_reference,
            "$.a.*",
            "Invalid path '$.a.*': a reference path cannot hold a '*' wildcard",
            id="reference-member-wildcard",
        ),
        pytest.param(
            paths.parse_result_path,
            "$.a[*]",
            "Invalid path '$.a[*]': a reference path cannot hold a '*' wildcard",
            id="result-path-wildcard",
        ),
        pytest.param(
            paths.parse_reference,
            "$..a",
            "Invalid path '$..a': a reference path cannot hold a deep scan ('..')",
            id="reference-deep-scan",
        ),
        pytest.param(
            paths.parse_reference,
            "$.a[0,1]",
            "Invalid path '$.a[0,1]': a reference path cannot hold a union",
            id="reference-index-union",
        ),
        pytest.param(
            paths.parse_reference,
            "$['a','b']",
            "Invalid path '$['a','b']': a reference path cannot hold a union",
            id="reference-name-union",
        ),
        pytest.param(
            paths.parse_result_path,
            "$.a[?(@.b && @.c)]",
            "Invalid path '$.a[?(@.b && @.c)]': a reference path cannot hold a filter",
            id="result-path-compound-filter",
        ),
        pytest.param(
            paths.parse_result_path,
            "$$.Execution",
            "Invalid path '$$.Execution': a ResultPath cannot write to the context object",
            id="result-path-context",
        ),
    ],
)
def test_narrower_parsers_refuse(
    parse: Callable[[Any], paths.Path], path: str, problem: str
) -> None:
    """Reference paths have no wildcard; a ResultPath has none and cannot write to `$$`."""
    with pytest.raises(ParseError) as raised:
        parse(path)
    assert problem == raised.value.problem


@pytest.mark.parametrize("path", ["$", "$.a", "$['a b'][0]", "$.list[-1]", "$$.Execution.Id", "$$"])
def test_reference_paths_parse(path: str) -> None:
    """A path without wildcards is a reference path."""
    assert path == paths.parse_reference(path).text


def test_resolve_reads_context_paths_from_the_context() -> None:
    """resolve reads `$$…` from the context object and `$…` from the data."""
    context = {"Execution": {"Id": "arn:x"}}
    assert (
        paths.resolve("$$.Execution.Id", DATA, context),
        paths.resolve("$.a.b", DATA, context),
    ) == ("arn:x", 1)


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        pytest.param({"a": 1}, "$", "R", id="root-replaces"),
        pytest.param({"a": 1}, "$.r", {"a": 1, "r": "R"}, id="adds-member"),
        pytest.param({"a": 1}, "$.a", {"a": "R"}, id="replaces-member"),
        pytest.param({"a": 1}, "$.x.y.z", {"a": 1, "x": {"y": {"z": "R"}}}, id="creates-objects"),
        pytest.param({"x": {"k": 1}}, "$.x.y", {"x": {"k": 1, "y": "R"}}, id="extends-object"),
        pytest.param({"l": [1, 2]}, "$.l[1]", {"l": [1, "R"]}, id="replaces-item"),
        pytest.param({"l": [1, 2]}, "$.l[-1]", {"l": [1, "R"]}, id="replaces-last-item"),
        pytest.param("text", "$", "R", id="root-of-non-object"),
    ],
)
def test_write(data: Any, path: str, expected: Any) -> None:
    """write places the value at the path, creating missing objects."""
    assert expected == paths.write(data, path, "R")


def test_write_leaves_the_input_unchanged() -> None:
    """write returns a copy and never changes the data it was given."""
    data = {"x": {"k": 1}}
    paths.write(data, "$.x.y", "R")
    assert data == {"x": {"k": 1}}


@pytest.mark.parametrize(
    ("data", "path", "cause"),
    [
        pytest.param(
            "hello", "$.r", 'Unable to apply ReferencePath $.r to input "hello"', id="string-input"
        ),
        pytest.param(
            [1], "$.r", "Unable to apply ReferencePath $.r to input [1]", id="array-input"
        ),
        pytest.param(
            {"a": 1},
            "$.a.b",
            'Unable to apply ReferencePath $.a.b to input {"a":1}',
            id="member-of-number",
        ),
        pytest.param(
            {"l": []},
            "$.l[0]",
            'Unable to apply ReferencePath $.l[0] to input {"l":[]}',
            id="index-out-of-range",
        ),
    ],
)
def test_write_into_non_object_raises(data: Any, path: str, cause: str) -> None:
    """write into something that is not an object raises ResultPathMatchError."""
    with pytest.raises(ResultPathMatchError) as raised:
        paths.write(data, path, "R")
    assert (cause, "States.ResultPathMatchFailure") == (raised.value.message, raised.value.error)


@pytest.mark.parametrize(
    "path",
    [pytest.param("$.a[*]", id="wildcard"), pytest.param("$$.Execution", id="context")],
)
def test_write_needs_a_reference_path(path: str) -> None:
    """write refuses wildcard and context paths."""
    with pytest.raises(ParseError):
        paths.write({"a": [1]}, path, "R")
