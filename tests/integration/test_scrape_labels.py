"""The scaler's per-object series keep their labels through a real Prometheus scrape
only with honor_labels, which is why the ServiceMonitor sets honorLabels: true.

The Prometheus Operator gives every target of a ServiceMonitor a `namespace` label,
the scaler pod's namespace. The scaler's per-object series carry their own
`namespace` (the ScaledObject's). Without honor_labels Prometheus keeps the target's
and renames the scaler's to `exported_namespace`, so a query such as
`prewarm_desired{namespace="diffusion", name="sd-worker"}` (docs/deploy.md) finds
nothing. Here Debian's Prometheus scrapes the real scaler's /metrics twice, as the
Operator would (target label namespace="prewarm"), with and without honor_labels;
every query of the Grafana dashboard (manifests/components/grafana-dashboard) then
runs there and finds this object's series.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from conftest import LOOPBACK
from prometheus_fixture import gpu_exporter, prometheus, start_prometheus  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

SCALER_NAMESPACE = "prewarm"  # the target label the Operator adds: the scaler's own namespace


async def test_object_labels_survive_the_scrape_only_with_honor_labels(
    start_scaler,
    rabbit,
    gpu_exporter,  # noqa: F811
    prometheus,  # noqa: F811
) -> None:
    scaler = await start_scaler()
    rabbit.publish(3)
    value = await scaler.metric(rabbit.metadata("amqp", queueLength="1"), name="sd-worker")
    assert value.metricValueFloat == 3.0
    # A second trigger of the object with the capacity term, whose rates the dashboard
    # shows (arrivalQuery: a constant 2.5/s from the session's Prometheus).
    capacity = rabbit.metadata(
        "amqp",
        queueLength="1",
        metricName="sd-worker-capacity",
        replicaThroughput="1",
        coldStartSeconds="120",
        prometheusServerAddress=prometheus.url,
        arrivalQuery="vector(2.5)",
    )
    assert (await scaler.metric(capacity, name="sd-worker")).metricValueFloat >= 2.5
    target = f"{LOOPBACK}:{scaler.server.metrics_port}"
    jobs = "".join(
        f"  - job_name: {job}\n"
        f"    honor_labels: {honor}\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
        f"        labels: {{namespace: {SCALER_NAMESPACE}}}\n"
        for job, honor in (("prewarm-honor", "true"), ("prewarm-plain", "false"))
    )
    server = await asyncio.to_thread(start_prometheus, gpu_exporter, scrape_configs=jobs)
    try:
        # With honor_labels: the object's own namespace, as docs/deploy.md queries it.
        kept = (
            'prewarm_desired{job="prewarm-honor", namespace="default", name="sd-worker", '
            'metric!~".*capacity"}'
        )
        await asyncio.to_thread(server.wait_value, kept, 3.0)
        # Series without a namespace of their own keep the target's (the alerts group by it).
        calls = await asyncio.to_thread(
            server.value, f'sum(prewarm_rpc_total{{job="prewarm-honor", namespace="{SCALER_NAMESPACE}"}})'
        )
        assert calls is not None and calls >= 2  # GetMetricSpec and GetMetrics at least
        # Without: the object's namespace is renamed and the target's takes its place.
        renamed = (
            f'prewarm_desired{{job="prewarm-plain", namespace="{SCALER_NAMESPACE}", '
            'exported_namespace="default", name="sd-worker", metric!~".*capacity"}'
        )
        await asyncio.to_thread(server.wait_value, renamed, 3.0)
        lost = 'prewarm_desired{job="prewarm-plain", namespace="default"}'
        assert await asyncio.to_thread(server.value, lost) is None
        await asyncio.to_thread(_dashboard_queries_answer, server)
    finally:
        await asyncio.to_thread(server.stop)


DASHBOARD = (
    Path(__file__).resolve().parents[2] / "manifests" / "components" / "grafana-dashboard" / "prewarm.json"
)


def _dashboard_queries_answer(server) -> None:
    """Every query of the Grafana dashboard, with its variables set to this object,
    runs on the real Prometheus and finds series (busy GPUs exist only for a GPU
    trigger, failed reads only once a read has failed)."""
    optional = ("prewarm_busy_gpus", "prewarm_source_errors_total")
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs
    for expr in exprs:
        promql = (
            expr.replace("$namespace", "default")
            .replace("$name", "sd-worker")
            .replace("$__rate_interval", "1m")
            .replace('job="prewarm"', 'job="prewarm-honor"')
        )
        deadline = time.monotonic() + 15  # rates need two scrapes
        while True:
            answer = server.query(promql)
            assert answer["status"] == "success", (promql, answer)
            if answer["data"]["result"] or any(o in expr for o in optional) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not any(o in expr for o in optional):
            assert answer["data"]["result"], f"no series for the dashboard's {promql}"
