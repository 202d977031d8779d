"""Resident memory of the real scaler for N objects over Q RabbitMQ queues.

    python bench/bench_memory.py --objects 300 --queues 300

Starts `python -m scaler serve` on loopback ports, creates Q temporary queues on
the local broker (amqp://guest:guest@127.0.0.1:5672/), sends each of the N
objects (object i reads queue i mod Q) a few GetMetrics + IsActive rounds, and
prints the server's resident set size (VmRSS) idle and after the load, and how
many AMQP connections the broker sees from the scaler. The queues are deleted
afterwards; nothing is consumed. Bounded: a fixed number of rounds, then exit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pika
import requests

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


def scaler_connections() -> int:
    """AMQP connections on the broker whose client is not this script (the scaler's)."""
    connections = requests.get(f"{MANAGEMENT}/api/connections", auth=("guest", "guest"), timeout=5).json()
    return sum(1 for c in connections if c.get("client_properties", {}).get("connection_name") != "bench")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--queues", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.objects > 0 and 0 < args.queues <= args.objects):
        parser.error("need objects > 0 and 0 < queues <= objects")

    with tempfile.TemporaryDirectory() as tmp:
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
                    "0",
                ],
                cwd=REPO,
                stderr=log,
                text=True,
            )
        params = pika.URLParameters(AMQP_URL)
        params.client_properties = {"connection_name": "bench"}
        broker = pika.BlockingConnection(params)
        channel = broker.channel()
        names = [f"prewarm-bench-mem-{uuid.uuid4().hex[:6]}-{i}" for i in range(args.queues)]
        try:
            port = _wait_for_port(server, log_path)
            for name in names:
                channel.queue_declare(queue=name, auto_delete=False)
            stub = pb_grpc.ExternalScalerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            idle = rss_mib(server.pid)
            for _ in range(args.rounds):
                for i in range(args.objects):
                    metadata = {"source": "rabbitmq", "host": AMQP_URL, "queueName": names[i % args.queues]}
                    ref = pb.ScaledObjectRef(name=f"object-{i}", namespace="bench", scalerMetadata=metadata)
                    stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref), timeout=10)
                    stub.IsActive(ref, timeout=10)
                time.sleep(2.1)  # past the cache TTL: every round reads every queue again
            loaded = rss_mib(server.pid)
            time.sleep(5.5)  # the management API's connection list lags by its stats interval
            connections = scaler_connections()
        finally:
            for name in names:
                channel.queue_delete(queue=name)
            broker.close()
            server.terminate()
            server.wait(15)
    per_object = (loaded - idle) * 1024 / args.objects
    print(f"objects {args.objects}, queues {args.queues}, rounds {args.rounds}")
    print(f"RSS idle {idle:.0f} MiB, after load {loaded:.0f} MiB ({per_object:.0f} KiB per object)")
    print(f"AMQP connections from the scaler seen by the broker: {connections}")
    return 0


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
