"""The hold's benchmark prints a row per hold window and the history's size, and
refuses a count of evaluations under 1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_hold as bench


def test_it_prints_a_row_per_window_and_the_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--evaluations", "50"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and " s |" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["120 s", "600 s", "3600 s"]
    assert all(float(row.split("|")[2]) > 0 for row in rows)
    assert "bytes per rate source; 50 evaluations per window" in out


def test_it_refuses_no_evaluations() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--evaluations", "0"])
