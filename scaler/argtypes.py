"""argparse types for numeric flags: finite numbers in a range, so that `inf`, `nan`
and out-of-range values are refused with the flag's name (argparse adds it) instead of
running with a timeout that never fires or a fleet of zero replicas."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

_N = TypeVar("_N", int, float)


def _ranged(
    convert: Callable[[str], _N], what: str, low: float, high: float, above: bool
) -> Callable[[str], _N]:
    if above:
        bound = f"> {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
    elif math.isfinite(high):
        bound = f"{low:g}..{high:g}"
    else:
        bound = f">= {low:g}"
    expected = f"expected {what} {bound}"

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not _finite(value) or not low <= value <= high or (above and value == low):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


def _finite(value: float) -> bool:
    """Not inf or nan. int() reads any number of digits, and math.isfinite raises
    OverflowError on an int too large for a float: refuse that one too, as the float
    arithmetic it would meet next could not take it either."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def whole(low: int, high: float = math.inf) -> Callable[[str], int]:
    """A whole number in [low, high]."""
    return _ranged(int, "a whole number", low, high, above=False)


def number(low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high], or in (low, high] with `above`."""
    return _ranged(float, "a number", low, high, above)


positive = number(0, above=True)
port = whole(0, 65535)
# Seconds for timeouts and intervals: more than a day is a typo, and far more overflows
# socket timeouts (1e300: "timestamp out of range for platform time_t").
seconds = number(0, 86_400, above=True)
