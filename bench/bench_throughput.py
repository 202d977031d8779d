#!/usr/bin/env python3
"""Benchmark: the scaler's throughput as a share of a bare grpc.aio server's.

Drives GetMetrics and IsActive (half the streams each, as KEDA sends them on
every poll) with h2load (Debian's nghttp2-client), which sends raw gRPC frames
from a separate process at far less client cost than a Python client, against:

- the real scaler (`python -m scaler serve`, default settings) reading a real
  RabbitMQ queue of 42 messages, its readings warm (shared for the cache TTL, and
  read again every --polled-reading-age for these polled calls);
- a bare `grpc.aio` ExternalScaler in its own process answering the same rpcs
  with constants: the floor set by grpc, HTTP/2 and protobuf in Python.

Both run in the same invocation, one after the other, under the same h2load
settings; the figure is scaler calls/s ÷ bare calls/s (target ≥ 0.8). Every
scaler answer is checked from its own /metrics: as many OK rpcs as h2load sent,
and no other status (h2load itself sees HTTP 200 for any gRPC status).

    python bench/bench_throughput.py --duration 10 --rounds 3
    python bench/bench_throughput.py --replica-throughput 2   # the capacity term's path

(`--replica-throughput`: see bench_getmetrics.py; the answer stays the same.)

Everything runs on 127.0.0.1; the queue is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from bench_getmetrics import (
    EXPECTED_DESIRED,
    NAMESPACE,
    add_server_arguments,
    at_least_one,
    positive,
    process_cpu_seconds,
    rabbitmq_queue,
    scaler_server,
    with_replica_throughput,
)

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc

SERVICE = "/externalscaler.ExternalScaler"


# --- the bare server ---------------------------------------------------------------


class BareScaler(pb_grpc.ExternalScalerServicer):
    """Constant answers: what grpc.aio costs with no scaler behind it."""

    async def GetMetrics(self, request, context):  # type: ignore[no-untyped-def]
        return pb.GetMetricsResponse(
            metricValues=[pb.MetricValue(metricName="bare", metricValue=9, metricValueFloat=8.4)]
        )

    async def IsActive(self, request, context):  # type: ignore[no-untyped-def]
        return pb.IsActiveResponse(result=True)


async def serve_bare() -> None:
    server = grpc.aio.server()
    pb_grpc.add_ExternalScalerServicer_to_server(BareScaler(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


@contextlib.contextmanager
def bare_server() -> Iterator[tuple[str, int]]:
    """The bare server's (target, process id)."""
    process = subprocess.Popen([sys.executable, __file__, "--serve-bare"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"127.0.0.1:{int(process.stdout.readline())}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- h2load ------------------------------------------------------------------------


def grpc_frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed)."""
    return b"\0" + struct.pack(">I", len(message)) + message


@dataclass
class Load:
    calls_per_s: float
    done: int
    failed: int


def h2load(target: str, bodies: dict[str, Path], args: argparse.Namespace) -> Load:
    """One h2load process per rpc, at the same time, each with half the streams."""
    command = shutil.which("h2load") or "h2load"
    runs = []
    for method, body in bodies.items():
        runs.append(
            subprocess.Popen(
                [
                    command,
                    # In ms: h2load takes a whole number with a unit, and --duration 0.5 is ours.
                    f"--duration={round(args.duration * 1000)}ms",
                    f"--warm-up-time={round(args.warm_up * 1000)}ms",
                    f"--clients={args.clients}",
                    f"--max-concurrent-streams={args.streams}",
                    "--threads=1",
                    "--header=content-type: application/grpc",
                    "--header=te: trailers",
                    f"--data={body}",
                    f"http://{target}{SERVICE}/{method}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    rate, done, failed = 0.0, 0, 0
    for run in runs:
        out, _ = run.communicate(timeout=args.duration + args.warm_up + 60)
        finished = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        requests = re.search(
            r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed", out
        )
        if run.returncode != 0 or finished is None or requests is None:
            raise RuntimeError(f"h2load failed:\n{out}")
        rate += float(finished.group(1))
        done += int(requests.group(1))
        failed += int(requests.group(2))
    return Load(rate, done, failed)


def rpc_counts(metrics_url: str) -> dict[tuple[str, str], float]:
    """prewarm_rpc_total by (method, code), from the scaler's /metrics."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = re.match(r'prewarm_rpc_total\{code="(\w+)",method="(\w+)"\} ([\d.e+]+)', line)
        if match:
            counts[(match.group(2), match.group(1))] = float(match.group(3))
    return counts


async def warm(target: str, ref: pb.ScaledObjectRef) -> None:
    """One pair through a real client: the reading is cached and the answer right."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        answer = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=""), timeout=10)
        assert abs(answer.metricValues[0].metricValueFloat - EXPECTED_DESIRED) < 1e-9, answer
        assert (await stub.IsActive(ref, timeout=10)).result is True


# --- the run ----------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    with rabbitmq_queue(args.rabbitmq_url) as plain_queue, tempfile.TemporaryDirectory() as tmp:
        queue = with_replica_throughput(plain_queue, args.replica_throughput)
        ref = pb.ScaledObjectRef(name="worker", namespace=NAMESPACE, scalerMetadata=queue.metadata)
        bodies = {
            "GetMetrics": Path(tmp) / "get_metrics.bin",
            "IsActive": Path(tmp) / "is_active.bin",
        }
        bodies["GetMetrics"].write_bytes(
            grpc_frame(pb.GetMetricsRequest(scaledObjectRef=ref, metricName="").SerializeToString())
        )
        bodies["IsActive"].write_bytes(grpc_frame(ref.SerializeToString()))

        print(
            f"h2load: 2 processes (GetMetrics, IsActive) x {args.clients} connection(s) x "
            f"{args.streams} streams, {args.duration:g} s after {args.warm_up:g} s warm-up; "
            f"scaler reading {queue.description}"
            + ("" if args.replica_throughput is None else f", replicaThroughput {args.replica_throughput:g}")
        )
        ratios, cpu_ratios = [], []
        with scaler_server(args.ttl, args.polled_reading_age) as scaler, bare_server() as (bare, bare_pid):
            asyncio.run(warm(scaler.grpc_target, ref))
            for round_ in range(1, args.rounds + 1):
                before = rpc_counts(scaler.metrics_url)
                cpu_before = process_cpu_seconds(scaler.process.pid)
                ours = h2load(scaler.grpc_target, bodies, args)
                ours_cpu = process_cpu_seconds(scaler.process.pid) - cpu_before
                after = rpc_counts(scaler.metrics_url)
                cpu_before = process_cpu_seconds(bare_pid)
                theirs = h2load(bare, bodies, args)
                theirs_cpu = process_cpu_seconds(bare_pid) - cpu_before
                delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                ok = sum(v for (method, code), v in delta.items() if code == "OK")
                # h2load resets the streams in flight when its time is up: those are CANCELLED.
                in_flight = 2 * args.clients * args.streams
                not_ok = {k: v for k, v in delta.items() if k[1] not in ("OK", "CANCELLED") and v}
                cancelled = sum(v for (method, code), v in delta.items() if code == "CANCELLED")
                ratio = ours.calls_per_s / theirs.calls_per_s
                ratios.append(ratio)
                # CPU per call: the process's CPU over h2load's run (its warm-up too) per
                # call h2load counted (after the warm-up), the same way for both: steadier
                # than calls/s when other work shares the cores.
                ours_us = ours_cpu / max(1, ours.done) * 1e6
                theirs_us = theirs_cpu / max(1, theirs.done) * 1e6
                cpu_ratios.append(theirs_us / ours_us)
                print(
                    f"round {round_}: scaler {ours.calls_per_s:,.0f} calls/s, bare {theirs.calls_per_s:,.0f} "
                    f"calls/s, ratio {ratio:.2f}; CPU per call scaler {ours_us:.0f} us, bare "
                    f"{theirs_us:.0f} us; scaler rpcs OK {ok:,.0f} (h2load done {ours.done:,}, "
                    f"failed {ours.failed}), cancelled at the end {cancelled:.0f}, other statuses "
                    f"{not_ok or 'none'}"
                )
                # OK counts the warm-up's calls too, which h2load's "done" leaves out.
                if not_ok or ours.failed or ok < ours.done or cancelled > in_flight:
                    print("FAIL: the scaler answered something other than OK", file=sys.stderr)
                    return 1
        print(f"ratio scaler/bare: median {statistics.median(ratios):.2f} over {len(ratios)} round(s)")
        print(
            f"calls per CPU-second, scaler/bare: median {statistics.median(cpu_ratios):.2f} "
            "(the bare server's CPU per call over the scaler's)"
        )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=positive, default=10.0, help="seconds of load per server per round"
    )
    parser.add_argument(
        "--warm-up", type=positive, default=2.0, help="h2load warm-up seconds before measuring"
    )
    parser.add_argument("--rounds", type=at_least_one, default=3, help="scaler-then-bare rounds")
    parser.add_argument("--clients", type=at_least_one, default=4, help="h2load connections per rpc")
    parser.add_argument("--streams", type=at_least_one, default=8, help="concurrent streams per connection")
    parser.add_argument("--ttl", type=positive, default=2.0, help="the scaler's --cache-ttl")
    add_server_arguments(parser)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        asyncio.run(serve_bare())
        return 0
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
