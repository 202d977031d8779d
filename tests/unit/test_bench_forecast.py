"""The forecast benchmark runs from a fresh clone (traces in bench/traces) and prints
its figures; on a one-hour trace the forecast is cold, so what is used is naive's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_forecast


def test_benchmark_on_a_short_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    assert bench_forecast.main(["--only", "mooncake", "--check", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mooncake_conversation_per_second" in printed and "µs per closed minute" in printed
    result = json.loads(out.read_text())
    rows = result["traces"][0]["horizons"]
    assert [r["horizon_s"] for r in rows] == [60, 180, 300, 600]
    assert all(r["mase_used"] == pytest.approx(1.0) and r["used_share"] == 0 for r in rows)
    assert result["cost"]["bytes_per_series"] > 1000 and result["missed"] == []
