"""The optional alerting rules (manifests/components/alerts), checked and unit-tested
with Prometheus's own promtool (Debian's `prometheus` package): each alert fires on
the series that should raise it, with its labels and rendered annotations, after its
`for:` and not before, and stays quiet on healthy series."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULE_FILE = REPO / "manifests" / "components" / "alerts" / "prometheusrule.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SCRAPED = 'job="prewarm", namespace="prewarm"'  # what the ServiceMonitor's scrapes carry
BUCKET = "prewarm_rpc_duration_seconds_bucket"


def series(name: str, **labels: str) -> str:
    """A series as the ServiceMonitor's scrape labels it, plus `labels`."""
    return name + "{" + SCRAPED + "".join(f', {k}="{v}"' for k, v in labels.items()) + "}"


def rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    assert doc["kind"] == "PrometheusRule"
    return {rule["alert"]: rule for group in doc["spec"]["groups"] for rule in group["rules"]}


def annotations(alert: str, values: dict[str, str]) -> dict[str, str]:
    """The alert's annotations as Prometheus should render them, each `{{ ... }}`
    replaced by the value given for its exact text (a placeholder the test does not
    expect is a KeyError; one the rule misspells renders differently, so promtool
    fails)."""
    rendered = {}
    for key, text in rules()[alert]["annotations"].items():
        rendered[key] = re.sub(r"\{\{\s*(.*?)\s*\}\}", lambda m: values[m.group(1)], text)
    return rendered


def firing(alert: str, labels: dict[str, str], values: dict[str, str] | None = None) -> dict[str, Any]:
    severity = rules()[alert]["labels"]["severity"]
    return {
        "exp_labels": {**labels, "severity": severity},
        "exp_annotations": annotations(alert, values or {}),
    }


def check(eval_time: str, alert: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": eval_time, "alertname": alert, "exp_alerts": list(alerts)}


# Each case: the input series (one sample a minute) and what each alert shows when.
CASES: dict[str, tuple[dict[str, str], list[dict[str, Any]]]] = {
    "every replica down": (
        {
            series("up", instance="10.0.0.1:8080"): "0x30",
            series("up", instance="10.0.0.2:8080"): "0x30",
        },
        [
            check("4m", "PrewarmDown"),  # not before its 5 minutes
            check("6m", "PrewarmDown", firing("PrewarmDown", {})),
        ],
    ),
    "not scraped at all": (
        {series("prewarm_rpc_total", method="GetMetrics", code="OK"): "0+60x30"},
        [check("6m", "PrewarmDown", firing("PrewarmDown", {}))],
    ),
    "one replica down": (
        {
            series("up", instance="10.0.0.1:8080"): "1x30",
            series("up", instance="10.0.0.2:8080"): "0x30",
        },
        [
            check("16m", "PrewarmDown"),
            check("14m", "PrewarmReplicaDown"),
            check(
                "16m",
                "PrewarmReplicaDown",
                firing(
                    "PrewarmReplicaDown",
                    {"job": "prewarm", "namespace": "prewarm", "instance": "10.0.0.2:8080"},
                    {"$labels.instance": "10.0.0.2:8080"},
                ),
            ),
        ],
    ),
    "a source kind failing, one recovered, one healthy": (
        {
            series("prewarm_source_errors_total", instance="a", source="sqs"): "0+6x30",
            series("prewarm_source_errors_total", instance="a", source="rabbitmq"): "0+6x5 30x25",
            series("prewarm_source_errors_total", instance="a", source="prometheus"): "4x30",
        },
        [
            check("8m", "PrewarmSourceFailing"),  # failing, not yet for 10 minutes
            check(
                "20m",
                "PrewarmSourceFailing",
                firing(
                    "PrewarmSourceFailing",
                    {"namespace": "prewarm", "source": "sqs"},
                    {"$labels.source": "sqs", 'printf "%.2g" $value': "0.1"},  # 6 a minute
                ),
            ),
        ],
    ),
    "answers refused, streams cancelled, answers OK": (
        {
            series("prewarm_rpc_total", instance="a", method="GetMetrics", code="UNAVAILABLE"): "0+12x30",
            series("prewarm_rpc_total", instance="a", method="StreamIsActive", code="CANCELLED"): "0+60x30",
            series("prewarm_rpc_total", instance="a", method="IsActive", code="OK"): "0+600x30",
        },
        [
            check(
                "15m",
                "PrewarmAnswersRefused",
                firing(
                    "PrewarmAnswersRefused",
                    {"namespace": "prewarm", "method": "GetMetrics", "code": "UNAVAILABLE"},
                    {
                        "$labels.method": "GetMetrics",
                        "$labels.code": "UNAVAILABLE",
                        'printf "%.2g" $value': "0.2",  # 12 a minute
                    },
                ),
            ),
        ],
    ),
    "GetMetrics slow, IsActive fast": (
        {
            # Every GetMetrics between 1 and 2.5 s; every IsActive under 0.5 s.
            **{
                series(BUCKET, instance="a", method="GetMetrics", le=le): (
                    "0x30" if le in ("0.5", "1.0") else "0+60x30"
                )
                for le in ("0.5", "1.0", "2.5", "+Inf")
            },
            **{
                series(BUCKET, instance="a", method="IsActive", le=le): "0+60x30"
                for le in ("0.5", "1.0", "2.5", "+Inf")
            },
        },
        [
            check("10m", "PrewarmSlowAnswers"),  # slow, not yet for 15 minutes
            check(
                "20m",
                "PrewarmSlowAnswers",
                firing(
                    "PrewarmSlowAnswers",
                    {"namespace": "prewarm", "method": "GetMetrics"},
                    # 99 % of the way from 1 s to 2.5 s, as histogram_quantile interpolates
                    {"$labels.method": "GetMetrics", "$value | humanizeDuration": "2.485s"},
                ),
            ),
        ],
    ),
}


def _write(tmp_path: Path, cases: dict[str, tuple[dict[str, str], list[dict[str, Any]]]]) -> Path:
    doc = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}), encoding="utf-8")
    tests = [
        {
            "name": name,
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": alerts,
        }
        for name, (series, alerts) in cases.items()
    ]
    path = tmp_path / "alerts_test.yaml"
    path.write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}),
        encoding="utf-8",
    )
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_the_rules_pass_promtools_check(tmp_path: Path) -> None:
    _write(tmp_path, {})
    result = _promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    result = _promtool("test", "rules", str(_write(tmp_path, CASES)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_case() -> None:
    tested = {check["alertname"] for _, alerts in CASES.values() for check in alerts if check["exp_alerts"]}
    assert tested == set(rules())


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    # The harness can fail: an alert expected where the series are healthy.
    healthy = {series("up", instance="10.0.0.1:8080"): "1x30"}
    wrong = {"healthy": (healthy, [check("10m", "PrewarmDown", firing("PrewarmDown", {}))])}
    result = _promtool("test", "rules", str(_write(tmp_path, wrong)))
    assert result.returncode != 0
    assert "PrewarmDown" in result.stdout + result.stderr


def test_the_rules_read_series_the_scaler_exports() -> None:
    # Every prewarm_* series a rule reads is in the scaler's /metrics text, with the
    # labels the rule groups by: a renamed metric or label breaks this, not the alert.
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from scaler.observability import Metrics
    from scaler.signals.base import SourceError

    metrics = Metrics()
    metrics.rpc_done("GetMetrics", "UNAVAILABLE", 2.0)
    metrics.observe_read(SimpleNamespace(key="sqs|x"), 0.1, SourceError("down"))  # type: ignore[arg-type]
    exported = generate_latest(metrics.registry).decode()
    for rule in rules().values():
        for name, selector in re.findall(r"(prewarm_\w+)\{([^}]*)\}", rule["expr"]):
            labels = {m for m in re.findall(r"(\w+)\s*[!=]~?", selector) if m not in ("job", "namespace")}
            grouped = re.findall(r"by \(([^)]*)\)", rule["expr"])
            labels |= {x.strip() for g in grouped for x in g.split(",")} - {"namespace", "job"}
            series = [line for line in exported.splitlines() if line.startswith(name + "{")]
            assert series, f"{rule['alert']} reads {name}, which the scaler does not export"
            for label in labels:
                assert any(f'{label}="' in line for line in series), (rule["alert"], name, label)
