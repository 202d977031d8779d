"""`prewarm simulate --scaledobject`: the user's object and traffic, end to end.

- Against a real Prometheus holding backfilled arrival history (promtool): the
  range query is the trace, the trigger's coldStartQuery the cold start.
- Against every example manifest under manifests/examples/ (a trace file).
- A bad manifest reads as `prewarm explain` says it; an unreachable Prometheus
  names the source and what to check.
Costs about 15 s (Prometheus start, backfill, a few short simulations).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_fixture import GpuExporter, PrometheusServer, find_free_port, gpu_exporter, start_prometheus

__all__ = ["gpu_exporter"]
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
TRACE = ROOT / "bench" / "traces" / "twitter_2021_08_per_minute.csv"
METRIC = "prewarm_whatif_requests_per_second"
COLD_START_METRIC = "prewarm_whatif_cold_start_seconds"
HOURS = 6
ENV = {
    "RABBITMQ_URL": "amqp://user:secret@rabbitmq:5672/",
    "RABBITMQ_MANAGEMENT_URL": "http://u:p@rabbitmq:15672/",
}


def history(now: float) -> str:
    """Six hours of arrivals, one sample a minute: idle, then a burst of 0.5/s for
    an hour every two hours; and a measured cold start of 120 s."""
    start = int(now) - HOURS * 3600
    start -= start % 60
    lines = [f"# TYPE {METRIC} gauge"]
    for stamp in range(start, int(now) - 30, 60):
        rate = 0.5 if (stamp - start) % 7200 >= 3600 else 0.0
        lines.append(f"{METRIC} {rate} {stamp}")
    lines.append(f"# TYPE {COLD_START_METRIC} gauge")
    for stamp in range(int(now) - 3600, int(now) - 30, 60):
        lines.append(f"{COLD_START_METRIC} 120 {stamp}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus_with_history(gpu_exporter: GpuExporter) -> Iterator[PrometheusServer]:
    server = start_prometheus(gpu_exporter, openmetrics=history(time.time()))
    yield server
    server.stop()


def scaled_object(prometheus_url: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {{name: sd-worker, namespace: ai}}
        spec:
          scaleTargetRef: {{name: sd-worker}}
          pollingInterval: 15
          cooldownPeriod: 300
          minReplicaCount: 0
          maxReplicaCount: 8
          triggers:
            - type: external
              metadata:
                scalerAddress: prewarm.keda:6000
                source: sqs
                queueURL: https://sqs.us-east-1.amazonaws.com/123456789012/prompts
                queueLength: "2"
                prometheusServerAddress: {prometheus_url}
                coldStartQuery: max(max_over_time({COLD_START_METRIC}[1h]))
        {extra}"""
    )


def simulate(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "scaler", "simulate", "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **ENV, **(env or {})},
    )


def test_history_from_prometheus_is_the_trace(
    prometheus_with_history: PrometheusServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "so.yaml"
    manifest.write_text(scaled_object(prometheus_with_history.url))
    out = tmp_path / "out"
    done = simulate(
        "--scaledobject", manifest,
        "--prometheus", prometheus_with_history.url,
        "--arrival-query", f"sum({METRIC})",
        "--since", f"{HOURS}h",
        "--service", "4",
        "--gpu-price", "3",
        "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "one range query on prometheus at" in text
    assert "cold start 120 s" in text and "the trigger's coldStartQuery" in text
    assert "with Prewarm" in text and "stock KEDA" in text and "Change first:" in text
    rows = json.loads((out / "results.json").read_text())
    prewarm, keda = rows
    # The history's bursts: 0.5/s for an hour, three times (the first sample may be cut).
    assert 2 * 1800 <= prewarm["arrivals"] <= 3 * 1800 + 60
    assert prewarm["arrivals"] == pytest.approx(keda["arrivals"])
    for row in rows:
        assert row["dollars"] == pytest.approx(row["gpu_hours"] * 3)
        assert row["gpu_hours"] > 0
        assert row["peak_replicas"] <= 8  # their maxReplicaCount
    # Stock KEDA wakes on the first message and waits a whole cold start for it.
    assert keda["cold_start_waits"] > 0 and keda["wait_max_s"] >= 120
    assert (out / "timeline.png").stat().st_size > 0
    assert json.loads((out / "settings.json").read_text())


def test_unreachable_prometheus_names_the_source(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{find_free_port()}"
    manifest = tmp_path / "so.yaml"
    manifest.write_text(scaled_object(url))
    done = simulate(
        "--scaledobject", manifest, "--prometheus", url, "--arrival-query", "sum(up)", "--out", tmp_path,
        "--timeout", "2",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"prometheus at {url}" in done.stderr
    assert "that prometheusServerAddress answers from here" in done.stderr  # explain's advice
    assert "Traceback" not in done.stderr


def test_bad_manifest_reads_as_explain_says(tmp_path: Path) -> None:
    manifest = tmp_path / "so.yaml"
    manifest.write_text(scaled_object("http://127.0.0.1:9").replace('queueLength: "2"', 'queueLength: "two"'))
    done = simulate("--scaledobject", manifest, "--trace", TRACE, "--out", tmp_path)
    explained = subprocess.run(
        [sys.executable, "-m", "scaler", "explain", "-f", str(manifest)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and explained.returncode == 2
    message = done.stderr.removeprefix("prewarm simulate: ").strip()
    assert "queueLength" in message
    assert message in explained.stderr + explained.stdout


@pytest.mark.parametrize(
    "manifest",
    sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/scaled*.yaml")),
)
def test_example_manifests(manifest: str, tmp_path: Path) -> None:
    done = simulate(
        "--scaledobject", EXAMPLES / manifest,
        "--trace", TRACE, "--duration", "3600", "--rate-scale", "0.0002",
        "--cold-start", "120", "--no-plots", "--out", tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["policy"] for r in rows] == ["with Prewarm", "stock KEDA"]
    assert all(r["gpu_hours"] > 0 for r in rows)
    assert "Change first:" in done.stdout
    assert "secret" not in done.stdout + done.stderr  # credentials from the environment stay out


def test_peak_replicas_fits_the_trace_to_the_fleet(tmp_path: Path) -> None:
    """--peak-replicas scales a what-if's trace as it scales simulate's (it was ignored)."""
    done = simulate(
        "--scaledobject", EXAMPLES / "sqs-diffusion" / "scaledobject.yaml",
        "--trace", TRACE, "--duration", "3600", "--peak-replicas", "6",
        "--cold-start", "120", "--no-advice", "--no-plots", "--out", tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "= 6 replicas at 75% utilisation" in done.stdout
    assert "- rate scale 1:" not in done.stdout
    assert "warning" not in done.stdout  # 6 replicas fit under its maxReplicaCount 16
    # As it is, the trace needs far more than maxReplicaCount: both runs are capped, and
    # the report says so instead of showing a tie.
    as_is = simulate(
        "--scaledobject", EXAMPLES / "sqs-diffusion" / "scaledobject.yaml",
        "--trace", TRACE, "--duration", "3600",
        "--cold-start", "120", "--no-advice", "--no-plots", "--out", tmp_path / "as-is",
    )  # fmt: skip
    assert as_is.returncode == 0, as_is.stderr
    assert "- rate scale 1:" in as_is.stdout
    assert "more than maxReplicaCount 16: both runs are capped there" in as_is.stdout


def test_a_saturated_scaledjob_tries_a_higher_maxreplicacount(tmp_path: Path) -> None:
    done = simulate(
        "--scaledobject", EXAMPLES / "rabbitmq-jobs" / "scaledjob.yaml",
        "--trace", TRACE, "--duration", "1800", "--service", "lognormal:120",
        "--cold-start", "120", "--no-plots", "--out", tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "more than maxReplicaCount 20: both runs are capped there" in done.stdout
    tried = [row["policy"] for row in json.loads((tmp_path / "settings.json").read_text())]
    assert "maxReplicaCount 20 -> 30" in tried


def test_a_value_metric_type_is_simulated_as_written(tmp_path: Path) -> None:
    """metricType Value: the HPA multiplies the answer (a replica count) by the Ready
    pods, and the what-if simulates that, not AverageValue: the run reaches
    maxReplicaCount and costs far more than the same object without metricType, and the
    warning says the runs are as written."""
    manifest = (EXAMPLES / "sqs-diffusion" / "scaledobject.yaml").read_text()
    assert "    - type: external-push\n" in manifest
    as_value = tmp_path / "value.yaml"
    as_value.write_text(
        manifest.replace(
            "    - type: external-push\n", "    - type: external-push\n      metricType: Value\n"
        )
    )
    runs = {}
    for name, path in (("value", as_value), ("average", EXAMPLES / "sqs-diffusion" / "scaledobject.yaml")):
        done = simulate(
            "--scaledobject", path,
            "--trace", TRACE, "--duration", "3600", "--peak-replicas", "6",
            "--cold-start", "120", "--no-plots", "--out", tmp_path / name,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs[name] = (
            {r["policy"]: r for r in json.loads((tmp_path / name / "results.json").read_text())},
            done.stdout,
        )
    rows, text = runs["value"]
    assert "Both runs below simulate it as written (the HPA's Value math)" in text
    assert "The numbers below assume AverageValue" not in text
    assert rows["with Prewarm"]["peak_replicas"] == 16  # the example's maxReplicaCount
    average_rows, _ = runs["average"]
    # The fleet multiplied at every sync costs far more than the same object as AverageValue.
    assert rows["with Prewarm"]["gpu_hours"] > 1.3 * average_rows["with Prewarm"]["gpu_hours"]
    # and the advice simulates removing it, which is the change to make first.
    assert "Change first: metricType Value -> AverageValue (remove it)" in text
    assert "metricType" not in runs["average"][1].split("Change first:")[1]
