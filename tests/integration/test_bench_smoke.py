"""The benchmarks run end to end (figures recorded in docs/benchmarks.md come from
them, so they must keep working), and the server coalesces reads.

Runs bench/bench_getmetrics.py (real `python -m scaler serve` subprocess, real
RabbitMQ queue or moto SQS server, all on loopback) for two objects for about a
second. It asserts the figures are printed and correct answers came back, and
that source reads stay bounded by the TTL, here shorter than the polled reading age
(a correctness property of the shared cache: hundreds of calls, a handful of reads),
never a speed target. bench_scale.py, bench_throughput.py, bench_handler.py,
bench_read_path.py and bench_activation.py run for a few seconds each, their own
checks (answers, rpc statuses, read bound, readings) deciding their exit code.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_getmetrics.py"
SCALE_BENCH = BENCH.with_name("bench_scale.py")
THROUGHPUT_BENCH = BENCH.with_name("bench_throughput.py")
HANDLER_BENCH = BENCH.with_name("bench_handler.py")
READ_PATH_BENCH = BENCH.with_name("bench_read_path.py")
ACTIVATION_BENCH = BENCH.with_name("bench_activation.py")
TTL_S = 0.25
DURATION_S = 1.5


def run_bench(script: Path, *args: str) -> str:
    """Run a bench script to its end; its stdout, once it exited 0 (its own checks passed)."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("rabbitmq", []),
        ("rabbitmq-http", []),  # the management API, read in the pool as SQS is
        ("sqs", []),
        ("rabbitmq", ["--replica-throughput", "2"]),  # the capacity term's path, its answers reused too
    ],
)
def test_bench_prints_figures_and_reads_stay_within_ttl(
    source: str, extra: list[str], tmp_path: Path
) -> None:
    results_file = tmp_path / "results.json"
    stdout = run_bench(
        BENCH,
        "--objects", "2",
        "--duration", str(DURATION_S),
        "--ttl", str(TTL_S),
        "--source", source,
        "--json", str(results_file),
        *extra,
    )  # fmt: skip

    for figure in ("calls/s", "GetMetrics p50/p99 ms", "IsActive p50/p99 ms", "reads/s", "1/min(TTL, age)"):
        assert figure in stdout
    assert "42/42 (none consumed)" in stdout
    read_through = {
        "rabbitmq": "(AMQP)",
        "rabbitmq-http": "(management API)",
        "sqs": "(moto at http://127.0.0.1:",
    }
    assert read_through[source] in stdout.splitlines()[0], stdout

    [result] = json.loads(results_file.read_text())
    assert result["objects"] == 2
    assert result["errors"] == {} and result["wrong_answers"] == 0
    assert result["calls"] > 20  # enough calls that an uncoalesced cache would read far more often
    assert result["get_metrics_p50_ms"] > 0 and result["is_active_p99_ms"] > 0
    assert result["source_reads"] >= 1
    assert result["expected_reads_per_s"] == pytest.approx(1 / TTL_S)  # TTL < polled reading age
    assert result["reads_per_s"] <= 2 / TTL_S, result


@pytest.mark.integration
@pytest.mark.parametrize("source", ["rabbitmq", "rabbitmq-http", "sqs"])
def test_scale_bench_runs_and_checks_its_answers(source: str) -> None:
    objects = 12
    stdout = run_bench(
        SCALE_BENCH,
        "--objects", str(objects),
        "--queues", "2",
        "--duration", "6",
        "--warm-up", "1",
        "--replica-throughput", "2",
        "--source", source,
    )  # fmt: skip
    assert stdout.rstrip().endswith("OK"), stdout
    assert "errors: none; wrong answers: 0" in stdout
    # Each stream sends the (never changing) state once.
    assert f"stream messages: {objects} (" in stdout
    reads = re.search(r"source reads: (\d+) \(bound .* = (\d+)\)", stdout)
    assert reads is not None, stdout
    assert 2 <= int(reads.group(1)) <= int(reads.group(2))  # both queues read, within the bound
    # The run is shorter than both polling periods, yet every object polls once at least.
    for rpc in ("GetMetrics", "IsActive"):
        calls = re.search(rf"{rpc}: (\d+) calls, p50 [\d.]+ ms, p99 [\d.]+ ms", stdout)
        assert calls is not None, stdout
        assert int(calls.group(1)) >= objects, stdout


@pytest.mark.integration
def test_throughput_bench_drives_both_servers_and_checks_every_status() -> None:
    stdout = run_bench(THROUGHPUT_BENCH, "--duration", "1", "--warm-up", "0.5", "--rounds", "1")
    round_line = re.search(r"round 1: scaler ([\d,]+) calls/s, bare ([\d,]+) calls/s, ratio ([\d.]+)", stdout)
    assert round_line is not None, stdout
    assert all(float(group.replace(",", "")) > 0 for group in round_line.groups())
    assert "other statuses none" in stdout
    assert re.search(r"ratio scaler/bare: median [\d.]+ over 1 round", stdout)


@pytest.mark.integration
def test_handler_bench_times_each_call_it_checks() -> None:
    stdout = run_bench(
        HANDLER_BENCH, "--calls", "300", "--rounds", "2", "--anew", "--replica-throughput", "2"
    )
    for name in ("GetMetrics", "IsActive", "evaluation anew"):
        timed = re.search(rf"^{name}: median ([\d.]+) µs per call \(rounds: [\d.]+, [\d.]+\)$", stdout, re.M)
        assert timed is not None, stdout
        assert float(timed.group(1)) > 0


@pytest.mark.integration
def test_read_path_bench_times_every_path_and_checks_each_reading() -> None:
    stdout = run_bench(
        READ_PATH_BENCH, "--reads", "20", "--busy", "0,1", "--seconds", "2", "--timeout", "1",
        "--switch-interval", "0.005,0.00001",
    )  # fmt: skip
    paths = ("AMQP on the loop", "AMQP in a thread", "SQS in a thread", "management API in a thread")
    row = rf"^\| ({'|'.join(paths)}) \| ([\d.]+) \| (\d+) \| (\d+) \| ([\d.]+|-) \|.* (\d+) \|$"
    rows = re.findall(row, stdout, re.M)  # path, switch interval ms, busy tasks, reads, p50 ms, failed
    assert {(path, interval, busy) for path, interval, busy, *_ in rows} == {
        (p, i, b) for p in paths for i in ("5", "0.01") for b in ("0", "1")
    }, stdout
    # Every read on the loop answered, and every read while the loop was idle (each
    # reading is checked: 42 messages).
    answered_all = [(int(reads), int(failed)) == (20, 0) for path, _, busy, reads, _, failed in rows
                    if path == paths[0] or busy == "0"]  # fmt: skip
    assert len(answered_all) == 2 * (2 + 3) and all(answered_all), stdout  # per interval: 2 + 3 rows


@pytest.mark.integration
@pytest.mark.parametrize("source", ["rabbitmq", "sqs"])
def test_activation_bench_times_each_trial_from_publish_to_true(source: str) -> None:
    stdout = run_bench(ACTIVATION_BENCH, "--source", source, "--trials", "2")
    timed = re.search(
        rf"^{source}: first message to StreamIsActive true, 2 trials, TTL [\d.]+ s: "
        r"p50 ([\d.]+) s, p90 [\d.]+ s, max ([\d.]+) s, min ([\d.]+) s$",
        stdout,
        re.M,
    )
    assert timed is not None, stdout
    assert 0 < float(timed.group(3)) <= float(timed.group(1)) <= float(timed.group(2)), stdout
