"""Request bodies: parsed once, bounded in depth, refusing lone surrogates by field."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from planboard.api.json import MAX_JSON_DEPTH, NOT_FINITE_MESSAGE, SURROGATE_MESSAGE, parse_body
from planboard.domain.errors import ValidationFailed

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)
# a path of keys and indexes, and the container that holds a string at its end
paths = st.lists(st.one_of(st.text(min_size=1, max_size=5), st.integers(0, 3)), max_size=6)


def nest(path: list[Any], leaf: Any) -> tuple[Any, str]:
    """``leaf`` placed at ``path`` (lists padded with 0s), and its dotted field name."""
    value = leaf
    for step in reversed(path):
        value = [0] * step + [value] if isinstance(step, int) else {step: value}
    return value, ".".join(str(step) for step in path) or "body"


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert parse_body(orjson.dumps(value)) == value


@given(paths, st.text(max_size=5), st.integers(0xD800, 0xDFFF), st.text(max_size=5))
def test_a_lone_surrogate_anywhere_is_refused_naming_its_field(
    path: list[Any], before: str, surrogate: int, after: str
) -> None:
    body, field = nest(path, "LEAF")
    raw = json.dumps(body).replace(
        '"LEAF"', json.dumps(before)[:-1] + f"\\u{surrogate:04x}" + json.dumps(after)[1:]
    )
    with pytest.raises(ValidationFailed) as caught:
        parse_body(raw.encode())
    assert caught.value.errors == [(field, SURROGATE_MESSAGE)]


def test_a_surrogate_in_a_key_names_the_key_escaped() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_body(b'{"tasks": [{"ti\\udc00tle": "x"}]}')
    assert caught.value.errors == [("tasks.0.ti\\udc00tle", SURROGATE_MESSAGE)]


def test_a_surrogate_written_as_utf8_bytes_is_named_too() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_body(b'{"name": "\xed\xa0\x80"}')  # not UTF-8, but plainly a lone surrogate
    assert caught.value.errors == [("name", SURROGATE_MESSAGE)]


@given(paths, st.sampled_from(["1e999", "-1e400", "NaN", "Infinity", "-Infinity"]))
def test_a_number_that_is_not_finite_is_refused_naming_its_field(
    path: list[Any], number: str
) -> None:
    body, field = nest(path, "LEAF")
    raw = json.dumps(body).replace('"LEAF"', number)
    with pytest.raises(ValidationFailed) as caught:
        parse_body(raw.encode())
    assert caught.value.errors == [(field, NOT_FINITE_MESSAGE)]


def test_faults_of_both_kinds_are_all_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_body(b'{"title": "\\ud800", "estimate_hours": 1e999}')
    assert caught.value.errors == [
        ("estimate_hours", NOT_FINITE_MESSAGE),
        ("title", SURROGATE_MESSAGE),
    ]


def test_a_surrogate_pair_is_one_character() -> None:
    assert parse_body(b'{"t": "\\ud83d\\ude80"}') == {"t": "\U0001f680"}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 10_000, 1_000_000])
def test_nesting_past_the_bound_is_a_400(depth: int) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        with pytest.raises(web.HTTPBadRequest) as caught:
            parse_body(raw)
        assert caught.value.text == f"the request body nests deeper than {MAX_JSON_DEPTH} levels"


def test_nesting_up_to_the_bound_parses() -> None:
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    value = parse_body(deep)
    for _ in range(MAX_JSON_DEPTH - 1):
        value = value[0]
    assert value == []


def test_a_surrogate_before_too_deep_a_nesting_is_still_a_4xx() -> None:
    raw = b'["\\ud800", ' + b"[" * 5000 + b"]" * 5000 + b"]"
    with pytest.raises(web.HTTPBadRequest):  # the fallback parser refuses the depth too
        parse_body(raw)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"Nan", b"[1e400", b'{"a": 1,}', b"\xef\xbb\xbf{}", b'"\xff"'],
)
def test_what_is_not_strict_json_is_a_400(raw: bytes) -> None:
    """(A complete body whose only fault is a number that is not finite is a 422.)"""
    with pytest.raises(web.HTTPBadRequest) as caught:
        parse_body(raw)
    assert caught.value.text == "the request body is not valid JSON"
