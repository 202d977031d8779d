"""The optional Grafana dashboard (manifests/components/grafana-dashboard): a sound
dashboard document whose every query reads series and labels the scaler exports.
That each query runs on a real Prometheus scraping the real scaler, and finds data,
is tests/integration/test_scrape_labels.py's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from scaler.observability import Metrics

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "manifests" / "components" / "grafana-dashboard" / "prewarm.json"
)
# Labels Prometheus adds to every scraped series, and the histogram buckets' own.
ADDED_LABELS = {"job", "instance", "namespace", "le"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def exported_labels() -> dict[str, set[str]]:
    """Each exported series name -> its label names, from the scaler's Metrics."""
    metrics = Metrics()
    found: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name  # prometheus_client keeps no public accessor
            labels = set(value._labelnames)
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(
                value._type, [""]
            )
            for suffix in suffixes:
                found[name + suffix] = labels
    # The rpc tally is a custom collector: its names and labels from one exposition.
    metrics.rpc_done("GetMetrics", "OK", 0.01)
    for line in generate_latest(metrics.registry).decode().splitlines():
        match = re.match(r"(prewarm_rpc\w*)\{([^}]*)\}", line)
        if match:
            found.setdefault(match.group(1), set()).update(re.findall(r"(\w+)=", match.group(2)))
    return found


def test_the_document_is_sound() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"]
    panels = doc["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert variables == {"datasource", "namespace", "name"}
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert g["x"] + g["w"] <= 24, p["title"]
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])


def test_every_query_reads_exported_series_and_labels() -> None:
    exported = exported_labels()
    for expr in queries():
        names = re.findall(r"\b(prewarm_\w+)", expr)
        assert names, expr
        for name in names:
            assert name in exported, f"{expr}: the scaler does not export {name}"
        used = set(re.findall(r"(\w+)\s*=~?\s*\"", expr))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            used |= {label.strip() for label in group.split(",")}
        for name in names:
            unknown = used - exported[name] - ADDED_LABELS
            assert not unknown, f"{expr}: {name} has no label {sorted(unknown)}"


def test_per_object_panels_follow_the_variables() -> None:
    per_object = [e for e in queries() if "prewarm_rpc" not in e and "prewarm_source" not in e]
    assert per_object
    for expr in per_object:
        assert 'namespace="$namespace", name="$name"' in expr, expr
