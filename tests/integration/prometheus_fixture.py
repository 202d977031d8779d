"""A real Prometheus (Debian's /usr/bin/prometheus) scraping a fake dcgm-exporter.

- `gpu_exporter` (session): a prometheus-client HTTP server on a free loopback
  port serving `DCGM_FI_DEV_GPU_UTIL` for several fake GPUs with dcgm-exporter's
  labels; tests set each GPU's utilisation.
- `prometheus` (session): Prometheus on a free loopback port, temporary config and
  data dir, scraping the exporter every second; ready once the first scrape landed.
- `start_prometheus`: a Prometheus of the test's own (so the test may stop it),
  optionally with a `--web.config.file` (basic auth users, TLS).

Test modules import these fixtures directly (`from prometheus_fixture import ...`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge, start_http_server

LOOPBACK = "127.0.0.1"
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 1

# dcgm-exporter's labels on its per-GPU series.
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname", "namespace", "pod", "container")


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class FakeGpu:
    index: int
    node: str
    namespace: str
    pod: str
    container: str

    @property
    def uuid(self) -> str:
        return f"GPU-{self.node}-{self.index:04d}-0000-0000-prewarm-test"

    def labels(self) -> dict[str, str]:
        return {
            "gpu": str(self.index),
            "UUID": self.uuid,
            "device": f"nvidia{self.index}",
            "modelName": "NVIDIA H100 80GB HBM3",
            "Hostname": self.node,
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
        }


# Two diffusion workers with one GPU each, one LLM server with two GPUs, and a
# GPU of another team that no selector of the tests should match.
FAKE_GPUS = (
    FakeGpu(0, "gpu-node-a", "ai", "sd-worker-0", "worker"),
    FakeGpu(1, "gpu-node-a", "ai", "sd-worker-1", "worker"),
    FakeGpu(0, "gpu-node-b", "ai", "llm-server-0", "vllm"),
    FakeGpu(1, "gpu-node-b", "ai", "llm-server-0", "vllm"),
    FakeGpu(2, "gpu-node-b", "other", "batch-0", "train"),
)


@dataclass
class GpuExporter:
    """A fake dcgm-exporter whose GPU utilisation (percent) the test sets."""

    port: int
    gauge: Gauge
    _server: Any
    values: dict[FakeGpu, float] = field(default_factory=dict)

    def set(self, utilisation: dict[str, float] | None = None, **by_pod: float) -> None:
        """Set percent per pod (every GPU of the pod), e.g. set({"sd-worker-0": 80});
        unnamed GPUs go to 0."""
        wanted = {**(utilisation or {}), **by_pod}
        for gpu in FAKE_GPUS:
            value = float(wanted.get(gpu.pod, 0.0))
            self.gauge.labels(**gpu.labels()).set(value)
            self.values[gpu] = value

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_gpu_exporter() -> GpuExporter:
    registry = CollectorRegistry()
    gauge = Gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", list(DCGM_LABELS), registry=registry)
    server, _thread = start_http_server(0, addr=LOOPBACK, registry=registry)
    exporter = GpuExporter(port=int(server.server_port), gauge=gauge, _server=server)
    exporter.set()
    return exporter


@dataclass
class PrometheusServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    scheme: str = "http"
    # How the test's own requests authenticate and verify TLS (a web config may demand both).
    auth: tuple[str, str] | None = None
    verify: bool | str = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, auth=self.auth, verify=self.verify, timeout=5)

    def query(self, promql: str) -> dict[str, Any]:
        """Prometheus's own JSON answer to an instant query (whatever its status)."""
        return dict(self.get("/api/v1/query", query=promql).json())

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, None when it has no series."""
        result = self.query(promql)["data"]["result"]
        if not result:
            return None
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, expected: float, timeout: float = 15.0) -> None:
        """Wait (bounded) until a scrape has brought `promql` to `expected`."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last is not None and abs(last - expected) < 1e-9:
                return
            time.sleep(0.2)
        pytest.fail(f"Prometheus did not show {promql} = {expected} within {timeout:g}s (last: {last})")

    def wait_scraped(self, exporter: GpuExporter, timeout: float = 15.0) -> None:
        """Wait until Prometheus holds every GPU's current value (one scrape after a set)."""
        for gpu, value in exporter.values.items():
            self.wait_value(f'DCGM_FI_DEV_GPU_UTIL{{UUID="{gpu.uuid}"}}', value, timeout)

    def pause(self) -> None:
        """Freeze the process (it accepts connections but never answers)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, connections reset, the data dir left as a crash leaves it."""
        self.resume()
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> None:
        """Start the same command again (same port, config and data) and wait until it is
        ready and has scraped."""
        args = self.process.args
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not _wait_ready(self, timeout):
            pytest.fail(f"Prometheus did not restart on port {self.port}")
        self.wait_value('up{job="dcgm"}', 1.0, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(
    exporter: GpuExporter,
    attempts: int = 3,
    *,
    web_config: str | None = None,
    scheme: str = "http",
    auth: tuple[str, str] | None = None,
    verify: bool | str = True,
    openmetrics: str | None = None,
    scrape_configs: str = "",
) -> PrometheusServer:
    """Prometheus on a free loopback port, scraping `exporter`; returns once ready
    and the first scrape is stored. `web_config` is the text of a --web.config.file
    (basic_auth_users, tls_server_config with absolute paths); `scheme`, `auth` and
    `verify` are what the test's own requests then need. `openmetrics` (text ending
    in '# EOF') is backfilled as history before the server starts (promtool tsdb
    create-blocks-from openmetrics). `scrape_configs` (YAML list items, indented two
    spaces) adds scrape jobs beside the exporter's."""
    last_error = ""
    for _ in range(attempts):
        workdir = Path(tempfile.mkdtemp(prefix="prewarm-prometheus-"))
        if openmetrics is not None:
            backfill(openmetrics, workdir / "data")
        web_flags: list[str] = []
        if web_config is not None:
            (workdir / "web.yml").write_text(web_config)
            web_flags.append(f"--web.config.file={workdir / 'web.yml'}")
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
            f"  scrape_timeout: {SCRAPE_INTERVAL_S}s\n"
            f"  evaluation_interval: {SCRAPE_INTERVAL_S}s\n"
            "scrape_configs:\n"
            "  - job_name: dcgm\n"
            "    static_configs:\n"
            f"      - targets: ['{LOOPBACK}:{exporter.port}']\n" + scrape_configs
        )
        port = find_free_port()
        log = (workdir / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                PROMETHEUS_BIN,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=warn",
                *web_flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = PrometheusServer(
            port=port, process=process, workdir=workdir, scheme=scheme, auth=auth, verify=verify
        )
        if _wait_ready(server, timeout=30):
            server.wait_value('up{job="dcgm"}', 1.0, timeout=30)
            return server
        last_error = (workdir / "prometheus.log").read_text(errors="replace")[-2000:]
        server.stop()
    pytest.fail(f"Prometheus ({PROMETHEUS_BIN}) did not start: {last_error}", pytrace=False)


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write history into a TSDB directory with promtool, as an operator backfills."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / "backfill.om"
    source.write_text(openmetrics)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    # One block for the whole history (default: one per 2 h, slow to write and to load).
    command = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=240h"]
    done = subprocess.run(
        [*command, str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"promtool could not backfill: {done.stderr[-2000:]}", pytrace=False)


def _wait_ready(server: PrometheusServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False  # exited: most likely the port was taken meanwhile
        with contextlib.suppress(requests.RequestException):
            if server.get("/-/ready").status_code == 200:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def gpu_exporter() -> Iterator[GpuExporter]:
    if not Path(PROMETHEUS_BIN).exists():
        pytest.fail("prometheus is not installed (apt-get install prometheus; .ci/run does)", pytrace=False)
    exporter = start_gpu_exporter()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def prometheus(gpu_exporter: GpuExporter) -> Iterator[PrometheusServer]:
    server = start_prometheus(gpu_exporter)
    yield server
    server.stop()


@pytest.fixture
def gpus(gpu_exporter: GpuExporter, prometheus: PrometheusServer) -> Iterator[Callable[..., None]]:
    """`gpus(sd_worker_0=80, ...)`-style setter that returns once Prometheus scraped it:
    gpus({"sd-worker-0": 80, "llm-server-0": 100}). Resets every GPU to 0 afterwards."""

    def set_and_wait(utilisation: dict[str, float]) -> None:
        gpu_exporter.set(utilisation)
        prometheus.wait_scraped(gpu_exporter)

    yield set_and_wait
    gpu_exporter.set()


@pytest.fixture
def own_prometheus(gpu_exporter: GpuExporter) -> Iterator[PrometheusServer]:
    """A Prometheus of this test's own, which the test may pause or stop."""
    server = start_prometheus(gpu_exporter)
    yield server
    server.stop()
