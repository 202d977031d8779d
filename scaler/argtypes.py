"""argparse types for numeric flags: finite numbers in a range, so that `inf`, `nan`
and out-of-range values are refused with the flag's name (argparse adds it) instead of
running with a timeout that never fires or a fleet of zero replicas."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _bound(low: float, high: float, above: bool) -> str:
    if above:
        return f"> {low:g}"
    if math.isfinite(high):
        return f"{low:g}..{high:g}"
    return f">= {low:g}"


def whole(low: int, high: float = math.inf) -> Callable[[str], int]:
    """A whole number in [low, high]."""
    expected = f"expected a whole number {_bound(low, high, False)}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


def number(low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in [low, high], or in (low, high] with `above`."""
    expected = f"expected a number {_bound(low, high, above)}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high or (above and value == low):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


positive = number(0, above=True)
port = whole(0, 65535)
