"""`python -m scaler explain` against a real RabbitMQ broker and a real Prometheus:
the manifest as written, `...FromEnv` from the environment, text and JSON."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["prometheus_fixture"]
pytestmark = pytest.mark.integration

SD_WORKERS = 'namespace="ai",pod=~"sd-worker-.*"'
# The local broker (see conftest.py's `rabbit` fixture); KEDA would read it from the container.
RABBIT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RABBIT_HTTP_URL = "http://guest:guest@127.0.0.1:15672"
# explain reads every source afresh (no cache TTL), each read bounded by --timeout: a
# signal's age is at most that.
EXPLAIN_TIMEOUT_S = 2.0
AGE_RE = re.compile(r"\(read (\d+\.\d+)s ago\)")


def scaled_object(queue: str, prometheus_url: str, selector: str = SD_WORKERS, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: sd-worker, namespace: ai}}
        ---
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata:
          name: sd-worker
          namespace: ai
        spec:
          scaleTargetRef: {{name: sd-worker}}
          minReplicaCount: 0
          maxReplicaCount: 6
          triggers:
            - type: external-push
              metadata:
                scalerAddress: prewarm.keda:6000
                source: rabbitmq
                hostFromEnv: RABBIT_URL
                queueName: {queue}
                queueLength: "4"
                prometheusServerAddress: {prometheus_url}
                gpuSelector: '{selector}'
        {extra}"""
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def explain(manifest: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    return explain_path(path, *args, env=env)


def explain_path(path: Path, *args: str, env: dict[str, str] | None = None):
    """`python -m scaler explain -f PATH` (a file or a folder), in a clean environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREWARM_") and k != "RABBIT_URL"}
    environ.update(env or {})
    timeout = f"{EXPLAIN_TIMEOUT_S:g}"
    return subprocess.run(
        [sys.executable, "-m", "scaler", "explain", "-f", str(path), "--timeout", timeout, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_explain_text_with_queue_and_gpu_guard(tmp_path, rabbit, prometheus, gpus):
    rabbit.publish(12)
    gpus({"sd-worker-0": 100, "sd-worker-1": 50})
    result = explain(
        scaled_object(rabbit.name, prometheus.url), tmp_path, env={"RABBIT_URL": RABBIT_AMQP_URL}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    for expected in (
        "ScaledObject ai/sd-worker, trigger 0 (external-push)",
        "gpuRole guard",
        "hostFromEnv from $RABBIT_URL",
        f"rabbitmq queue '{rabbit.name}'",
        "12 waiting",
        f"prometheus at {prometheus.url}",
        "2 busy GPUs",  # the guard counts working GPUs (100 % and 50 %), not their sum
        "Winner: queue",
        "metricValueFloat 3.000",
        "active yes",
        "What KEDA and the HPA would do: 3 replica(s)",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    assert "guest:guest" not in out  # the resolved URL's credentials are never shown
    # Each signal's age is shown, and it is the age of this run's read.
    ages = [float(age) for age in AGE_RE.findall(out)]
    assert len(ages) == 2, out
    assert all(0.0 <= age <= EXPLAIN_TIMEOUT_S for age in ages), ages


def test_explain_json_when_the_guard_wins(tmp_path, rabbit, prometheus, gpus):
    rabbit.publish(2)
    gpus({"sd-worker-0": 100, "sd-worker-1": 100, "llm-server-0": 100})
    result = explain(
        scaled_object(rabbit.name, prometheus.url), tmp_path, "--json", env={"RABBIT_URL": RABBIT_AMQP_URL}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    signals = {s["name"]: s for s in report["signals"]}
    assert signals["queue"]["value"]["waiting"] == 2
    assert signals["gpu"]["value"]["busy_gpus"] == pytest.approx(2.0)
    for name in ("queue", "gpu"):
        assert 0.0 <= signals[name]["age_s"] <= EXPLAIN_TIMEOUT_S  # read by this run, not a stale value
    terms = {t["name"]: t for t in report["terms"]}
    assert terms["queue"]["replicas"] == pytest.approx(0.5)
    assert terms["gpu-guard"]["replicas"] == pytest.approx(2.0) and terms["gpu-guard"]["active"]
    assert report["winner"] == "gpu-guard"
    assert report["answer"]["metricValueFloat"] == pytest.approx(2.0)
    assert report["answer"]["active"] is True
    assert report["keda"]["replicas"] == 2
    assert report["trigger"]["from_env"] == {"hostFromEnv": "RABBIT_URL"}


def test_explain_scaled_job_jobs_per_poll(tmp_path, rabbit):
    rabbit.publish(5)
    manifest = textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledJob
        metadata: {{name: render, namespace: batch}}
        spec:
          jobTargetRef: {{template: {{}}}}
          maxReplicaCount: 10
          scalingStrategy: {{strategy: accurate}}
          triggers:
            - type: external
              metadata:
                source: rabbitmq
                host: {RABBIT_AMQP_URL}
                queueName: {rabbit.name}
                queueLength: "1"
                mode: job
        """
    )
    result = explain(manifest, tmp_path, "--json", "--running", "3", "--pending", "1")
    assert result.returncode == 0, result.stderr + result.stdout
    keda = json.loads(result.stdout)["keda"]
    assert keda["kind"] == "ScaledJob" and keda["strategy"] == "accurate"
    assert keda["jobs_created"] == 4  # maxScale 5 - pending 1
    assert rabbit.counts()[0] == 5  # explain only looked


def test_explain_gpu_only_warns_it_cannot_wake_from_zero(tmp_path, prometheus, gpus):
    gpus({"sd-worker-0": 90, "sd-worker-1": 60})
    manifest = textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {{name: sd-worker, namespace: ai}}
        spec:
          scaleTargetRef: {{name: sd-worker}}
          triggers:
            - type: external
              metadata:
                prometheusServerAddress: {prometheus.url}
                gpuSelector: '{SD_WORKERS}'
        """
    )
    result = explain(manifest, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "gpuRole demand" in result.stdout
    assert "*gpu" in result.stdout and "1.5 busy GPUs / (75% target" in result.stdout
    assert "What KEDA and the HPA would do: 2 replica(s)" in result.stdout
    assert "cannot wake the workload from zero" in result.stdout


def test_explain_unreachable_prometheus_exits_1_naming_it(tmp_path, rabbit):
    dead = f"http://127.0.0.1:{closed_port()}"
    result = explain(scaled_object(rabbit.name, dead), tmp_path, env={"RABBIT_URL": RABBIT_AMQP_URL})
    assert result.returncode == 1
    assert "would answer UNAVAILABLE" in result.stdout
    assert f"prometheus at {dead}" in result.stdout
    assert "gpu: cannot connect" in result.stdout
    assert "check: that prometheusServerAddress answers" in result.stdout
    assert "0 waiting" in result.stdout  # the queue was read and is shown


def test_explain_says_what_to_check_when_a_host_does_not_resolve(tmp_path):
    """explain goes through the same engine as the server: the same plain causes,
    never a bare exception class such as `gaierror`."""
    manifest = scaled_object("jobs", "http://nonexistent.invalid:9090")
    result = explain(
        manifest, tmp_path, env={"RABBIT_URL": "amqp://guest:guest@nonexistent.invalid:5672/%2F"}
    )
    assert result.returncode == 1, result.stderr + result.stdout
    assert "gaierror" not in result.stdout
    for endpoint in ("nonexistent.invalid:5672", "nonexistent.invalid:9090"):
        assert f"cannot connect to {endpoint}: the host name 'nonexistent.invalid' does not resolve" in (
            result.stdout
        ), result.stdout


def test_explain_invalid_query_exits_2_with_prometheus_message(tmp_path, rabbit, prometheus):
    manifest = scaled_object(rabbit.name, prometheus.url).replace(
        f"gpuSelector: '{SD_WORKERS}'", "gpuQuery: 'sum(DCGM_FI_DEV_GPU_UTIL{'"
    )
    result = explain(manifest, tmp_path, "--json", env={"RABBIT_URL": RABBIT_AMQP_URL})
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["error"]["status"] == "INVALID_ARGUMENT"
    [failed] = report["error"]["sources"]
    assert prometheus.query("sum(DCGM_FI_DEV_GPU_UTIL{")["error"] in failed["why"]


def test_explain_missing_env_variable_exits_2(tmp_path, rabbit, prometheus):
    result = explain(scaled_object(rabbit.name, prometheus.url), tmp_path, env={})
    assert result.returncode == 2
    assert "RABBIT_URL" in result.stderr and "not set here" in result.stderr


def test_explain_reports_management_api_rates(tmp_path, rabbit):
    # Publish 10 and take one (a basic.get: the test as a worker) on one channel, kept
    # open until the management API shows both rates: the broker collects a channel's
    # publish and deliver/get counts every 5 s (by default) while it is open, and a
    # channel closed before a collection leaves the queue with no message_stats at all
    # (rabbitmq/rabbitmq-management#353; the flake this test had when it closed its
    # channels at once).
    channel = rabbit.channel()
    try:
        for i in range(10):
            channel.basic_publish(exchange="", routing_key=rabbit.name, body=f"job {i}".encode())
        method, _props, _body = channel.basic_get(queue=rabbit.name, auto_ack=True)
        assert method is not None
        deadline = time.monotonic() + 60
        while True:
            body = rabbit.management()
            stats = body.get("message_stats") or {}
            rates = "publish_details" in stats and "deliver_get_details" in stats
            if rates and body.get("messages_ready") == 9:
                break
            assert time.monotonic() < deadline, f"no rates from the management API: {body}"
            time.sleep(0.25)
    finally:
        channel.close()
    manifest = textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {{name: worker, namespace: ai}}
        spec:
          scaleTargetRef: {{name: worker}}
          triggers:
            - type: external
              metadata:
                source: rabbitmq
                hostFromEnv: RABBIT_URL
                queueName: {rabbit.name}
        """
    )
    env = {"RABBIT_URL": RABBIT_HTTP_URL}
    result = explain(manifest, tmp_path, "--json", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    [queue] = json.loads(result.stdout)["signals"]
    value = queue["value"]
    assert value["waiting"] == 9 and value["in_flight"] == 0
    for rate in ("publish_rate", "deliver_rate"):
        assert isinstance(value[rate], float) and value[rate] >= 0.0, value  # a number, not None

    text = explain(manifest, tmp_path, env=env)
    assert text.returncode == 0, text.stderr + text.stdout
    assert re.search(r"9 waiting, 0 in flight, publish [\d.e+-]+/s, deliver [\d.e+-]+/s", text.stdout), (
        text.stdout
    )
    assert rabbit.counts()[0] == 9  # explain only looked


def keda_object(kind: str, name: str, queue: str, queue_length: int) -> str:
    """A ScaledObject (deployment mode) or ScaledJob (job mode) on a local RabbitMQ queue."""
    if kind == "ScaledJob":
        namespace, target, mode = "batch", "jobTargetRef: {template: {}}", "job"
        more = "scalingStrategy: {strategy: accurate}"
    else:
        namespace, target, mode = "ai", "scaleTargetRef: {name: worker}", "deployment"
        more = "minReplicaCount: 0"
    return textwrap.dedent(
        f"""\
        apiVersion: keda.sh/v1alpha1
        kind: {kind}
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          {target}
          {more}
          maxReplicaCount: 6
          triggers:
            - type: external
              metadata:
                source: rabbitmq
                host: {RABBIT_AMQP_URL}
                queueName: {queue}
                queueLength: "{queue_length}"
                mode: {mode}
        """
    )


CPU_SCALED_OBJECT = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: ai}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - type: cpu
      metricType: Utilization
      metadata: {value: "60"}
"""


def test_explain_a_folder_explains_each_object_in_it(tmp_path, rabbit):
    rabbit.publish(5)
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text("resources: [worker.yaml, render.yaml]\n")
    (folder / "worker.yaml").write_text(keda_object("ScaledObject", "worker", rabbit.name, 4))
    (folder / "render.yaml").write_text(keda_object("ScaledJob", "render", rabbit.name, 1))

    result = explain_path(folder)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert out.index(f"== {folder / 'render.yaml'}") < out.index(f"== {folder / 'worker.yaml'}")
    assert "ScaledJob batch/render" in result.stdout and "5 new Job(s) this poll" in result.stdout
    assert "ScaledObject ai/worker" in result.stdout
    assert "What KEDA and the HPA would do: 2 replica(s)" in result.stdout  # 5 waiting / 4 per replica

    # A KEDA object that does not use Prewarm (a cpu trigger beside it) is named and skipped.
    (folder / "web.yaml").write_text(CPU_SCALED_OBJECT)
    result = explain_path(folder)
    assert result.returncode == 0, result.stderr + result.stdout
    assert (
        f"== {folder / 'web.yaml'}: ScaledObject ai/web: skipped, no trigger of type external or "
        "external-push in spec.triggers (found: 'cpu')"
    ) in result.stdout
    assert "ScaledObject ai/worker" in result.stdout

    # One bad object: the others are still explained; the exit status is the worst (2).
    (folder / "typo.yaml").write_text(keda_object("ScaledObject", "typo", rabbit.name, -1))
    result = explain_path(folder, "--json")
    assert result.returncode == 2, result.stderr + result.stdout
    body = json.loads(result.stdout)
    assert body["ok"] is False
    by_file = {Path(r["file"]).name: r for r in body["reports"]}
    assert set(by_file) == {"render.yaml", "typo.yaml", "web.yaml", "worker.yaml"}
    assert "found: 'cpu'" in by_file["web.yaml"]["skipped"]
    assert by_file["worker.yaml"]["ok"] and by_file["worker.yaml"]["keda"]["replicas"] == 2
    assert by_file["render.yaml"]["ok"]
    assert by_file["typo.yaml"]["error"]["status"] == "INVALID_ARGUMENT"
    assert "queueLength" in by_file["typo.yaml"]["error"]["message"]
    text = explain_path(folder)
    assert text.returncode == 2
    assert f"{folder / 'typo.yaml'}: ScaledObject ai/typo: bad trigger metadata" in text.stderr
    assert "ScaledObject ai/worker" in text.stdout
    assert rabbit.counts()[0] == 5  # explain only looked


def test_explain_applies_the_servers_host_limit(tmp_path, rabbit, prometheus, gpus):
    """In the scaler's pod (kubectl exec) PREWARM_ALLOWED_HOSTS is set: explain refuses
    what the server refuses, naming the limit, and reads what it allows."""
    rabbit.publish(2)
    gpus({"sd-worker-0": 0})
    manifest = scaled_object(rabbit.name, prometheus.url)
    refused = explain(
        manifest,
        tmp_path,
        env={"RABBIT_URL": RABBIT_AMQP_URL, "PREWARM_ALLOWED_HOSTS": "*.svc.cluster.local"},
    )
    assert refused.returncode == 2, refused.stderr + refused.stdout
    assert "metadata key 'hostFromEnv'" in refused.stderr and "PREWARM_ALLOWED_HOSTS" in refused.stderr, (
        refused.stderr
    )
    assert "guest:guest" not in refused.stderr + refused.stdout

    allowed = explain(
        manifest, tmp_path, env={"RABBIT_URL": RABBIT_AMQP_URL, "PREWARM_ALLOWED_HOSTS": "127.0.0.1"}
    )
    assert allowed.returncode == 0, allowed.stderr + allowed.stdout
    assert "2 waiting" in allowed.stdout, allowed.stdout
