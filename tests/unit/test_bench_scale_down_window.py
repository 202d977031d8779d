"""The scale-down-window benchmark: every policy KEDA runs gets the window (static
provisioning has none), the sweep under KEDA's default (no behavior) is make evaluate's, and the
table counts the targets at each window and with the window swept."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_scale_down_window as bench

from scaler.sim import evaluate


def test_a_sweep_puts_every_hpa_run_policy_at_the_window_and_the_table_counts_targets() -> None:
    # One loop phase of make evaluate's six: the whole sweep took 100 s here, past the
    # suite's per-test timeout on a slower CI machine.
    short = bench.sweep("mooncake", 120, 60.0, phases=evaluate.LOOP_PHASES[:1])
    assert short["cold_start"] == 120 and short["rows"][0]["policy"] == "keda-min0"
    families = {row["family"] for row in short["sweep"]}
    assert {"prewarm", "keda-min0", "keda-min1", "kedastral", "oracle", "static"} <= families
    for row in short["sweep"]:
        windowed = row["description"].endswith("; HPA scale-down window 60 s")
        assert windowed == (row["family"] != "static"), row["policy"]
    # A default sweep (no behavior) with no points: nothing reaches the SLO, and sweeping
    # the window adds nothing to the short window's points.
    default = {**short, "window_s": None, "sweep": []}
    lines, summary = bench.table({("mooncake", 120, None): default, ("mooncake", 120, 60.0): short}, 60.0)
    assert lines[0].startswith("| trace | cold start |") and "KEDA's default" in lines[0]
    row = lines[2].split(" | ")
    assert row[:2] == ["| mooncake", "120 s"] and row[2] == "none / none / none"
    assert row[3] != "none / none / none"  # Prewarm reaches it at 60 s (docs/benchmarks.md)
    judged = evaluate.targets(short)
    count = f"{sum(line.startswith('MET') for line in judged)} of {len(judged)}"
    assert row[-2] == count and row[-1] == count + " |"
    assert summary.endswith(f"of {len(judged)}")


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--cases", "mars"], "--cases: unknown mars"),
        (["--window", "4000"], "argument --window: expected a number 0..3600, got '4000'"),
        (["--cold-starts", "120,soon"], "--cold-starts: expected a whole number >= 1, got 'soon'"),
        (["--cases", ""], "--cases and --cold-starts: at least one each"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_each_case_name_is_its_trace_as_it_starts_or_entered_warm() -> None:
    for name, index in bench.CASES.items():
        case = evaluate.CASES[index]
        assert (case.lead_in_s > 0) is name.endswith("-warm"), name
        if name.endswith("-warm"):  # the same trace as the name without -warm
            assert case.file == evaluate.CASES[bench.CASES[name.removesuffix("-warm")]].file
