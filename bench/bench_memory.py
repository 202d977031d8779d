"""Resident memory of the real scaler for N objects over Q RabbitMQ or SQS queues.

    python bench/bench_memory.py --objects 300 --queues 300
    python bench/bench_memory.py --objects 300 --queues 300 --source sqs
    python bench/bench_memory.py --objects 1000 --queues 1000 --via http --replica-throughput 1

Starts `python -m scaler serve` on loopback ports (with /metrics, as deployed), creates Q temporary queues
(RabbitMQ: on the local broker, amqp://guest:guest@127.0.0.1:5672/; SQS: on a
moto server started on a free loopback port, all queues with the same keys),
sends each of the N objects (object i reads queue i mod Q) a few GetMetrics +
IsActive rounds, and prints the server's resident set size (VmRSS) idle and
after the load, and for RabbitMQ how many AMQP connections the broker sees from
the scaler. `--via http` reads RabbitMQ through its management API, which reports
each queue's publish rate; with `--replica-throughput` every trigger then has the
capacity-aware queue term, whose rate average and hold history (one per queue) are
in the figure; it also prints the scaler's established connections to the management
API. The queues are deleted afterwards; nothing is consumed. Bounded: a
fixed number of rounds, then exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pika
import requests
from bench_getmetrics import moto_server, sqs_client, sqs_metadata

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scaler._proto import externalscaler_pb2 as pb  # noqa: E402
from scaler._proto import externalscaler_pb2_grpc as pb_grpc  # noqa: E402

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MANAGEMENT = "http://127.0.0.1:15672"


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None, "no VmRSS in /proc/<pid>/status"
    return int(match.group(1)) / 1024


def tcp_connections(pid: int, port: int) -> int:
    """Established TCP connections of process `pid` to `port` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:
                    count += 1
    return count


def scaler_connections() -> int:
    """AMQP connections on the broker whose client is not this script (the scaler's)."""
    connections = requests.get(f"{MANAGEMENT}/api/connections", auth=("guest", "guest"), timeout=5).json()
    return sum(1 for c in connections if c.get("client_properties", {}).get("connection_name") != "bench")


@contextlib.contextmanager
def rabbitmq_queues(count: int, via: str = "amqp") -> Iterator[list[dict[str, str]]]:
    """`count` temporary queues on the local broker: each one's trigger metadata,
    read `via` AMQP or the management API."""
    params = pika.URLParameters(AMQP_URL)
    params.client_properties = {"connection_name": "bench"}
    broker = pika.BlockingConnection(params)
    channel = broker.channel()
    names = [f"prewarm-bench-mem-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    try:
        for name in names:
            channel.queue_declare(queue=name, auto_delete=False)
        if via == "http":
            # The management API reports a queue's publish rate only once a message
            # was published to it, and after its next stats emission (5 s).
            for name in names:
                channel.basic_publish(exchange="", routing_key=name, body=b"bench")
            time.sleep(5.5)
        host = AMQP_URL if via == "amqp" else MANAGEMENT.replace("http://", "http://guest:guest@")
        yield [{"source": "rabbitmq", "host": host, "queueName": name} for name in names]
    finally:
        for name in names:
            channel.queue_delete(queue=name)
        broker.close()


@contextlib.contextmanager
def sqs_queues(count: int) -> Iterator[list[dict[str, str]]]:
    """`count` queues on a moto server of the bench's own, read with one set of keys."""
    with moto_server(own_process=False) as endpoint:
        client = sqs_client(endpoint)
        prefix = f"prewarm-bench-mem-{uuid.uuid4().hex[:6]}"
        urls = [client.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(count)]
        yield [sqs_metadata(endpoint, url) for url in urls]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--queues", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", choices=("rabbitmq", "sqs"), default="rabbitmq")
    parser.add_argument(
        "--via",
        choices=("amqp", "http"),
        default="amqp",
        help="how RabbitMQ is read (the management API: http)",
    )
    parser.add_argument(
        "--replica-throughput",
        type=float,
        default=None,
        help="set replicaThroughput on every trigger (the capacity term: needs a publish rate, --via http)",
    )
    args = parser.parse_args(argv)
    if not (args.objects > 0 and 0 < args.queues <= args.objects):
        parser.error("need objects > 0 and 0 < queues <= objects")
    if args.via == "http" and args.source != "rabbitmq":
        parser.error("--via http reads RabbitMQ's management API: only with --source rabbitmq")
    if args.replica_throughput is not None and args.via != "http":
        parser.error("--replica-throughput needs a publish rate: --via http (RabbitMQ's management API)")

    queues = rabbitmq_queues(args.queues, args.via) if args.source == "rabbitmq" else sqs_queues(args.queues)
    extra = {} if args.replica_throughput is None else {"replicaThroughput": f"{args.replica_throughput:g}"}
    connections: int | None = None
    http_connections: int | None = None
    with_rate = 0
    # /metrics is served, as deployed (it holds the per-object series), on a free port.
    metrics_port = _free_port()
    with tempfile.TemporaryDirectory() as tmp, queues as triggers:
        log_path = Path(tmp) / "server.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scaler",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--metrics-port",
                    str(metrics_port),
                ],
                cwd=REPO,
                stderr=log,
                text=True,
            )
        try:
            port = _wait_for_port(server, log_path)
            stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            idle = rss_mib(server.pid)
            for _ in range(args.rounds):
                for i in range(args.objects):
                    metadata = {**triggers[i % args.queues], **extra}
                    ref = pb.ScaledObjectRef(name=f"object-{i}", namespace="bench", scalerMetadata=metadata)
                    stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=10)
                    stub.IsActive(ref, timeout=10)
                time.sleep(2.1)  # past the cache TTL: every round reads every queue again
            loaded = rss_mib(server.pid)
            if args.via == "http":
                http_connections = tcp_connections(server.pid, 15672)
            if extra:
                # The capacity term was in every answer: each object has its measured rate.
                exposition = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
                with_rate = sum(
                    1 for line in exposition.splitlines() if line.startswith("prewarm_arrival_rate{")
                )
            if args.source == "rabbitmq" and args.via == "amqp":
                time.sleep(5.5)  # the management API's connection list lags by its stats interval
                connections = scaler_connections()
        finally:
            server.terminate()
            server.wait(15)
    per_object = (loaded - idle) * 1024 / args.objects
    via = f" via {args.via}" if args.source == "rabbitmq" else ""
    capacity = (
        f", replicaThroughput {args.replica_throughput:g}" if args.replica_throughput is not None else ""
    )
    print(f"source {args.source}{via}{capacity}, objects {args.objects}, queues {args.queues}")
    print(f"rounds {args.rounds}")
    print(f"RSS idle {idle:.0f} MiB, after load {loaded:.0f} MiB ({per_object:.0f} KiB per object)")
    if extra:
        print(f"objects whose answers used a measured arrival rate (prewarm_arrival_rate): {with_rate}")
    if http_connections is not None:
        print(f"connections from the scaler to the management API (port 15672): {http_connections}")
    if connections is not None:
        print(f"AMQP connections from the scaler seen by the broker: {connections}")
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(server: subprocess.Popen[str], log_path: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"scaler exited: {log_path.read_text()}")
        for line in log_path.read_text().splitlines():
            if '"serving"' in line:
                return int(json.loads(line)["grpc_port"])
        time.sleep(0.1)
    raise SystemExit("scaler did not start within 20 s")


if __name__ == "__main__":
    raise SystemExit(main())
