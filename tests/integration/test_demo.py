"""`make demo`, briefly: the real server, moto and the simulated fleet scale for real.

Runs `python -m scaler.demo` for 8 s of replay (the trace at 150x, a 2 s cold
start) and checks what happened, not how fast: messages were sent and served,
the fleet went above zero replicas, and the server answered KEDA's calls.
Costs about 12 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_demo_scales_through_the_real_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaler.demo",
            "--duration",
            "8",
            "--speed",
            "150",
            "--cold-start",
            "2",
            "--no-live",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    calls = summary["calls"]
    assert calls["GetMetricSpec"] >= 1 and calls["IsActive"] >= 1 and calls["GetMetrics"] >= 1
    live = summary["live"]
    assert live["arrivals"] > 0
    assert summary["max_replicas_live"] > 0  # woken from zero by the server's IsActive
    assert live["served"] > 0  # Ready workers received and deleted real SQS messages
    assert [r["policy"] for r in summary["simulated"]] == ["prewarm (simulated)", "stock KEDA (simulated)"]
    assert "stock KEDA (simulated)" in done.stdout and "GPU-minutes" in done.stdout
    assert (tmp_path / "demo.png").stat().st_size > 10_000
