"""go_parse_float: which customScalingRunningJobPercentage strings KEDA reads, and as what."""

from __future__ import annotations

import math

import pytest

from scaler.explain import go_parse_float


# From Go's own strconv/atof_test.go (underscores, specials, hex) and its grammar.
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.5", 0.5),
        ("1_23.50_0_0e+1_2", 1.235e14),
        ("1_0", 10.0),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e-400", 0.0),  # underflow is no error in Go
        ("0x_1_2.3_4_5p+1_2", 74565.0),
        ("-0x1p-1", -0.5),
        ("-_123.5e+12", None),
        ("_123.5e+12", None),
        ("1__23.5e+12", None),
        ("123_.5e+12", None),
        ("123._5e+12", None),
        ("123.5e_+12", None),
        ("123.5e+12_", None),
        ("0x1", None),  # a hex float needs its p exponent
        ("0x1p2000", None),  # ErrRange
        ("infin", None),
        ("", None),
        (".", None),
    ],
)
def test_go_parse_float(text: str, value: float | None) -> None:
    assert go_parse_float(text) == value


@pytest.mark.parametrize(
    ("text", "sign"), [("NaN", 0), ("nan", 0), ("Inf", 1), ("+inf", 1), ("-Infinity", -1)]
)
def test_go_parse_float_reads_nan_and_inf_in_any_case(text: str, sign: int) -> None:
    value = go_parse_float(text)
    assert value is not None
    assert math.isnan(value) if sign == 0 else value == sign * math.inf


# Python's float() reads these, Go's ParseFloat does not.
@pytest.mark.parametrize("text", [" 0.5", "0.5 ", "\t1", "\u0665", "\uff15", "+nan", "-nan", "1e400"])
def test_go_parse_float_refuses_what_only_python_reads(text: str) -> None:
    assert go_parse_float(text) is None
