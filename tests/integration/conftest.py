"""Fixtures for integration tests: real servers on loopback only.

- `scaler_server` / `start_scaler`: the project's gRPC server (scaler, health,
  reflection, /metrics) in-process on free ports, with a grpc.aio channel and stubs.
- `moto_sqs` (session) and `sqs_queue`: moto's SQS server mode on a free port and a
  fresh queue per test.
- `rabbit`: the RabbitMQ broker at 127.0.0.1:5672 (AMQP) / 15672 (management), a
  fresh queue per test, deleted afterwards. The broker is started outside the tests
  (`make services`, which `.ci/run` calls); the fixture fails clearly when it is down.
- `silent_server`: a loopback TCP server that accepts and never answers (a hung
  source), with metadata pointing a RabbitMQ management-API trigger at it.

Fixture objects carry small helpers (publish, counts, metadata builders) so test
files stay about behaviour. Everything waits with bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import grpc
import pika
import pika.exceptions
import pytest
import requests
from grpc_health.v1 import health_pb2_grpc
from moto.server import ThreadedMotoServer
from prometheus_client.parser import text_string_to_metric_families

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import ScalerServer, Settings

LOOPBACK = "127.0.0.1"

# The shared fixture modules: some test modules import them directly and others load
# them as plugins, so their asserts are rewritten whichever comes first (without this,
# pytest warns that it cannot rewrite an already imported module).
pytest.register_assert_rewrite("prometheus_fixture", "faults")

# Short TTLs and intervals keep the suite fast; the values are production-shaped otherwise.
# The source timeout is roomy: it bounds every first read (a pika handshake, a boto3
# client), which a loaded 2-core machine can stall past a second. The tests of timeouts
# set their own, with bounds to match.
FAST_SETTINGS = Settings(
    host=LOOPBACK,
    port=0,
    metrics_port=0,
    cache_ttl=0.2,
    source_timeout=3.0,
    stream_interval=0.2,
    grace_period=2,
)

# Deadline of the helpers' rpcs: far above any source timeout a test sets, so it only
# turns a hung server into a clear DEADLINE_EXCEEDED instead of a hung test.
CALL_TIMEOUT = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real servers.
    for item in items:
        if "tests/integration/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


def find_free_port() -> int:
    """A TCP port free on loopback right now (for servers that need a port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    return find_free_port


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class SilentServer:
    """A TCP server on loopback that accepts connections, reads what is sent, and
    never answers: a source that hangs (an overloaded or wedged host) rather than
    one that refuses connections."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up and closes
        writer.close()

    def rabbit_http_metadata(self, queue: str = "slow-queue") -> dict[str, str]:
        """Trigger metadata pointing a RabbitMQ management-API read at this server."""
        return {
            "source": "rabbitmq",
            "host": f"http://guest:guest@{LOOPBACK}:{self.port}",
            "queueName": queue,
        }

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent_server() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    await server.start()
    yield server
    await server.close()


async def eventually(
    probe: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
) -> Any:
    """Poll `probe` (sync or async) until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    """`await wait_until(probe, timeout=5, what="...")`: bounded polling."""
    return eventually


# --- the scaler -------------------------------------------------------------


def object_ref(
    metadata: dict[str, str], name: str = "worker", namespace: str = "default"
) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=metadata)


@dataclass
class ScalerHandle:
    """A running in-process scaler and a client connected to it."""

    server: ScalerServer
    channel: grpc.aio.Channel
    stub: pb_grpc.ExternalScalerStub
    health: health_pb2_grpc.HealthStub

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.server.port}"

    def ref(
        self, metadata: dict[str, str], name: str = "worker", namespace: str = "default"
    ) -> pb.ScaledObjectRef:
        return object_ref(metadata, name, namespace)

    async def metric(self, metadata: dict[str, str], name: str = "worker") -> pb.MetricValue:
        """GetMetricSpec then GetMetrics, as KEDA does (with its `s0-` prefix)."""
        ref = self.ref(metadata, name)
        spec = await self.stub.GetMetricSpec(ref, timeout=CALL_TIMEOUT)
        assert len(spec.metricSpecs) == 1
        assert spec.metricSpecs[0].targetSizeFloat == 1.0
        request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName="s0-" + spec.metricSpecs[0].metricName)
        response = await self.stub.GetMetrics(request, timeout=CALL_TIMEOUT)
        assert len(response.metricValues) == 1
        return response.metricValues[0]

    async def active(self, metadata: dict[str, str], name: str = "worker") -> bool:
        return bool((await self.stub.IsActive(self.ref(metadata, name), timeout=CALL_TIMEOUT)).result)

    async def scrape(self) -> str:
        """The /metrics page, as Prometheus would fetch it."""
        url = f"http://{LOOPBACK}:{self.server.metrics_port}/metrics"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        return await asyncio.to_thread(fetch)

    async def samples(self, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Samples of one metric from /metrics, keyed by their sorted labels."""
        found: dict[tuple[tuple[str, str], ...], float] = {}
        for family in text_string_to_metric_families(await self.scrape()):
            for sample in family.samples:
                if sample.name == metric:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found


@pytest.fixture
async def start_scaler() -> AsyncIterator[Callable[..., Awaitable[ScalerHandle]]]:
    """`await start_scaler(**settings_overrides)`: a scaler on free loopback ports."""
    started: list[ScalerHandle] = []

    async def start(**overrides: Any) -> ScalerHandle:
        server = ScalerServer(dataclasses.replace(FAST_SETTINGS, **overrides))
        await server.start()
        channel = grpc.aio.insecure_channel(f"{LOOPBACK}:{server.port}")
        handle = ScalerHandle(
            server=server,
            channel=channel,
            stub=pb_grpc.ExternalScalerStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
        )
        started.append(handle)
        return handle

    yield start
    for handle in reversed(started):
        await handle.channel.close()
        await handle.server.stop()


@pytest.fixture
async def scaler_server(start_scaler: Callable[..., Awaitable[ScalerHandle]]) -> ScalerHandle:
    return await start_scaler()


# --- SQS (moto server mode) -------------------------------------------------

AWS_REGION = "us-east-1"
AWS_ACCESS_KEY_ID = "AKIDTESTPREWARM"
AWS_SECRET_ACCESS_KEY = "test-secret-not-a-real-key"


@dataclass
class MotoSqs:
    server: ThreadedMotoServer
    endpoint: str
    client: Any  # boto3 SQS client, for the tests' own sends and receives

    def stop(self) -> None:
        self.server.stop()


def start_moto() -> MotoSqs:
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=AWS_REGION,
        aws_access_key_id=AWS_ACCESS_KEY_ID,
        aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
    )
    return MotoSqs(server=server, endpoint=endpoint, client=client)


@pytest.fixture(scope="session")
def moto_sqs() -> Iterator[MotoSqs]:
    """One moto server for the session; each test makes its own queues."""
    moto = start_moto()
    yield moto
    moto.stop()


@pytest.fixture
def moto_sqs_dedicated() -> Iterator[MotoSqs]:
    """A moto server of this test's own, so the test may stop it."""
    moto = start_moto()
    yield moto
    with contextlib.suppress(Exception):  # best effort teardown
        moto.stop()


@dataclass
class SqsQueue:
    moto: MotoSqs
    name: str
    url: str

    @property
    def client(self) -> Any:
        return self.moto.client

    def metadata(self, **extra: str) -> dict[str, str]:
        meta = {
            "source": "sqs",
            "queueURL": self.url,
            "awsRegion": AWS_REGION,
            "awsEndpoint": self.moto.endpoint,
            "awsAccessKeyID": AWS_ACCESS_KEY_ID,
            "awsSecretAccessKey": AWS_SECRET_ACCESS_KEY,
        }
        meta.update(extra)
        return meta

    def send(self, count: int, delay_seconds: int = 0) -> None:
        for i in range(count):
            self.client.send_message(QueueUrl=self.url, MessageBody=f"job {i}", DelaySeconds=delay_seconds)

    def receive(self, count: int, visibility_timeout: int = 300) -> list[dict[str, Any]]:
        """Take `count` messages in flight (the test acts as a worker)."""
        taken: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(taken) < count:
            assert time.monotonic() < deadline, f"could only receive {len(taken)} of {count} messages"
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(10, count - len(taken)),
                VisibilityTimeout=visibility_timeout,
                AttributeNames=["ApproximateReceiveCount"],
            )
            taken.extend(response.get("Messages", []))
        return taken

    def counts(self) -> dict[str, int]:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"]),
        }


def make_sqs_queue(moto: MotoSqs) -> SqsQueue:
    name = f"prewarm-it-{uuid.uuid4().hex[:12]}"
    url = moto.client.create_queue(QueueName=name)["QueueUrl"]
    return SqsQueue(moto=moto, name=name, url=url)


@pytest.fixture
def sqs_queue(moto_sqs: MotoSqs) -> Iterator[SqsQueue]:
    queue = make_sqs_queue(moto_sqs)
    yield queue
    with contextlib.suppress(Exception):  # best effort teardown
        moto_sqs.client.delete_queue(QueueUrl=queue.url)


# --- RabbitMQ ---------------------------------------------------------------

RABBIT_AMQP_PORT = 5672
RABBIT_HTTP_PORT = 15672
RABBIT_USER = "guest"
RABBIT_PASSWORD = "guest"
RABBIT_AMQP_URL = f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{LOOPBACK}:{RABBIT_AMQP_PORT}/%2F"
RABBIT_HTTP_URL = f"http://{RABBIT_USER}:{RABBIT_PASSWORD}@{LOOPBACK}:{RABBIT_HTTP_PORT}"
RABBIT_API = f"http://{LOOPBACK}:{RABBIT_HTTP_PORT}/api"


def rabbit_answers() -> bool:
    """Both the AMQP listener and the management API answer."""
    if not port_open(RABBIT_AMQP_PORT):
        return False
    try:
        response = requests.get(f"{RABBIT_API}/overview", auth=(RABBIT_USER, RABBIT_PASSWORD), timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200


class RabbitBroker:
    """The local broker as a whole (for tests that stop and start it)."""

    answers = staticmethod(rabbit_answers)

    @staticmethod
    def ctl(*args: str, timeout: float = 60) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=timeout, capture_output=True)


@pytest.fixture(scope="session")
def rabbit_broker() -> RabbitBroker:
    if not rabbit_answers():
        pytest.fail(
            f"RabbitMQ is not answering on {LOOPBACK}:{RABBIT_AMQP_PORT} (AMQP) and "
            f"{LOOPBACK}:{RABBIT_HTTP_PORT} (management API, guest/guest). Start it with "
            "`make services` (bash .ci/services.sh), as .ci/run does.",
            pytrace=False,
        )
    return RabbitBroker()


def rabbit_connection(url: str = RABBIT_AMQP_URL) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    return pika.BlockingConnection(params)


@dataclass
class RabbitQueue:
    """A uniquely named classic queue on the local broker, and test-side helpers."""

    name: str
    _connection: pika.BlockingConnection | None = None
    _holders: list[pika.BlockingConnection] = field(default_factory=list)

    def metadata(self, via: str = "amqp", /, **extra: str) -> dict[str, str]:
        """Trigger metadata reading this queue `via` AMQP or the management HTTP API."""
        host = RABBIT_AMQP_URL if via == "amqp" else RABBIT_HTTP_URL
        meta = {"source": "rabbitmq", "host": host, "queueName": self.name}
        meta.update(extra)
        return meta

    def channel(self) -> Any:
        if self._connection is not None and self._connection.is_open:
            try:
                return self._connection.channel()
            except pika.exceptions.AMQPError:
                pass  # the broker restarted under this connection: open a new one
        self._connection = rabbit_connection()
        return self._connection.channel()

    def declare(self) -> None:
        self.channel().queue_declare(queue=self.name, durable=False, auto_delete=False)

    def publish(self, count: int) -> None:
        channel = self.channel()
        for i in range(count):
            channel.basic_publish(exchange="", routing_key=self.name, body=f"job {i}".encode())
        channel.close()

    def counts(self) -> tuple[int, int]:
        """(ready, consumers) from a passive declare: exact and immediate."""
        channel = self.channel()
        frame = channel.queue_declare(queue=self.name, passive=True)
        channel.close()
        return frame.method.message_count, frame.method.consumer_count

    def take_one(self) -> bool:
        """Consume and acknowledge one message (the test acts as a worker)."""
        channel = self.channel()
        method, _props, _body = channel.basic_get(queue=self.name, auto_ack=True)
        channel.close()
        return method is not None

    def hold_unacknowledged(self, count: int) -> pika.BlockingConnection:
        """A consumer that takes `count` messages and never acknowledges them (until
        its connection closes at teardown, which requeues them)."""
        ready_before = self.counts()[0]
        connection = rabbit_connection()
        self._holders.append(connection)
        channel = connection.channel()
        channel.basic_qos(prefetch_count=count)
        channel.basic_consume(queue=self.name, on_message_callback=lambda *_: None, auto_ack=False)
        deadline = time.monotonic() + 10
        while self.counts()[0] != ready_before - count:  # deliveries are asynchronous
            assert time.monotonic() < deadline, f"the consumer did not take {count} messages"
            connection.process_data_events(time_limit=0.05)
        return connection

    def management(self) -> dict[str, Any]:
        response = requests.get(
            f"{RABBIT_API}/queues/%2F/{self.name}", auth=(RABBIT_USER, RABBIT_PASSWORD), timeout=5
        )
        response.raise_for_status()
        return dict(response.json())

    async def wait_management(self, *, ready: int, unacknowledged: int, timeout: float = 20.0) -> None:
        """The management API's counts lag the broker by its stats interval
        (5 s by default): wait, bounded, until they show what the broker holds."""

        def matches() -> bool:
            body = self.management()
            return (
                body.get("messages_ready") == ready and body.get("messages_unacknowledged") == unacknowledged
            )

        await eventually(
            lambda: asyncio.to_thread(matches),
            timeout=timeout,
            interval=0.25,
            what=f"management API to show {ready} ready, {unacknowledged} unacknowledged in {self.name}",
        )

    def cleanup(self) -> None:
        for holder in self._holders:
            with contextlib.suppress(Exception):  # best effort teardown
                holder.close()
        self._holders.clear()
        with contextlib.suppress(Exception):  # best effort teardown
            self.channel().queue_delete(queue=self.name)
        if self._connection is not None:
            with contextlib.suppress(Exception):  # best effort teardown
                self._connection.close()


@pytest.fixture
def rabbit(rabbit_broker: RabbitBroker) -> Iterator[RabbitQueue]:
    queue = RabbitQueue(name=f"prewarm-it-{uuid.uuid4().hex[:12]}")
    queue.declare()
    yield queue
    queue.cleanup()
