"""The benchmark runs end to end and the server coalesces reads.

Runs bench/bench_getmetrics.py (real `python -m scaler serve` subprocess, real
RabbitMQ queue or moto SQS server, all on loopback) for two objects for about a
second. It asserts the figures are printed and correct answers came back, and
that source reads stay bounded by the TTL, here shorter than the polled reading age
(a correctness property of the shared cache: hundreds of calls, a handful of reads),
never a speed target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_getmetrics.py"
TTL_S = 0.25
DURATION_S = 1.5


@pytest.mark.integration
@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("rabbitmq", []),
        ("sqs", []),
        ("rabbitmq", ["--replica-throughput", "2"]),  # the capacity term's path, its answers reused too
    ],
)
def test_bench_prints_figures_and_reads_stay_within_ttl(
    source: str, extra: list[str], tmp_path: Path
) -> None:
    results_file = tmp_path / "results.json"
    command = [
        sys.executable, str(BENCH),
        "--objects", "2",
        "--duration", str(DURATION_S),
        "--ttl", str(TTL_S),
        "--source", source,
        "--json", str(results_file),
        *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr

    for figure in ("calls/s", "GetMetrics p50/p99 ms", "IsActive p50/p99 ms", "reads/s", "1/min(TTL, age)"):
        assert figure in done.stdout
    assert "42/42 (none consumed)" in done.stdout

    [result] = json.loads(results_file.read_text())
    assert result["objects"] == 2
    assert result["errors"] == {} and result["wrong_answers"] == 0
    assert result["calls"] > 20  # enough calls that an uncoalesced cache would read far more often
    assert result["get_metrics_p50_ms"] > 0 and result["is_active_p99_ms"] > 0
    assert result["source_reads"] >= 1
    assert result["expected_reads_per_s"] == pytest.approx(1 / TTL_S)  # TTL < polled reading age
    assert result["reads_per_s"] <= 2 / TTL_S, result
