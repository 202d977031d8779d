"""Numeric argparse types: finite, in range, with the expected range in the error."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from scaler.argtypes import number, port, positive, seconds, whole


def test_whole_numbers_in_range() -> None:
    assert whole(1)("3") == 3
    assert whole(0, 3600)("3600") == 3600
    assert port("0") == 0 and port("65535") == 65535


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (whole(1), "0", "expected a whole number >= 1, got '0'"),
        (whole(1), "2.5", "expected a whole number >= 1, got '2.5'"),
        (whole(0, 3600), "3601", "expected a whole number 0..3600, got '3601'"),
        (port, "65536", "expected a whole number 0..65535, got '65536'"),
        (positive, "0", "expected a number > 0, got '0'"),
        (positive, "inf", "expected a number > 0, got 'inf'"),
        (positive, "nan", "expected a number > 0, got 'nan'"),
        (positive, "soon", "expected a number > 0, got 'soon'"),
        (number(0), "-0.5", "expected a number >= 0, got '-0.5'"),
        (number(0, 1), "1.5", "expected a number 0..1, got '1.5'"),
        (seconds, "1e300", "expected a number > 0 and <= 86400, got '1e300'"),
        (seconds, "0", "expected a number > 0 and <= 86400, got '0'"),
    ],
)
def test_out_of_range_or_not_a_number_is_refused(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message.replace(".", r"\.")):
        parse(text)


def test_bounds_are_inclusive_unless_above() -> None:
    assert number(0)("0") == 0.0
    assert number(0, 1)("1") == 1.0
    assert positive("1e-9") == 1e-9
    assert seconds("86400") == 86400.0


@pytest.mark.parametrize("parse", [whole(0), whole(1, 1024), port])
def test_a_whole_number_too_large_for_a_float_is_refused(parse: Callable[[str], object]) -> None:
    # int() reads it; math.isfinite() on it raised OverflowError, which argparse
    # and the PREWARM_* variables' check do not turn into an error naming the flag.
    huge = "9" * 400
    with pytest.raises(argparse.ArgumentTypeError, match=f"^expected a whole number .*, got '{huge}'$"):
        parse(huge)
