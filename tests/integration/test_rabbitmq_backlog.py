"""RabbitMQ backlog against the real broker, over AMQP (passive declare) and the
management HTTP API: waiting messages, and unacknowledged ones held by a test
consumer, in both modes; vhosts (vhostName, the URL path, which wins) and missing
queues and vhosts."""

from __future__ import annotations

import asyncio
import math
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import grpc
import pika
import pytest
import requests

from scaler.engine import ObjectRef

pytestmark = pytest.mark.integration

PUBLISHED, UNACKED = 10, 3
READY = PUBLISHED - UNACKED
QUEUE_LENGTH = 4.0

# The local broker, as conftest.py's `rabbit` fixture uses it.
RABBIT_USER = RABBIT_PASSWORD = "guest"
RABBIT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RABBIT_HTTP_URL = "http://guest:guest@127.0.0.1:15672"
RABBIT_API = "http://127.0.0.1:15672/api"


@pytest.fixture
async def rabbit_backlog(rabbit):
    """10 published, 3 of them held unacknowledged by a consumer of the test's own;
    returns once the management API (which lags by its stats interval) shows it."""
    rabbit.publish(PUBLISHED)
    rabbit.hold_unacknowledged(UNACKED)
    assert rabbit.counts() == (READY, 1)  # the broker itself knows at once
    await rabbit.wait_management(ready=READY, unacknowledged=UNACKED)
    return rabbit


async def test_counts_over_amqp_and_http_in_both_modes(scaler_server, rabbit_backlog):
    # One backlog, many trigger variants: the management API wait is paid once.
    cases = [
        # (protocol, extra metadata, counted messages)
        ("amqp", {}, READY),  # AMQP cannot see unacknowledged messages
        ("http", {}, READY + UNACKED),
        ("http", {"excludeUnacknowledged": "true"}, READY),
        ("http", {"protocol": "http", "vhostName": "/"}, READY + UNACKED),
        ("amqp", {"mode": "job"}, READY),
        ("http", {"mode": "job"}, READY),  # job mode: the unclaimed backlog only
    ]
    for protocol, extra, counted in cases:
        meta = rabbit_backlog.metadata(protocol, queueLength=f"{QUEUE_LENGTH:g}", **extra)

        value = await scaler_server.metric(meta)

        case = f"{protocol} {extra}"
        assert value.metricValueFloat == pytest.approx(counted / QUEUE_LENGTH), case
        assert value.metricValue == math.ceil(counted / QUEUE_LENGTH), case
        assert await scaler_server.active(meta) is True, case

    # Active when counted work exceeds activationQueueLength (not when it equals it).
    # AMQP cannot see unacknowledged messages: only the ready ones count.
    meta = rabbit_backlog.metadata
    assert await scaler_server.active(meta("amqp", activationQueueLength=str(READY - 1)))
    assert not await scaler_server.active(meta("amqp", activationQueueLength=str(READY)))
    assert await scaler_server.active(meta("http", activationQueueLength=str(READY + UNACKED - 1)))
    # Over HTTP, unacknowledged messages (pods at work) keep a deployment active below
    # the threshold, counted in the metric or not, so KEDA never cools busy pods down.
    assert await scaler_server.active(meta("http", activationQueueLength="100"))
    assert await scaler_server.active(meta("http", activationQueueLength="100", excludeUnacknowledged="true"))
    # Job mode: the unclaimed backlog only.
    assert not await scaler_server.active(meta("http", mode="job", activationQueueLength=str(READY)))


async def test_kedas_own_rabbitmq_metadata_reads_the_same_backlog(scaler_server, rabbit_backlog):
    # A trigger moved from KEDA's built-in rabbitmq scaler: no `source`, KEDA's
    # mode and value; the answer is KEDA's messages / value, in replicas.
    for protocol, counted in (("amqp", READY), ("http", READY + UNACKED)):
        meta = rabbit_backlog.metadata(protocol, mode="QueueLength", value=f"{QUEUE_LENGTH:g}")
        del meta["source"]

        value = await scaler_server.metric(meta)

        assert value.metricValueFloat == pytest.approx(counted / QUEUE_LENGTH), protocol
        assert await scaler_server.active(meta) is True, protocol
        # KEDA's activationValue: active above it, not at it
        at_threshold = {**meta, "activationValue": str(counted)}
        expected = protocol == "http"  # unacknowledged work keeps a pool awake (our guard)
        assert await scaler_server.active(at_threshold) is expected, protocol
    # KEDA's default target is 20 messages: 10 messages is half a replica
    default = rabbit_backlog.metadata("http")
    assert (await scaler_server.metric(default)).metricValueFloat == pytest.approx((READY + UNACKED) / 20)
    # MessageRate: the management API's publish rate / value (the rate itself
    # moves with the broker's samples, so only its shape is checked here; the
    # arithmetic is in tests/unit/test_policy.py)
    rate_meta = rabbit_backlog.metadata("http", mode="MessageRate", value="2")
    rate = (await scaler_server.metric(rate_meta)).metricValueFloat
    assert math.isfinite(rate) and rate >= 0
    assert await scaler_server.active(rate_meta) is True  # 10 messages > activationValue 0


async def test_empty_queue_is_zero_and_inactive(scaler_server, rabbit):
    await rabbit.wait_management(ready=0, unacknowledged=0)  # the API has counts for the new queue
    for protocol in ("amqp", "http"):
        meta = rabbit.metadata(protocol)

        value = await scaler_server.metric(meta)

        assert (value.metricValueFloat, value.metricValue) == (0.0, 0), protocol
        assert await scaler_server.active(meta) is False, protocol


# --- vhosts and missing queues ----------------------------------------------------

IN_DEFAULT_VHOST, IN_TENANT_VHOST = 2, 5


async def _unavailable(call) -> str:
    """The rpc fails with UNAVAILABLE; returns its details."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    return str(failure.value.details())


def _management(path: str, method: str = "GET", **kwargs) -> requests.Response:
    response = requests.request(
        method, f"{RABBIT_API}/{path}", auth=(RABBIT_USER, RABBIT_PASSWORD), timeout=5, **kwargs
    )
    response.raise_for_status()
    return response


@pytest.fixture
async def tenant_vhost(rabbit, wait_until):
    """A vhost of this test's own (with a `/` in its name, so it must be quoted in
    URLs), holding a queue named like `rabbit`'s: 2 messages in the default vhost,
    5 in the tenant's, so a count tells which vhost was read. Deleted afterwards."""
    vhost = f"prewarm-it/{uuid.uuid4().hex[:8]}"
    quoted = quote(vhost, safe="")
    _management(f"vhosts/{quoted}", "PUT", json={"description": "prewarm integration test"})
    try:
        _management(
            f"permissions/{quoted}/{RABBIT_USER}",
            "PUT",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        )
        connection = pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{quoted}")
        )
        try:
            channel = connection.channel()
            channel.queue_declare(queue=rabbit.name, durable=False, auto_delete=False)
            for i in range(IN_TENANT_VHOST):
                channel.basic_publish(exchange="", routing_key=rabbit.name, body=f"job {i}".encode())
        finally:
            connection.close()
        rabbit.publish(IN_DEFAULT_VHOST)

        def tenant_counts_shown() -> bool:
            body = _management(f"queues/{quoted}/{rabbit.name}").json()
            return body.get("messages_ready") == IN_TENANT_VHOST

        # The management API's counts lag the broker by its stats interval.
        await wait_until(
            lambda: asyncio.to_thread(tenant_counts_shown),
            timeout=20,
            interval=0.25,
            what=f"management API to show {IN_TENANT_VHOST} ready in vhost {vhost!r}",
        )
        await rabbit.wait_management(ready=IN_DEFAULT_VHOST, unacknowledged=0)
        yield vhost
    finally:
        _management(f"vhosts/{quoted}", "DELETE")  # fails the test if the vhost would be left behind


async def test_vhost_from_vhost_name_or_url(scaler_server, rabbit, tenant_vhost):
    quoted = quote(tenant_vhost, safe="")
    amqp_in_tenant = f"amqp://guest:guest@127.0.0.1:5672/{quoted}"
    http_in_tenant = f"{RABBIT_HTTP_URL}/{quoted}"  # KEDA's convention: the vhost as the URL path
    cases = [
        # (case, host, extra metadata, messages expected)
        ("amqp vhostName", RABBIT_AMQP_URL, {"vhostName": tenant_vhost}, IN_TENANT_VHOST),
        ("http vhostName", RABBIT_HTTP_URL, {"vhostName": tenant_vhost}, IN_TENANT_VHOST),
        ("amqp url vhost", amqp_in_tenant, {}, IN_TENANT_VHOST),
        ("http url vhost", http_in_tenant, {}, IN_TENANT_VHOST),
        # vhostName wins over the URL's vhost, both ways round.
        ("amqp override to default", amqp_in_tenant, {"vhostName": "/"}, IN_DEFAULT_VHOST),
        ("http override to default", http_in_tenant, {"vhostName": "/"}, IN_DEFAULT_VHOST),
        ("amqp override to tenant", RABBIT_AMQP_URL, {"vhostName": tenant_vhost}, IN_TENANT_VHOST),
        ("http override to tenant", f"{RABBIT_HTTP_URL}/%2F", {"vhostName": tenant_vhost}, IN_TENANT_VHOST),
        # the FromEnv form KEDA sends resolved
        ("amqp vhostNameFromEnv", RABBIT_AMQP_URL, {"vhostNameFromEnv": tenant_vhost}, IN_TENANT_VHOST),
    ]
    for case, host, extra, expected in cases:
        meta = {"source": "rabbitmq", "host": host, "queueName": rabbit.name, "queueLength": "1", **extra}

        value = await scaler_server.metric(meta)

        assert value.metricValueFloat == pytest.approx(expected), case


@pytest.mark.parametrize("protocol", ["amqp", "http"])
async def test_missing_vhost_is_unavailable_naming_it(scaler_server, rabbit, protocol):
    vhost = f"prewarm-it-missing-{uuid.uuid4().hex[:8]}"
    meta = rabbit.metadata(protocol, vhostName=vhost)

    for call in (scaler_server.metric(meta), scaler_server.active(meta)):
        details = await _unavailable(call)

        assert "does not exist" in details, details
        assert repr(vhost) in details and repr(rabbit.name) in details, details
        assert "guest:guest@" not in details  # the URL is shown without its credentials


@pytest.mark.parametrize("protocol", ["amqp", "http"])
async def test_missing_queue_is_unavailable(scaler_server, rabbit, protocol):
    missing = f"prewarm-it-missing-{uuid.uuid4().hex[:8]}"
    meta = rabbit.metadata(protocol, queueName=missing)

    for call in (scaler_server.metric(meta), scaler_server.active(meta)):
        details = await _unavailable(call)

        assert "does not exist" in details and repr(missing) in details, details


async def test_queues_on_one_broker_share_one_amqp_connection(scaler_server, rabbit):
    # Two queues on the same broker and vhost: one connection, not two. A missing
    # queue (the broker closes the channel) must not cost the others their connection.
    other = f"{rabbit.name}-b"
    rabbit.channel().queue_declare(queue=other, durable=False, auto_delete=True)
    try:
        rabbit.publish(3)
        engine = scaler_server.server.engine
        connections = engine.sources.amqp_connections
        metas = [
            rabbit.metadata("amqp", queueLength="1"),
            rabbit.metadata("amqp", queueName=other, queueLength="1"),
        ]
        assert (await scaler_server.metric(metas[0])).metricValueFloat == 3
        assert (await scaler_server.metric(metas[1])).metricValueFloat == 0
        assert len(connections) == 1
        rabbit_cfg = engine.config(ObjectRef("default", "worker"), metas[0]).rabbitmq
        probe = object()
        shared = connections.acquire(rabbit_cfg, probe, 1.0)
        connection = shared._connection
        assert connection is not None and connection.is_open

        missing = rabbit.metadata("amqp", queueName=f"{rabbit.name}-missing")
        details = await _unavailable(scaler_server.metric(missing))
        assert "does not exist" in details, details

        rabbit.publish(2)
        await asyncio.sleep(scaler_server.server.settings.cache_ttl + 0.05)
        assert (await scaler_server.metric(metas[0])).metricValueFloat == 5
        assert shared._connection is connection and connection.is_open  # kept, not rebuilt
        assert len(connections) == 1
        connections.release(rabbit_cfg, probe)
    finally:
        rabbit.channel().queue_delete(queue=other)


LOOPBACK, RABBIT_HTTP_PORT = "127.0.0.1", 15672  # the broker .ci/services.sh starts (guest/guest)


@pytest.fixture
def management_under_prefix() -> Iterator[str]:
    """The real management API served under /rabbitmq/ (as behind an ingress), by a
    loopback proxy that forwards only paths under that prefix."""
    prefix = "/rabbitmq"

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith(prefix + "/"):
                self.send_error(404, "outside the prefix")
                return
            upstream = requests.get(
                f"http://{LOOPBACK}:{RABBIT_HTTP_PORT}{self.path[len(prefix) :]}",
                headers={"Authorization": self.headers.get("Authorization", "")},
                timeout=5,
            )
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://guest:guest@{LOOPBACK}:{server.server_port}{prefix}"
    finally:
        server.shutdown()
        server.server_close()


async def test_management_api_behind_a_path_prefix(scaler_server, rabbit, management_under_prefix):
    # KEDA's convention: the URL's last path segment is the vhost, the rest the API's prefix.
    rabbit.publish(4)
    await rabbit.wait_management(ready=4, unacknowledged=0)
    for host in (f"{management_under_prefix}/", f"{management_under_prefix}/%2F"):
        meta = {"source": "rabbitmq", "host": host, "queueName": rabbit.name, "queueLength": "1"}
        value = await scaler_server.metric(meta)
        assert value.metricValueFloat == 4, host
