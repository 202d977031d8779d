"""`make demo`, briefly: the real server, moto and the simulated fleet scale for real,
and the forecast wakes the fleet before a burst it has seen on earlier days.

Runs `python -m scaler.demo` once for 20 s of replay at 60x (day 5, 15:17-15:37 of
the Twitter trace, whose 15:32 burst recurs on most days; 300 s cold start) and checks
what happened in the run's recorded data, not how fast. Costs about 30 s.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
START = 5 * 86_400 + 15 * 3600 + 17 * 60  # day 5, 15:17


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler.demo",
            "--duration",
            "20",
            "--speed",
            "60",
            "--start",
            str(START),
            "--no-live",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "demo.png").stat().st_size > 10_000
    return json.loads((out / "summary.json").read_text()), done.stdout


def test_demo_scales_through_the_real_server(demo: tuple[dict[str, Any], str]) -> None:
    summary, stdout = demo
    calls = summary["calls"]
    assert calls["GetMetricSpec"] >= 1 and calls["IsActive"] >= 1 and calls["GetMetrics"] >= 1
    live = summary["live"]
    assert live["arrivals"] > 0
    assert summary["max_replicas_live"] > 0
    assert live["served"] > 0  # Ready workers received and deleted real SQS messages
    assert [r["policy"] for r in summary["simulated"]] == ["prewarm (simulated)", "stock KEDA (simulated)"]
    assert "stock KEDA (simulated)" in stdout and "GPU-minutes" in stdout


def test_the_forecast_wakes_the_fleet_before_the_burst(demo: tuple[dict[str, Any], str]) -> None:
    summary, _ = demo
    cold_start = summary["settings"]["cold_start_s"]
    burst = summary["burst"]["t"]
    records = summary["records"]
    before = [r["arrivals"] for r in records if burst - 600 <= r["t"] < burst]
    during = [r["arrivals"] for r in records if burst <= r["t"] < burst + 300]
    assert statistics.mean(during) >= 2 * statistics.median(before)  # a burst, from a quieter rate
    # A scale-up the server decided on the forecast's term, while the queue's term asked
    # for no more replicas than there were, within two cold starts before the burst.
    ahead = [
        e
        for e in summary["events"]
        if e["by"] == "HPA"
        and e["after"] > e["before"]
        and e["winner"] == "forecast"
        and e["terms"]["queue"] <= e["before"]
        and burst - 2 * cold_start <= e["t"] < burst
    ]
    assert ahead, summary["events"]
    assert ahead[0]["forecast"] in ("ready (used)", "gated (used)")
    # And it paid off against stock KEDA on the same messages.
    keda = next(r for r in summary["simulated"] if r["policy"] == "stock KEDA (simulated)")
    live = summary["live"]
    assert live["wait_p95_s"] < keda["wait_p95_s"]
    assert live["cold_start_waits"] < keda["cold_start_waits"]
