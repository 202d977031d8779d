"""Authenticated and TLS Prometheus, through the project's real gRPC server.

- basic auth: a Prometheus of this module's own with `basic_auth_users` (bcrypt) in
  its --web.config.file;
- bearer token: Prometheus cannot check one, so a small loopback reverse proxy in
  front of the shared Prometheus demands `Authorization: Bearer <token>` (as an
  oauth2-proxy or an ingress would);
- unsafeSsl: a Prometheus of this module's own serving https with a self-signed
  certificate made here (`tls_server_config`).

Wrong credentials and untrusted certificates are UNAVAILABLE naming the server,
never a zero, and no secret appears in an error, a log line or /metrics.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import bcrypt
import grpc
import pytest
import requests
from faults import write_self_signed_certificate

if TYPE_CHECKING:
    from prometheus_fixture import GpuExporter, PrometheusServer

# The Prometheus and fake dcgm-exporter fixtures (gpu_exporter, prometheus, gpus). The module
# itself is imported in the fixtures below, once pytest has loaded it as a plugin (an import
# here would come first and keep pytest from rewriting its asserts).
pytest_plugins = ["prometheus_fixture"]
pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"

SD_WORKERS = 'namespace="ai",pod=~"sd-worker-.*"'
USER = "alice"
PASSWORD = "pw-basic-5e1c-very-secret"
WRONG_PASSWORD = "pw-wrong-93ab-very-secret"
TOKEN = "tok-bearer-a41f-very-secret"
WRONG_TOKEN = "tok-wrong-0c77-very-secret"


def gpu_metadata(url: str, **extra: str) -> dict[str, str]:
    # A 100 % target makes the metric value the busy-GPU figure itself.
    meta = {"prometheusServerAddress": url, "gpuSelector": SD_WORKERS, "gpuTargetUtilization": "100"}
    meta.update(extra)
    return meta


# --- a basic-auth Prometheus -------------------------------------------------


@pytest.fixture(scope="module")
def basic_auth_prometheus(gpu_exporter: GpuExporter) -> Iterator[PrometheusServer]:
    from prometheus_fixture import start_prometheus

    # Cost 4 (bcrypt's minimum): Prometheus checks the hash on every request.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    server = start_prometheus(
        gpu_exporter, web_config=f"basic_auth_users:\n  {USER}: '{hashed}'\n", auth=(USER, PASSWORD)
    )
    yield server
    server.stop()


# --- an https Prometheus with a self-signed certificate ---------------------------


@pytest.fixture(scope="module")
def tls_prometheus(
    gpu_exporter: GpuExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    from prometheus_fixture import start_prometheus

    cert_file, key_file = write_self_signed_certificate(
        tmp_path_factory.mktemp("prometheus-tls"), "prewarm test prometheus"
    )
    server = start_prometheus(
        gpu_exporter,
        web_config=f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n",
        scheme="https",
        verify=str(cert_file),  # the test itself trusts the certificate; the scaler does not
    )
    yield server
    server.stop()


# --- a bearer-token reverse proxy --------------------------------------------------


class BearerProxy:
    """A loopback reverse proxy that forwards GETs to Prometheus only with
    `Authorization: Bearer <token>`, and answers 401 otherwise."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream
        self.token = token
        self.forwarded = 0
        self.refused = 0
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        expected = f"Bearer {self.token}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                given = (self.headers.get("Authorization") or "").encode()
                if not hmac.compare_digest(given, expected):
                    proxy.refused += 1
                    self._answer(401, b"Unauthorized\n", "text/plain")
                    return
                proxy.forwarded += 1
                upstream = requests.get(proxy.upstream + self.path, timeout=5)
                self._answer(upstream.status_code, upstream.content, upstream.headers["Content-Type"])

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows stderr on failures

        return Handler

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def bearer_proxy(prometheus: PrometheusServer) -> Iterator[BearerProxy]:
    proxy = BearerProxy(prometheus.url, TOKEN)
    yield proxy
    proxy.stop()


# --- busy GPUs on a given Prometheus -------------------------------------------------


@pytest.fixture
def busy_gpus(gpu_exporter: GpuExporter) -> Iterator[Callable[[PrometheusServer, dict[str, float]], None]]:
    """`busy_gpus(server, {"sd-worker-0": 80})`: set the utilisation and wait until
    `server` scraped it. Resets every GPU to 0 afterwards."""

    def set_and_wait(server: PrometheusServer, utilisation: dict[str, float]) -> None:
        gpu_exporter.set(utilisation)
        server.wait_scraped(gpu_exporter)

    yield set_and_wait
    gpu_exporter.set()


def assert_no_secret(secrets: tuple[str, ...], *texts: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


# --- basic auth --------------------------------------------------------------


@pytest.mark.parametrize("keys", ["plain", "FromEnv"])
async def test_basic_auth_reads_busy_gpus(start_scaler, basic_auth_prometheus, busy_gpus, keys):
    # Without credentials this Prometheus answers nothing: the read below is authenticated.
    assert requests.get(f"{basic_auth_prometheus.url}/api/v1/query?query=up", timeout=5).status_code == 401
    suffix = "" if keys == "plain" else "FromEnv"  # KEDA forwards ...FromEnv keys resolved
    meta = gpu_metadata(
        basic_auth_prometheus.url,
        **{f"prometheusUsername{suffix}": USER, f"prometheusPassword{suffix}": PASSWORD},
    )
    busy_gpus(basic_auth_prometheus, {"sd-worker-0": 80, "sd-worker-1": 40, "llm-server-0": 100})
    scaler = await start_scaler()
    value = await scaler.metric(meta)
    assert value.metricValueFloat == pytest.approx(1.2)
    assert await scaler.active(meta) is True


async def test_wrong_basic_auth_password_is_access_denied_without_secrets(
    start_scaler, basic_auth_prometheus, caplog
):
    caplog.set_level(logging.DEBUG)
    scaler = await start_scaler()
    meta = gpu_metadata(basic_auth_prometheus.url, prometheusUsername=USER, prometheusPassword=WRONG_PASSWORD)
    for call in (scaler.metric, scaler.active):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(meta)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        details = info.value.details()
        assert "access denied" in details
        assert basic_auth_prometheus.url in details
        assert_no_secret((PASSWORD, WRONG_PASSWORD), details)
    assert_no_secret((PASSWORD, WRONG_PASSWORD), caplog.text, await scaler.scrape())


# --- bearer token --------------------------------------------------------------


async def test_bearer_token_reads_busy_gpus_through_a_checking_proxy(
    start_scaler, prometheus, bearer_proxy, gpus
):
    # The proxy refuses a request without the token: the read below carried it.
    assert requests.get(f"{bearer_proxy.url}/api/v1/query?query=up", timeout=5).status_code == 401
    gpus({"sd-worker-0": 100, "sd-worker-1": 50})
    scaler = await start_scaler()
    value = await scaler.metric(gpu_metadata(bearer_proxy.url, prometheusBearerToken=TOKEN))
    assert value.metricValueFloat == pytest.approx(1.5)
    assert bearer_proxy.forwarded >= 1


async def test_wrong_bearer_token_is_access_denied_without_secrets(start_scaler, bearer_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    scaler = await start_scaler()
    meta = gpu_metadata(bearer_proxy.url, prometheusBearerTokenFromEnv=WRONG_TOKEN)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await scaler.metric(meta)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    details = info.value.details()
    assert "access denied (HTTP 401)" in details
    assert bearer_proxy.url in details
    assert bearer_proxy.forwarded == 0 and bearer_proxy.refused >= 1
    assert_no_secret((TOKEN, WRONG_TOKEN), details, caplog.text, await scaler.scrape())


# --- TLS -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # unsafeSsl asks for it
async def test_unsafe_ssl_reads_a_self_signed_prometheus(start_scaler, tls_prometheus, busy_gpus):
    assert tls_prometheus.url.startswith("https://")
    busy_gpus(tls_prometheus, {"sd-worker-0": 60, "sd-worker-1": 30})
    scaler = await start_scaler()
    meta = gpu_metadata(tls_prometheus.url, unsafeSsl="true")
    value = await scaler.metric(meta)
    assert value.metricValueFloat == pytest.approx(0.9)
    assert await scaler.active(meta) is True


@pytest.mark.parametrize("unsafe", [None, "false"])
async def test_self_signed_prometheus_without_unsafe_ssl_is_unavailable(start_scaler, tls_prometheus, unsafe):
    scaler = await start_scaler()
    meta = gpu_metadata(tls_prometheus.url)
    if unsafe is not None:
        meta["unsafeSsl"] = unsafe
    started = time.monotonic()
    for call in (scaler.metric, scaler.active):  # an error, never a zero or inactive
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(meta)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        details = info.value.details()
        assert tls_prometheus.url in details
        assert "certificate verify failed" in details
    assert time.monotonic() - started < 2 * (1.0 + 1.5)  # each within the source timeout + slack
