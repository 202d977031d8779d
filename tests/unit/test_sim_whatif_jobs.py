"""The ScaledJob what-if (`simulate --scaledobject` on a ScaledJob) after the review's F8
(a real warm-up), F9a (the worker's idle wait) and F9b (the trace's counts replayed
exactly). Each test fails on the code before its fix."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scaler import cli
from scaler.sim import jobs

TRIGGER = (
    '{scalerAddress: "p:6000", source: rabbitmq, host: "amqp://u:p@rabbit:5672/", queueName: q, '
    'queueLength: "1", mode: job, coldStartSeconds: "100"}'
)
SCALED_JOB = textwrap.dedent(
    f"""\
    apiVersion: keda.sh/v1alpha1
    kind: ScaledJob
    metadata: {{name: j, namespace: batch}}
    spec:
      jobTargetRef: {{template: {{}}}}
      maxReplicaCount: 10
      scalingStrategy: {{strategy: accurate, pendingPodConditions: ["Ready"]}}
      triggers:
        - type: external
          metadata: {TRIGGER}
    """
)


def whatif(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, *extra: str
) -> tuple[int, str, list[dict[str, Any]]]:
    (tmp_path / "job.yaml").write_text(SCALED_JOB)
    (tmp_path / "trace.csv").write_text("timestamp_s,count\n" + rows)
    out = tmp_path / "out"
    code = cli.main(
        ["simulate", "--scaledobject", str(tmp_path / "job.yaml"), "--trace", str(tmp_path / "trace.csv"),
         "--service", "30", "--cold-start", "60", "--out", str(out), "--no-plots", "--no-progress",
         "--no-advice", *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    results = json.loads((out / "results.json").read_text()) if code == 0 else []
    return code, captured.out + captured.err, results


def per_minute(count: int, minutes: int, every_s: int = 60) -> str:
    return "".join(f"{t},{count}\n" for t in range(0, minutes * every_s, every_s))


# --- F8 -------------------------------------------------------------------------------------


def test_warmup_is_accepted_and_scores_bills_and_prices_only_what_follows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output, rows = whatif(tmp_path, capsys, per_minute(3, 30), "--warmup", "720")
    assert code == 0, output
    assert "- the first 0.2 h are history (the forecast's warm-up), not scored or billed" in output
    assert [row["messages"] for row in rows] == [54, 54]  # the 18 minutes from 720 s on
    for row in rows:
        # "per 30 days" over the 1,080 s scored, not the 1,800 s of the trace
        monthly = row["gpu_hours"] * 2.5 / (1080 / 86400) * 30
        line = f"| {row['policy']} | {row['gpu_hours']:.1f} | ${row['dollars']:,.0f} | ${monthly:,.0f} |"
        assert line in output


def test_a_warmup_as_long_as_the_trace_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output, _ = whatif(tmp_path, capsys, per_minute(3, 30), "--warmup", "1800")
    assert code == 2
    assert "--warmup 1800 s: the trace is 1800 s long, so nothing would be scored" in output


def test_three_days_of_a_scaled_job_get_the_scaled_objects_day_of_warm_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output, rows = whatif(tmp_path, capsys, per_minute(2, 72, every_s=3600))
    assert code == 0, output
    assert "the first 24 h are history (the forecast's warm-up), not scored or billed" in output
    assert "the whole trace is scored and billed" not in output
    assert [row["messages"] for row in rows] == [96, 96]  # 2 an hour over the last 48 h


def test_the_runs_get_the_warm_up_and_the_workers_idle_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    real = jobs.simulate_jobs

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "simulate_jobs", spy)
    code, output, _ = whatif(tmp_path, capsys, per_minute(3, 30), "--warmup", "300")
    assert code == 0, output
    # coldStartSeconds 100, simulated at 60 s: the worker is told 100, so it waits 200 s.
    assert [(c["idle_wait_s"], c["scored_from_s"]) for c in calls] == [(200.0, 300), (200.0, 300)]
    assert "a Job that finds no message waits 200 s for one, then exits" in output


# --- F9b ------------------------------------------------------------------------------------


def test_the_runs_replay_as_many_messages_as_the_setup_line_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output, rows = whatif(tmp_path, capsys, per_minute(3, 30))
    assert code == 0, output
    arrivals = re.search(r"([\d,]+) arrivals", output)
    assert arrivals is not None and arrivals.group(1) == "90"
    assert [row["messages"] for row in rows] == [90, 90]
