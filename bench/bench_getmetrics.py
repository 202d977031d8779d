#!/usr/bin/env python3
"""Benchmark: GetMetrics + IsActive pairs for N ScaledObjects on one queue.

Starts the real scaler (`python -m scaler serve`, a separate process so the load
generator does not share its interpreter) on loopback ports, against a real queue:
a temporary RabbitMQ queue (read over AMQP, 127.0.0.1:5672 by default, or through
the management API, 127.0.0.1:15672) or a queue on a moto SQS server started here.
It then drives, for a bounded time, the calls KEDA makes on each polling cycle
(GetMetrics, then IsActive, on the same connection) for N ScaledObjects with
distinct names and the same queue metadata, with at most
`--concurrency` pairs in flight (one poll loop per object, as KEDA does, so N=1
has one caller). It prints calls/s, p50/p99 client-side latency per rpc, and
source reads per second from the server's /metrics (`prewarm_source_reads_total`):
the shared cache must keep those at about one per queue per min(TTL,
--polled-reading-age) under this closed-loop load, whatever N is (KEDA's polled
calls answer from a reading at most the polled reading age old).

    python bench/bench_getmetrics.py --objects 1,100,1000 --duration 10
    python bench/bench_getmetrics.py --objects 100 --source sqs
    python bench/bench_getmetrics.py --objects 100 --source rabbitmq-http
    python bench/bench_getmetrics.py --objects 100 --replica-throughput 2

`--replica-throughput X` adds `replicaThroughput: X` to the metadata, as the
recommended configurations do (manifests/examples): the capacity-aware queue term
and its per-queue memory. Neither AMQP nor SQS reports a publish rate, so the
term has no arrival rate and the answer stays waiting / queueLength (checked as
without it); what it measures is the cost of that path.

Everything runs on 127.0.0.1 and stops by itself; the queue is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.signals.cache import POLLED_READING_AGE

MESSAGES = 42  # put on the queue; never consumed by the scaler
QUEUE_LENGTH = 5.0  # so every GetMetrics must answer 42 / 5 = 8.4
EXPECTED_DESIRED = MESSAGES / QUEUE_LENGTH
CALL_TIMEOUT_S = 10.0  # per rpc, so a stuck server cannot hang the bench
SERVER_START_TIMEOUT_S = 30.0
NAMESPACE = "bench"


# --- the queue ----------------------------------------------------------------


@dataclass
class Queue:
    """A queue holding MESSAGES messages, the trigger metadata that points at it,
    and a way to count its messages (to show the scaler consumed none)."""

    metadata: dict[str, str]
    count: Callable[[], int]
    description: str


@contextlib.contextmanager
def amqp_channel(url: str) -> Iterator[Any]:
    """A short-lived AMQP channel: a connection kept idle through a long run
    would be closed by the broker's heartbeat check."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@contextlib.contextmanager
def rabbitmq_queue(url: str, management_url: str | None = None, *, wait: bool = True) -> Iterator[Queue]:
    """A temporary queue of MESSAGES on the broker at `url` (AMQP), its trigger read
    over AMQP, or with `management_url` (http://user:password@host:port) through
    the management API, once the API reports the messages (unless not `wait`: the
    caller waits for many queues at once, wait_for_management)."""
    name = f"prewarm-bench-{uuid.uuid4().hex[:8]}"

    def count() -> int:
        with amqp_channel(url) as channel:
            return int(channel.queue_declare(queue=name, passive=True).method.message_count)

    with amqp_channel(url) as channel:
        # x-expires: the broker removes the queue if this process dies before deleting it.
        channel.queue_declare(queue=name, durable=False, arguments={"x-expires": 600_000})
        for i in range(MESSAGES):
            channel.basic_publish(exchange="", routing_key=name, body=f"job {i}".encode())
    try:
        deadline = time.monotonic() + 5.0
        while count() < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.05)
        host, via = url, "AMQP"
        if management_url is not None:
            host, via = management_url, "management API"
            if wait:
                wait_for_management(management_url, [name])
        metadata = {"source": "rabbitmq", "host": host, "queueName": name, "queueLength": f"{QUEUE_LENGTH:g}"}
        yield Queue(metadata, count, f"rabbitmq queue {name} ({via})")
    finally:
        with contextlib.suppress(Exception), amqp_channel(url) as channel:
            channel.queue_delete(queue=name)


def wait_for_management(management_url: str, queues: list[str], timeout: float = 30.0) -> None:
    """Until the management API reports MESSAGES in each queue (vhost /): it counts
    from its statistics, emitted every 5 s by default."""
    parts = urllib.parse.urlsplit(management_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    deadline = time.monotonic() + timeout
    for queue in queues:
        request = urllib.request.Request(f"{base}/api/queues/%2F/{urllib.parse.quote(queue, safe='')}")
        request.add_header("Authorization", f"Basic {token}")
        while True:
            with urllib.request.urlopen(request, timeout=5) as response:
                if json.load(response).get("messages") == MESSAGES:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the management API did not report {MESSAGES} messages in {queue} in {timeout:g}s"
                )
            time.sleep(0.5)


@contextlib.contextmanager
def moto_server(own_process: bool) -> Iterator[str]:
    """moto in server mode on a loopback port; its endpoint URL. In a thread of this
    process, or (`own_process`) in a process of its own, where it does not share the
    bench's GIL: for a bench that times reads in this process."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if not own_process:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield endpoint
        finally:
            server.stop()
        return
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {' '.join(command)}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def sqs_queue(endpoint: str | None = None, *, moto_own_process: bool = False) -> Iterator[Queue]:
    """A queue of MESSAGES on the SQS server at `endpoint`, or on a moto server
    started for it (in its own process with `moto_own_process`)."""
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            endpoint = stack.enter_context(moto_server(moto_own_process))
        yield _sqs_queue_at(endpoint)


# The keys every bench's SQS queue is made and read with (moto accepts any).
SQS_KEYS = {"awsAccessKeyID": "bench", "awsSecretAccessKey": "bench"}


def sqs_client(endpoint: str) -> Any:
    """A boto3 SQS client of the SQS server at `endpoint`, with SQS_KEYS."""
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=SQS_KEYS["awsAccessKeyID"],
        aws_secret_access_key=SQS_KEYS["awsSecretAccessKey"],
    )


def sqs_metadata(endpoint: str, url: str) -> dict[str, str]:
    """Trigger metadata reading the queue at `url` on the SQS server at `endpoint`."""
    return {"source": "sqs", "queueURL": url, "awsRegion": "us-east-1", "awsEndpoint": endpoint, **SQS_KEYS}


def _sqs_queue_at(endpoint: str) -> Queue:
    client = sqs_client(endpoint)
    name = f"prewarm-bench-{uuid.uuid4().hex[:8]}"
    url = client.create_queue(QueueName=name)["QueueUrl"]
    for i in range(MESSAGES):
        client.send_message(QueueUrl=url, MessageBody=f"job {i}")

    def count() -> int:
        attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    metadata = {**sqs_metadata(endpoint, url), "queueLength": f"{QUEUE_LENGTH:g}"}
    return Queue(metadata, count, f"sqs queue {name} (moto at {endpoint})")


# --- the server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc). Raises OSError."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    grpc_target: str
    metrics_url: str
    log: IO[bytes]

    def source_reads(self) -> float:
        """Sum of prewarm_source_reads_total over source kinds, from /metrics."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prewarm_source_reads_total{")
        )

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (Linux /proc), or None."""
        try:
            return process_cpu_seconds(self.process.pid)
        except OSError:
            return None

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]


@contextlib.contextmanager
def scaler_server(ttl: float, polled_reading_age: float = POLLED_READING_AGE) -> Iterator[Server]:
    # The gRPC port is the OS's choice (--port 0), read back from the "serving" log
    # line; /metrics needs one picked here (its --metrics-port 0 means "off").
    metrics_port = free_port()
    command = [
        sys.executable, "-m", "scaler", "serve",
        "--host", "127.0.0.1",
        "--port", "0",
        "--metrics-port", str(metrics_port),
        "--cache-ttl", f"{ttl:g}",
        "--polled-reading-age", f"{polled_reading_age:g}",
        "--log-format", "json",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        server = Server(process, "", f"http://127.0.0.1:{metrics_port}/metrics", log)
        try:
            server.grpc_target = f"127.0.0.1:{wait_until_serving(server)}"
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_serving(server: Server) -> int:
    """The gRPC port, once the server logs "serving" (it does so only when its
    health says SERVING)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the scaler exited ({server.process.returncode}):\n{server.log_tail()}")
        server.log.flush()
        server.log.seek(0)
        for line in server.log.read().decode(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):  # a line still being written
                entry = json.loads(line)
                if entry.get("message") == "serving":
                    return int(entry["grpc_port"])
        time.sleep(0.05)
    raise RuntimeError(
        f"the scaler did not log 'serving' in {SERVER_START_TIMEOUT_S:g}s:\n{server.log_tail()}"
    )


# --- the load ------------------------------------------------------------------


@dataclass
class Samples:
    """Client-side observations of one run."""

    get_metrics_ms: list[float] = field(default_factory=list)
    is_active_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)  # status code -> its first message
    wrong_answers: int = 0

    def error(self, exc: grpc.aio.AioRpcError) -> None:
        name = exc.code().name
        self.errors[name] = self.errors.get(name, 0) + 1
        self.first_error.setdefault(name, exc.details() or "")


def object_refs(n: int, metadata: dict[str, str]) -> list[pb.ScaledObjectRef]:
    return [
        pb.ScaledObjectRef(name=f"worker-{i:05d}", namespace=NAMESPACE, scalerMetadata=metadata)
        for i in range(n)
    ]


async def metric_names(target: str, refs: list[pb.ScaledObjectRef], concurrency: int) -> str:
    """GetMetricSpec for every object, as KEDA does when it builds the HPA (this
    also warms the server's parsed-config memo). Returns the metric name."""
    names: set[str] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        for start in range(0, len(refs), concurrency):
            batch = refs[start : start + concurrency]
            replies = await asyncio.gather(*(stub.GetMetricSpec(r, timeout=CALL_TIMEOUT_S) for r in batch))
            names.update(spec.metricName for reply in replies for spec in reply.metricSpecs)
    if len(names) != 1:
        raise RuntimeError(f"expected one metric name for one queue, got {sorted(names)}")
    return names.pop()


async def poll_loop(
    target: str,
    refs: list[pb.ScaledObjectRef],
    metric_name: str,
    deadline: float,
    samples: Samples,
) -> None:
    """One caller: for each of its objects in turn, GetMetrics then IsActive on
    one channel, until the deadline."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        while time.perf_counter() < deadline:
            for ref in refs:
                if time.perf_counter() >= deadline:
                    return
                request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=metric_name)
                started = time.perf_counter()
                try:
                    metrics = await stub.GetMetrics(request, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    samples.error(exc)
                    continue
                samples.get_metrics_ms.append((time.perf_counter() - started) * 1000)
                if not math.isclose(metrics.metricValues[0].metricValueFloat, EXPECTED_DESIRED):
                    samples.wrong_answers += 1
                started = time.perf_counter()
                try:
                    active = await stub.IsActive(ref, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as exc:
                    samples.error(exc)
                    continue
                samples.is_active_ms.append((time.perf_counter() - started) * 1000)
                if not active.result:
                    samples.wrong_answers += 1


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Result:
    objects: int
    concurrency: int
    seconds: float
    calls: int
    calls_per_s: float
    get_metrics_p50_ms: float
    get_metrics_p99_ms: float
    is_active_p50_ms: float
    is_active_p99_ms: float
    source_reads: float
    reads_per_s: float
    ttl_s: float
    polled_reading_age_s: float
    expected_reads_per_s: float
    errors: dict[str, int]
    first_error: dict[str, str]
    wrong_answers: int
    server_cpu_percent: float | None
    bench_cpu_percent: float


async def run_once(
    server: Server, queue: Queue, n: int, concurrency: int, duration: float, ttl: float, polled_age: float
) -> Result:
    refs = object_refs(n, queue.metadata)
    callers = min(concurrency, n)  # one poll loop per object at most, as in KEDA
    metric_name = await metric_names(server.grpc_target, refs, concurrency)
    samples = Samples()
    reads_before, cpu_before = server.source_reads(), server.cpu_seconds()
    bench_cpu_before, started = time.process_time(), time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(
            poll_loop(server.grpc_target, refs[i::callers], metric_name, deadline, samples)
            for i in range(callers)
        )
    )
    seconds = time.perf_counter() - started
    bench_cpu = time.process_time() - bench_cpu_before
    reads_after, cpu_after = server.source_reads(), server.cpu_seconds()
    reads = reads_after - reads_before
    calls = len(samples.get_metrics_ms) + len(samples.is_active_ms) + sum(samples.errors.values())
    server_cpu = None if cpu_before is None or cpu_after is None else 100 * (cpu_after - cpu_before) / seconds
    return Result(
        objects=n,
        concurrency=callers,
        seconds=round(seconds, 3),
        calls=calls,
        calls_per_s=calls / seconds,
        get_metrics_p50_ms=percentile(samples.get_metrics_ms, 0.50),
        get_metrics_p99_ms=percentile(samples.get_metrics_ms, 0.99),
        is_active_p50_ms=percentile(samples.is_active_ms, 0.50),
        is_active_p99_ms=percentile(samples.is_active_ms, 0.99),
        source_reads=reads,
        reads_per_s=reads / seconds,
        ttl_s=ttl,
        polled_reading_age_s=polled_age,
        # Calls come back to back, so a read is due whenever the reading is older
        # than the shorter of the two.
        expected_reads_per_s=1 / min(ttl, polled_age),
        errors=samples.errors,
        first_error=samples.first_error,
        wrong_answers=samples.wrong_answers,
        server_cpu_percent=server_cpu,
        bench_cpu_percent=100 * bench_cpu / seconds,
    )


# --- output and entry point -------------------------------------------------------


COLUMNS = (
    ("N", 6), ("callers", 7), ("calls/s", 8),
    ("GetMetrics p50/p99 ms", 21), ("IsActive p50/p99 ms", 19),
    ("reads", 5), ("reads/s", 7), ("1/min(TTL, age)", 15),
    ("server CPU", 10), ("bench CPU", 9), ("errors", 6),
)  # fmt: skip


def table_header() -> str:
    return "  ".join(name.rjust(width) for name, width in COLUMNS)


def table_row(r: Result) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f}%"

    errors = sum(r.errors.values()) + r.wrong_answers
    cells = (
        str(r.objects), str(r.concurrency), f"{r.calls_per_s:.0f}",
        f"{r.get_metrics_p50_ms:.2f} / {r.get_metrics_p99_ms:.2f}",
        f"{r.is_active_p50_ms:.2f} / {r.is_active_p99_ms:.2f}",
        f"{r.source_reads:.0f}", f"{r.reads_per_s:.2f}", f"{r.expected_reads_per_s:.2f}",
        pct(r.server_cpu_percent), pct(r.bench_cpu_percent), str(errors),
    )  # fmt: skip
    return "  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def counts_from(low: int) -> Callable[[str], list[int]]:
    """An argparse type: N or N1,N2,..., whole numbers >= low."""

    def counts(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected N or N1,N2,... (integers), got {text!r}") from None
        if any(n < low for n in values):
            raise argparse.ArgumentTypeError(f"expected counts >= {low}, got {text!r}")
        return values

    return counts


object_counts = counts_from(1)


def with_replica_throughput(queue: Queue, throughput: float | None) -> Queue:
    """The queue with `replicaThroughput` in its trigger metadata (None: as it is)."""
    if throughput is None:
        return queue
    return dataclasses.replace(queue, metadata={**queue.metadata, "replicaThroughput": f"{throughput:g}"})


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every server bench shares: the server's polled reading age, the
    trigger's replicaThroughput (with_replica_throughput), the broker."""
    parser.add_argument(
        "--polled-reading-age",
        type=positive,
        default=POLLED_READING_AGE,
        help="the server's --polled-reading-age, seconds",
    )
    parser.add_argument(
        "--replica-throughput",
        type=positive,
        help="add replicaThroughput to the trigger metadata (the capacity-aware queue term)",
    )
    add_rabbitmq_url(parser)


def add_rabbitmq_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="AMQP URL of the broker"
    )
    parser.add_argument(
        "--rabbitmq-management-url",
        default="http://guest:guest@127.0.0.1:15672",
        help="the broker's management API (--source rabbitmq-http)",
    )


# --source: the queue and how the server reads it.
SOURCES = ("rabbitmq", "rabbitmq-http", "sqs")


def queue_of(
    source: str, args: argparse.Namespace, sqs_endpoint: str | None = None, *, wait: bool = True
) -> Any:
    """The context manager of one bench queue of `source` (SOURCES), on the broker
    the flags name, or on the SQS server at `sqs_endpoint` (None: a moto of its own).
    `wait`: see rabbitmq_queue."""
    if source == "sqs":
        return sqs_queue(sqs_endpoint)
    management = args.rabbitmq_management_url if source == "rabbitmq-http" else None
    return rabbitmq_queue(args.rabbitmq_url, management, wait=wait)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--objects", type=object_counts, default=[1, 100, 1000], help="N, or N1,N2,...")
    parser.add_argument("--duration", type=positive, default=10.0, help="seconds of load per N")
    parser.add_argument("--concurrency", type=int, default=16, help="most callers in flight (each one pair)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="rabbitmq",
        help="the queue: RabbitMQ read over AMQP or the management API, or SQS on moto",
    )
    parser.add_argument("--ttl", type=positive, default=2.0, help="the server's --cache-ttl, seconds")
    add_server_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    return args


async def bench(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with queue_of(args.source, args) as queue:
        queue = with_replica_throughput(queue, args.replica_throughput)
        depth_before = queue.count()
        trigger = f"queueLength {QUEUE_LENGTH:g}"
        if args.replica_throughput is not None:
            trigger += f", replicaThroughput {args.replica_throughput:g}"
        print(f"queue: {queue.description}, {depth_before} messages, {trigger}")
        print(
            f"server: python -m scaler serve --cache-ttl {args.ttl:g} "
            f"--polled-reading-age {args.polled_reading_age:g} (one fresh process per N); "
            f"{args.duration:g}s of GetMetrics+IsActive pairs per N; latency measured by the client"
        )
        print(table_header())
        for n in args.objects:
            # A fresh server per N: its counters and caches start empty.
            with scaler_server(args.ttl, args.polled_reading_age) as server:
                result = await run_once(
                    server, queue, n, args.concurrency, args.duration, args.ttl, args.polled_reading_age
                )
            print(table_row(result), flush=True)
            if result.errors:
                print(f"  rpc errors: {result.errors}, first of each: {result.first_error}")
            results.append(result)
        depth_after = queue.count()
    consumed = "none consumed" if depth_after == depth_before else "CHANGED"
    print(f"queue messages before/after: {depth_before}/{depth_after} ({consumed})")
    print(
        "reads/s should stay near 1/min(TTL, polled reading age) (one shared read each time the "
        "reading is older than that, for the one queue) whatever N is; "
        "errors counts failed rpcs and wrong answers"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(bench(args))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    failed = any(r.errors or r.wrong_answers for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
