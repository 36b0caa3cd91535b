"""Typed dependencies: finish-to-start and friends, with a signed lag.

A :class:`Dependency` is held by the successor and names its predecessor. The plan
notation is ``T1.1`` (finish-to-start, no lag), ``T1.1 (SS)``, ``T1.1 (SS+2d)`` or
``T1.1 (FF-4h)``: the link type, then an optional signed lag in working hours (``h``)
or working days (``d``, converted through the calendar's hours per day when a
schedule is computed, so a plan keeps the unit it was written in).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .errors import ValidationFailed

MAX_LAG = 10_000.0
LAG_DECIMALS = 4

# No two ``\s*`` may meet (as the lag's and the closing parenthesis's did): splitting a
# run of spaces between them made a hostile "T1 (SS+1      …x" take quadratic time.
_NOTATION = re.compile(
    r"""^(?P<ref>[A-Za-z0-9][A-Za-z0-9._-]*)
        (?:\s*\(\s*(?P<type>[A-Za-z]{2})
            (?:\s*(?P<sign>[+-])\s*(?P<amount>\d+(?:\.\d+)?)(?:\s*(?P<unit>[A-Za-z]+))?)?
        \s*\))?$""",
    re.VERBOSE,
)


class LinkType(StrEnum):
    """How the successor's dates follow the predecessor's (``FS``: start after its finish)."""

    FS = "FS"
    SS = "SS"
    FF = "FF"
    SF = "SF"

    @property
    def from_finish(self) -> bool:
        """Whether the predecessor's finish (not its start) drives the link."""
        return self in (LinkType.FS, LinkType.FF)

    @property
    def to_finish(self) -> bool:
        """Whether the link constrains the successor's finish (not its start)."""
        return self in (LinkType.FF, LinkType.SF)


class LagUnit(StrEnum):
    """Working hours or working days."""

    HOURS = "h"
    DAYS = "d"


class DependencySyntaxError(ValidationFailed):
    """A dependency in plan notation could not be read (field ``dependencies``)."""

    def __init__(self, detail: str) -> None:
        super().__init__([("dependencies", detail)], detail)


@dataclass(frozen=True, slots=True)
class Lag:
    """A signed delay in working time, kept to four decimals; zero is always ``0 h``."""

    amount: float = 0.0
    unit: LagUnit = LagUnit.HOURS

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValidationFailed([("lag", "must be a number")], "lag must be a number")
        if not math.isfinite(amount) or abs(amount) > MAX_LAG:
            detail = f"lag must be between -{MAX_LAG:g} and {MAX_LAG:g}"
            raise ValidationFailed([("lag", detail)], detail)
        try:
            unit = LagUnit(self.unit)
        except ValueError:
            detail = f"unknown lag unit {self.unit!r}: use h (working hours) or d (working days)"
            raise ValidationFailed([("lag", detail)], detail) from None
        amount = round(amount, LAG_DECIMALS)  # what the notation can carry
        if amount == 0:
            amount, unit = 0.0, LagUnit.HOURS
        object.__setattr__(self, "amount", float(amount))
        object.__setattr__(self, "unit", unit)

    def hours(self, hours_per_day: float) -> float:
        """The lag in working hours, given the calendar's hours per working day."""
        return self.amount * hours_per_day if self.unit is LagUnit.DAYS else self.amount

    def __str__(self) -> str:
        sign = "-" if self.amount < 0 else "+"
        return f"{sign}{_number(abs(self.amount))}{self.unit.value}"


@dataclass(frozen=True, slots=True)
class Dependency:
    """The successor waits on ``predecessor`` as ``type`` says, shifted by ``lag``."""

    predecessor: str
    type: LinkType = LinkType.FS
    lag: Lag = Lag()

    def __post_init__(self) -> None:
        if not isinstance(self.predecessor, str) or not self.predecessor:
            raise ValidationFailed(
                [("predecessor", "must name a task")], "dependency without a task"
            )
        try:
            object.__setattr__(self, "type", LinkType(self.type))
        except ValueError:
            detail = f"unknown link type {self.type!r}: use FS, SS, FF or SF"
            raise ValidationFailed([("type", detail)], detail) from None

    def __str__(self) -> str:
        return format_dependency(self)


def parse_dependency(text: str) -> Dependency:
    """``T1.1``, ``T1.1 (SS)``, ``T1.1 (SS+2d)``, ``T1.1 (FF-4h)`` → Dependency.

    Type and unit are case-insensitive; the lag needs a unit and at most four decimals.
    Raises :class:`DependencySyntaxError` with a message that says what to write.
    """
    text = text.strip()
    match = _NOTATION.match(text)
    if match is None:
        raise DependencySyntaxError(
            f"bad dependency {text!r}: write a task ref, optionally with a link type and lag, "
            "e.g. 'T1.1', 'T1.1 (SS)' or 'T1.1 (SS+2d)'"
        )
    try:
        link = LinkType(match["type"].upper()) if match["type"] else LinkType.FS
    except ValueError:
        raise DependencySyntaxError(
            f"bad link type {match['type']!r} in {text!r}: use FS, SS, FF or SF"
        ) from None
    lag = Lag()
    if match["amount"] is not None:
        lag = _parse_lag(match["sign"], match["amount"], match["unit"], text)
    return Dependency(match["ref"], link, lag)


def _parse_lag(sign: str, amount: str, unit: str | None, text: str) -> Lag:
    if not unit:
        raise DependencySyntaxError(
            f"the lag in {text!r} needs a unit: h (working hours) or d (working days)"
        )
    if unit.lower() not in ("h", "d"):
        raise DependencySyntaxError(
            f"unknown lag unit {unit!r} in {text!r}: use h (working hours) or d (working days)"
        )
    decimals = amount.partition(".")[2]
    if len(decimals) > LAG_DECIMALS:
        raise DependencySyntaxError(f"the lag in {text!r} has more than {LAG_DECIMALS} decimals")
    value = float(amount)
    if value > MAX_LAG:
        raise DependencySyntaxError(f"the lag in {text!r} is over {MAX_LAG:g}")
    return Lag(-value if sign == "-" else value, LagUnit(unit.lower()))


def parse_dependencies(text: str) -> tuple[Dependency, ...]:
    """A comma-separated list; a predecessor named twice is refused."""
    deps = tuple(parse_dependency(part) for part in text.split(",") if part.strip())
    seen: set[str] = set()
    for dep in deps:
        if dep.predecessor in seen:
            raise DependencySyntaxError(
                f"{dep.predecessor} is listed twice: one link per predecessor"
            )
        seen.add(dep.predecessor)
    return deps


def format_dependency(dep: Dependency) -> str:
    """Plan notation: ``T1.1`` for FS without lag, else ``T1.1 (SS)`` / ``T1.1 (FF-4h)``."""
    if dep.type is LinkType.FS and dep.lag.amount == 0:
        return dep.predecessor
    lag = "" if dep.lag.amount == 0 else str(dep.lag)
    return f"{dep.predecessor} ({dep.type.value}{lag})"


def format_dependencies(deps: Iterable[Dependency]) -> str:
    """Comma-separated plan notation."""
    return ", ".join(format_dependency(dep) for dep in deps)


def _number(value: float) -> str:
    """Shortest decimal form without exponent (``2``, ``0.5``, ``0.0001``)."""
    text = f"{value:.{LAG_DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"
