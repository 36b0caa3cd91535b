"""Typed dependencies: the plan notation ``T1.1 (SS+2d)``, its errors and round trip."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planboard.domain.errors import ValidationFailed
from planboard.domain.links import (
    _NOTATION,
    MAX_LAG,
    Dependency,
    DependencySyntaxError,
    Lag,
    LagUnit,
    LinkType,
    format_dependencies,
    format_dependency,
    parse_dependencies,
    parse_dependency,
)

H, D = LagUnit.HOURS, LagUnit.DAYS


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("T1.1", Dependency("T1.1"), "T1.1"),
        ("T1.1 (FS)", Dependency("T1.1"), "T1.1"),
        ("T1.1 (FS+0d)", Dependency("T1.1"), "T1.1"),
        ("T1.1 (SS)", Dependency("T1.1", LinkType.SS), "T1.1 (SS)"),
        ("T1.1 (SS+2d)", Dependency("T1.1", LinkType.SS, Lag(2, D)), "T1.1 (SS+2d)"),
        ("T1.1 (FF-4h)", Dependency("T1.1", LinkType.FF, Lag(-4, H)), "T1.1 (FF-4h)"),
        ("T1.1 (FS-1.5d)", Dependency("T1.1", LinkType.FS, Lag(-1.5, D)), "T1.1 (FS-1.5d)"),
        (
            "  t2_a ( sf + 0.25 H )  ",
            Dependency("t2_a", LinkType.SF, Lag(0.25, H)),
            "t2_a (SF+0.25h)",
        ),
        ("T1.1(ss+2D)", Dependency("T1.1", LinkType.SS, Lag(2, D)), "T1.1 (SS+2d)"),
        ("T1.1 (SS+0.0001h)", Dependency("T1.1", LinkType.SS, Lag(0.0001)), "T1.1 (SS+0.0001h)"),
        ("T1.1 (FS+10000d)", Dependency("T1.1", lag=Lag(10_000, D)), "T1.1 (FS+10000d)"),
    ],
)
def test_notation_examples(text: str, expected: Dependency, canonical: str) -> None:
    dep = parse_dependency(text)
    assert dep == expected
    assert format_dependency(dep) == canonical
    assert str(dep) == canonical


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "write a task ref"),
        ("(SS+2d)", "write a task ref"),
        ("T1.1 SS+2d", "write a task ref"),
        ("T1.1 (SS+2d", "write a task ref"),
        ("T1.1 (+2d)", "write a task ref"),
        ("T1.1 (XX)", "use FS, SS, FF or SF"),
        ("T1.1 (SS+2)", "needs a unit"),
        ("T1.1 (SS+2w)", "unknown lag unit 'w'"),
        ("T1.1 (SS+0.00001h)", "more than 4 decimals"),
        ("T1.1 (SS+10001d)", "over 10000"),
        ("T1.1 (SS+1e3h)", "write a task ref"),
        ("T1.1 (SS++2h)", "write a task ref"),
    ],
)
def test_bad_notation_says_what_to_write(text: str, words: str) -> None:
    with pytest.raises(DependencySyntaxError) as caught:
        parse_dependency(text)
    assert words in caught.value.detail
    assert caught.value.errors == [("dependencies", caught.value.detail)]
    assert isinstance(caught.value, ValidationFailed)


def test_lists_parse_in_order_and_refuse_a_repeated_predecessor() -> None:
    assert parse_dependencies("T1.1, T1.2 (SS+2d),T2.1 (FF-4h)") == (
        Dependency("T1.1"),
        Dependency("T1.2", LinkType.SS, Lag(2, D)),
        Dependency("T2.1", LinkType.FF, Lag(-4)),
    )
    assert parse_dependencies("") == ()
    assert parse_dependencies(" , ") == ()
    with pytest.raises(DependencySyntaxError, match=r"T1\.1 is listed twice"):
        parse_dependencies("T1.1, T1.1 (SS)")


def test_lags_convert_days_through_hours_per_day() -> None:
    assert Lag(2, D).hours(8) == 16
    assert Lag(-0.5, D).hours(7.5) == -3.75
    assert Lag(3, H).hours(7.5) == 3


def test_zero_lag_is_one_value_and_lags_keep_four_decimals() -> None:
    assert Lag(0, D) == Lag() == Lag(-0.0, H)
    assert Lag(1.23456).amount == 1.2346
    assert Lag(2).amount == 2.0
    assert isinstance(Lag(2).amount, float)


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), MAX_LAG + 1, -MAX_LAG - 1, True])
def test_bad_lags_are_refused(amount: float) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Lag(amount)
    assert caught.value.errors[0][0] == "lag"


def test_lag_units_and_link_types_are_checked() -> None:
    with pytest.raises(ValidationFailed, match="unknown lag unit 'w'"):
        Lag(1, "w")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed) as caught:
        Dependency("T1", "XX")  # type: ignore[arg-type]
    assert caught.value.errors[0][0] == "type"
    assert Dependency("T1", "SS").type is LinkType.SS  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        Dependency("")


def test_link_type_sides() -> None:
    assert [t.from_finish for t in LinkType] == [True, False, True, False]
    assert [t.to_finish for t in LinkType] == [False, False, True, True]


refs = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True)
lags = st.builds(
    Lag,
    st.integers(-100_000_000, 100_000_000).map(lambda n: n / 10_000),
    st.sampled_from(list(LagUnit)),
)
dependencies = st.builds(Dependency, refs, st.sampled_from(list(LinkType)), lags)


@given(dependencies)
def test_format_then_parse_is_the_identity(dep: Dependency) -> None:
    assert parse_dependency(format_dependency(dep)) == dep


@given(st.lists(dependencies, unique_by=lambda d: d.predecessor, max_size=6))
def test_lists_round_trip(deps: list[Dependency]) -> None:
    assert parse_dependencies(format_dependencies(deps)) == tuple(deps)


@given(
    refs,
    st.sampled_from(["fs", "SS", "Ff", "sF"]),
    st.sampled_from(["+", "-"]),
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["h", "d", "H", "D"]),
)
def test_written_notation_reaches_a_canonical_fixed_point(
    ref: str, kind: str, sign: str, amount: str, unit: str
) -> None:
    canonical = format_dependency(parse_dependency(f"{ref} ({kind}{sign}{amount}{unit})"))
    assert format_dependency(parse_dependency(canonical)) == canonical


# The notation's pattern before, quadratic on a run of spaces after a lag: the oracle the
# linear one must agree with.
OLD_NOTATION = re.compile(
    r"""^(?P<ref>[A-Za-z0-9][A-Za-z0-9._-]*)
        (?:\s*\(\s*(?P<type>[A-Za-z]{2})
            (?:\s*(?P<sign>[+-])\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*))?
        \s*\))?$""",
    re.VERBOSE,
)
PIECES = st.sampled_from(["T1", " ", "(", ")", "SS", "+", "-", "2", ".5", "d", "h", "x"])


@given(st.lists(PIECES, max_size=10).map("".join))
def test_the_pattern_agrees_with_the_one_it_replaces(text: str) -> None:
    old, new = OLD_NOTATION.match(text), _NOTATION.match(text)
    assert (old is None) == (new is None)
    if old is not None and new is not None:
        assert old.group("ref", "type", "sign", "amount") == new.group(
            "ref", "type", "sign", "amount"
        )
        assert (old["unit"] or None) == new["unit"]


@pytest.mark.parametrize(
    "text",
    [
        "T1.1 (SS+1" + " " * 300_000 + "x",
        "T1.1 ( SS + 1" + " " * 300_000 + "d" + " " * 300_000 + "x",
        "T1.1 (SS" + " " * 300_000 + "x",
        "T1.1 (SS+" + "1" * 300_000 + "x",
    ],
)
def test_hostile_notation_takes_linear_time(text: str) -> None:
    started = time.process_time()
    with pytest.raises(DependencySyntaxError):
        parse_dependency(text)
    assert time.process_time() - started < 5
