"""Sources that die, come back, or hang, against the real server and real sources:
RabbitMQ stopped mid-stream (a proxy in front of the shared broker is cut: its
connections closed, new ones refused) and restored; moto's SQS server killed
(SIGKILL) and restarted on its port; Prometheus killed and restarted on its port
and data; a source that accepts connections and never answers.

In each: while down, GetMetrics and IsActive are UNAVAILABLE naming the source
within the source timeout, the open StreamIsActive sends nothing (never a false
"inactive"); a healthy object's answer is not held up meanwhile; after the
restart the answers are right again within two refreshes and the stream pushes
the change; the server keeps serving; and the scaler holds no more threads, file
descriptors or connections to the source than before the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import grpc
import pytest
import requests
from conftest import RabbitQueue
from grpc_health.v1 import health_pb2
from prometheus_fixture import PrometheusServer, gpu_exporter, start_prometheus  # noqa: F401  (fixture)

pytest_plugins = ["faults"]
pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
TTL = 0.2  # FAST_SETTINGS.cache_ttl
# Set by each test: the healthy object's answer is bounded by it (it must not wait for
# the failing read), so it leaves room for a loaded machine's scheduling.
SOURCE_TIMEOUT = 2.0
SLACK = 1.5  # scheduling on a busy 2-core machine
CYCLES = 1  # outage/recovery cycles per test (a leak shows in one)


# --- what the process holds ----------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    threads: int  # other than the two pools below
    read_threads: int  # the scaler's source-read pool (grows on demand up to --read-threads)
    fds: int
    connections: int  # this process's established TCP connections to the source's port
    names: tuple[str, ...] = field(default=(), compare=False)  # the threads, for failure messages


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def connections_to(port: int) -> int:
    mine = _own_socket_inodes()
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in mine:  # 01: ESTABLISHED
                    count += 1
    return count


# Threads of the test's own fault helpers (the proxy's), not the scaler's, and the
# event loop's default executor, which the test's own asyncio.to_thread calls grow.
HELPER_THREADS = ("proxy-accept", "(_pump)", "(_swallow)", "asyncio_")
READ_POOL = "source-read_"
# Sources each test reads: the faulty one and the healthy control.
SOURCES = 2


def footprint(port: int, helper_fds: Callable[[], set[int]] = set) -> Footprint:
    """Threads, fds and connections of the scaler (and the test's clients, which
    are the same before and after), without the fault helpers' own."""
    gc.collect()  # a dropped client's sockets close when it is collected
    # The fake dcgm-exporter answers each Prometheus scrape in a short-lived thread
    # (with its socket): let one in progress finish rather than count it.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(
        "(process_request_thread)" in t.name for t in threading.enumerate()
    ):
        time.sleep(0.01)
    names = [t.name for t in threading.enumerate() if not any(h in t.name for h in HELPER_THREADS)]
    readers = [name for name in names if name.startswith(READ_POOL)]
    fds = {int(fd) for fd in os.listdir("/proc/self/fd")} - helper_fds()
    return Footprint(len(names) - len(readers), len(readers), len(fds), connections_to(port), tuple(names))


def _grew(before: Footprint, after: Footprint) -> bool:
    return (
        after.threads > before.threads
        or after.fds > before.fds
        or after.connections > before.connections
        or after.read_threads > SOURCES
    )


def settled_footprint(before: Footprint, port: int, helper_fds: Callable[[], set[int]]) -> Footprint:
    """The footprint once transient work has ended: a socket or thread that a
    recovery read or a closing client holds for a moment (seen on a busy machine)
    is gone within a few seconds, a leak stays; so measure until nothing grew,
    for at most 5 s, and return the last measurement."""
    deadline = time.monotonic() + 5.0
    after = footprint(port, helper_fds)
    while _grew(before, after) and time.monotonic() < deadline:
        time.sleep(0.1)
        after = footprint(port, helper_fds)
    return after


def assert_no_growth(before: Footprint, after: Footprint) -> None:
    new_threads = sorted(set(after.names) - set(before.names))
    assert after.threads <= before.threads, (before, after, new_threads)
    assert after.fds <= before.fds, (before, after)
    assert after.connections <= before.connections, (before, after)
    # The read pool keeps its threads; a source that fails or hangs holds at most one.
    assert after.read_threads <= SOURCES, (before, after)


# --- the checks each fault shares ------------------------------------------------


class StreamWatch:
    """Reads a StreamIsActive stream in the background, keeping every message."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.seen: list[bool] = []
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.stream:
            self.seen.append(message.result)

    async def next_after(self, count: int, timeout: float) -> bool | None:
        deadline = time.monotonic() + timeout
        while len(self.seen) <= count and time.monotonic() < deadline and not self._task.done():
            await asyncio.sleep(0.02)
        return self.seen[count] if len(self.seen) > count else None

    def close(self) -> None:
        self.stream.cancel()


@dataclass
class Fault:
    """One source and how to break and repair it."""

    name: str  # what the error must name
    metadata: dict[str, str]
    port: int  # the port the scaler connects to (for counting connections)
    down: Callable[[], Awaitable[None]]
    up: Callable[[], Awaitable[None]]  # returns once the source answers the test itself
    set_backlog: Callable[[int], Awaitable[None]]  # messages waiting (or busy GPUs) after `up`
    helper_fds: Callable[[], set[int]] = set  # fds the fault helper itself holds (a proxy's)


async def _timed(call: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        return await call, time.monotonic() - started
    except grpc.aio.AioRpcError as exc:
        return exc, time.monotonic() - started


async def _while_down(scaler: Any, fault: Fault, control: dict[str, str], control_value: float) -> None:
    await asyncio.sleep(TTL + 0.05)  # past the cache TTL: answers need a fresh read
    (metric, metric_s), (active, active_s), (healthy, healthy_s) = await asyncio.gather(
        _timed(scaler.metric(fault.metadata)),
        _timed(scaler.stub.IsActive(scaler.ref(fault.metadata))),
        _timed(scaler.metric(control, name="healthy")),
    )
    for answer, seconds in ((metric, metric_s), (active, active_s)):
        assert isinstance(answer, grpc.aio.AioRpcError), f"answered {answer!r} while the source was down"
        assert answer.code() == grpc.StatusCode.UNAVAILABLE, answer.details()
        assert fault.name in (answer.details() or ""), answer.details()
        assert seconds < SOURCE_TIMEOUT + SLACK, f"UNAVAILABLE after {seconds:.2f}s"
    # The healthy object did not wait for the failing one.
    assert not isinstance(healthy, BaseException), healthy
    assert healthy.metricValueFloat == control_value
    assert healthy_s < SOURCE_TIMEOUT, f"the healthy object took {healthy_s:.2f}s"


async def _within_two_refreshes(scaler: Any, metadata: dict[str, str], value: float) -> None:
    last: Any = None
    for _ in range(2):
        await asyncio.sleep(TTL + 0.05)
        try:
            last = (await scaler.metric(metadata)).metricValueFloat
        except grpc.aio.AioRpcError as exc:
            last = exc
            continue
        if last == value:
            return
    pytest.fail(f"not right within two refreshes after the restart: {last!r}, expected {value}")


async def exercise(scaler: Any, fault: Fault, control: dict[str, str], control_value: float) -> None:
    """CYCLES times: break the source with the stream open (idle), check the
    outage, repair it with a backlog, check the answer and the stream's push,
    empty it again. No growth from before the first cycle to after the last."""
    await fault.set_backlog(0)
    assert (await scaler.metric(fault.metadata)).metricValueFloat == 0
    assert (await scaler.metric(control, name="healthy")).metricValueFloat == control_value
    watch = StreamWatch(scaler.stub.StreamIsActive(scaler.ref(fault.metadata)))
    try:
        assert await watch.next_after(0, 5) is False
        before = footprint(fault.port, fault.helper_fds)
        for _ in range(CYCLES):
            pushed = len(watch.seen)
            await fault.down()
            await _while_down(scaler, fault, control, control_value)
            await asyncio.sleep(0.5)  # a few stream intervals with the source down
            assert len(watch.seen) == pushed, (
                f"the stream sent {watch.seen[pushed:]} while the source was down"
            )
            await fault.up()
            await fault.set_backlog(2)
            await _within_two_refreshes(scaler, fault.metadata, 2)
            assert await watch.next_after(pushed, 5) is True
            await fault.set_backlog(0)
            await _within_two_refreshes(scaler, fault.metadata, 0)
            assert await watch.next_after(pushed + 1, 5) is False
            assert len(watch.seen) == pushed + 2, watch.seen
        assert_no_growth(before, settled_footprint(before, fault.port, fault.helper_fds))
    finally:
        watch.close()
    health = await scaler.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


# --- RabbitMQ: the broker stops and starts again ------------------------------------


def _rabbit_backlog(rabbit: Any) -> Callable[[int], Awaitable[None]]:
    async def set_backlog(count: int) -> None:
        def refill() -> None:
            rabbit.channel().queue_purge(queue=rabbit.name)
            rabbit.publish(count)

        await asyncio.to_thread(refill)

    return set_backlog


async def _exercise_broker_fault(scaler, rabbit, amqp_proxy, suffix: str, down, up) -> None:
    """A queue read through the proxy goes down and comes back while a healthy
    control queue (read directly) keeps answering."""
    rabbit.publish(3)  # the healthy control, read directly
    queue = RabbitQueue(name=rabbit.name + suffix)
    queue.declare()
    try:
        fault = Fault(
            name=queue.name,
            metadata={
                "source": "rabbitmq",
                "host": amqp_proxy.url("amqp"),
                "queueName": queue.name,
                "queueLength": "1",
            },
            port=amqp_proxy.port,
            down=lambda: asyncio.to_thread(down),
            up=lambda: asyncio.to_thread(up),
            set_backlog=_rabbit_backlog(queue),
            helper_fds=amqp_proxy.fds,
        )
        await exercise(scaler, fault, rabbit.metadata("amqp", queueLength="1"), 3)
    finally:
        queue.cleanup()


async def test_broker_stopped_mid_stream_and_restarted(start_scaler, rabbit, amqp_proxy):
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    await _exercise_broker_fault(scaler, rabbit, amqp_proxy, "-faulty", amqp_proxy.cut, amqp_proxy.restore)


async def test_broker_that_hangs_mid_stream(start_scaler, rabbit, amqp_proxy):
    """Established connections freeze (a peer gone without a FIN), then recover."""
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    await _exercise_broker_fault(scaler, rabbit, amqp_proxy, "-frozen", amqp_proxy.freeze, amqp_proxy.thaw)


# --- SQS: moto's server killed, restarted, or hung -----------------------------------


class MotoProcess:
    """moto's server mode as a process of its own, so it can be killed (SIGKILL),
    frozen (SIGSTOP) and started again on the same port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            self.port = int(probe.getsockname()[1])
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """The test's own client, closed after use: its connections are not the scaler's."""
        client = boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="test-secret",
        )
        try:
            yield client
        finally:
            client.close()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.endpoint}/moto-api/", timeout=1).ok:
                    return
            time.sleep(0.05)
        pytest.fail("moto's server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def queue_url(self, name: str) -> str:
        with self.client() as client:
            return str(client.create_queue(QueueName=name)["QueueUrl"])  # idempotent

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()


@pytest.fixture
def moto_process() -> Iterator[MotoProcess]:
    moto = MotoProcess()
    moto.start()
    yield moto
    moto.stop()


def _sqs_fault(moto: MotoProcess, down: Callable[[], None], up: Callable[[], None]) -> Fault:
    name = "prewarm-fault-queue"

    async def set_backlog(count: int) -> None:
        def refill() -> None:
            url = moto.queue_url(name)  # a restarted moto has lost its queues
            with moto.client() as client:
                while True:  # drained as a worker would (PurgeQueue is once a minute)
                    taken = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                    if not taken:
                        break
                    for message in taken:
                        client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                for i in range(count):
                    client.send_message(QueueUrl=url, MessageBody=f"job {i}")

        await asyncio.to_thread(refill)

    return Fault(
        name=name,
        metadata={
            "source": "sqs",
            "queueURL": moto.queue_url(name),
            "awsRegion": "us-east-1",
            "awsEndpoint": moto.endpoint,
            "awsAccessKeyID": "AKIDTEST",
            "awsSecretAccessKey": "test-secret",
            "queueLength": "1",
        },
        port=moto.port,
        down=lambda: asyncio.to_thread(down),
        up=lambda: asyncio.to_thread(up),
        set_backlog=set_backlog,
    )


async def test_sqs_server_killed_and_restarted(start_scaler, rabbit, moto_process):
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    rabbit.publish(3)
    fault = _sqs_fault(moto_process, down=moto_process.kill, up=moto_process.start)
    await exercise(scaler, fault, rabbit.metadata("amqp", queueLength="1"), 3)


async def test_sqs_server_that_hangs(start_scaler, rabbit, moto_process):
    """Frozen with SIGSTOP: the kernel still accepts its connections; nothing answers."""
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    rabbit.publish(3)
    fault = _sqs_fault(
        moto_process,
        down=lambda: moto_process.signal(signal.SIGSTOP),
        up=lambda: moto_process.signal(signal.SIGCONT),
    )
    await exercise(scaler, fault, rabbit.metadata("amqp", queueLength="1"), 3)


# --- Prometheus: killed and restarted, or hung --------------------------------------


@pytest.fixture(scope="module")
def killable_prometheus(gpu_exporter: Any) -> Iterator[PrometheusServer]:  # noqa: F811
    """A Prometheus of this module's own (it is killed and frozen), shared by its
    tests: a start costs the 5 s Prometheus waits before its first scrape."""
    server = start_prometheus(gpu_exporter)
    yield server
    server.stop()
    gpu_exporter.set()


def _prometheus_fault(
    prometheus: PrometheusServer, exporter: Any, down: Callable[[], None], up: Callable[[], None]
) -> Fault:
    async def set_busy(count: int) -> None:
        def busy() -> None:
            exporter.set({f"sd-worker-{i}": 100.0 for i in range(count)})
            prometheus.wait_scraped(exporter)

        await asyncio.to_thread(busy)

    return Fault(
        name=f"prometheus at {prometheus.url}",
        metadata={
            "prometheusServerAddress": prometheus.url,
            "gpuSelector": 'namespace="ai",pod=~"sd-worker-.*"',
            "gpuTargetUtilization": "100",
        },
        port=prometheus.port,
        down=lambda: asyncio.to_thread(down),
        up=lambda: asyncio.to_thread(up),
        set_backlog=set_busy,
    )


async def test_prometheus_killed_and_restarted(start_scaler, rabbit, gpu_exporter, killable_prometheus):  # noqa: F811
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    rabbit.publish(3)
    fault = _prometheus_fault(
        killable_prometheus, gpu_exporter, down=killable_prometheus.kill, up=killable_prometheus.restart
    )
    await exercise(scaler, fault, rabbit.metadata("amqp", queueLength="1"), 3)


async def test_prometheus_that_hangs(start_scaler, rabbit, gpu_exporter, killable_prometheus):  # noqa: F811
    scaler = await start_scaler(source_timeout=SOURCE_TIMEOUT)
    rabbit.publish(3)
    fault = _prometheus_fault(
        killable_prometheus, gpu_exporter, down=killable_prometheus.pause, up=killable_prometheus.resume
    )
    await exercise(scaler, fault, rabbit.metadata("amqp", queueLength="1"), 3)
