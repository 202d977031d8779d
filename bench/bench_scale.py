#!/usr/bin/env python3
"""Benchmark: many objects over a few queues, polled as KEDA polls, for a long time.

N ScaledObjects (default 1,000) spread over Q RabbitMQ queues (default 50, AMQP;
`--source rabbitmq-http`: read through the management API; `--source sqs`: SQS
queues on moto in server mode, in a process of its own),
each with an open StreamIsActive stream (external-push), GetMetrics every 15 s
(the HPA's sync period) and IsActive every 30 s (KEDA's default pollingInterval),
each object's first poll at a random offset within the period (or the run, if
shorter: every object polls at least once), against the real scaler
(`python -m scaler serve`, default settings) in its own process. It reports:

- client-side latency of GetMetrics and IsActive (p50, p99, max) and errors;
- source reads from the server's /metrics, against the bound
  Q x (duration / min(TTL, polled reading age) + 1);
- the server's resident memory after warm-up and at the end;
- stream messages (each stream sends the state once, then only changes), and how
  long after opening each stream had its first answer: every stream is opened at
  once, as KEDA opens them when it starts.

    python bench/bench_scale.py --duration 600      # the 10-minute run
    python bench/bench_scale.py --objects 100 --queues 10 --duration 60
    python bench/bench_scale.py --objects 3000 --duration 30 --warm-up 10 --source sqs
    python bench/bench_scale.py --duration 600 --replica-throughput 2   # the capacity term's path

(`--replica-throughput`: see bench_getmetrics.py; the answers stay the same.)

Everything runs on 127.0.0.1; the RabbitMQ queues are deleted afterwards (moto's
go with its process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
from bench_getmetrics import (
    EXPECTED_DESIRED,
    NAMESPACE,
    SOURCES,
    Queue,
    add_server_arguments,
    moto_server,
    percentile,
    queue_of,
    scaler_server,
    wait_for_management,
    with_replica_throughput,
)

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import tune_gc

HPA_PERIOD_S = 15.0
KEDA_POLLING_S = 30.0


def source_reads(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prewarm_source_reads_total{")
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def queues(args: argparse.Namespace) -> Iterator[list[Queue]]:
    """--queues queues of --source: on the RabbitMQ broker the flags name, or on one
    moto SQS server in a process of its own (not sharing this client's GIL)."""
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(moto_server(own_process=True)) if args.source == "sqs" else None
        made = [
            stack.enter_context(queue_of(args.source, args, endpoint, wait=False)) for _ in range(args.queues)
        ]
        if args.source == "rabbitmq-http":  # all at once: the API's statistics come every 5 s
            wait_for_management(args.rabbitmq_management_url, [q.metadata["queueName"] for q in made])
        yield made


class Tally:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {"GetMetrics": [], "IsActive": []}
        self.errors: dict[str, int] = {}
        self.wrong = 0
        self.stream_messages = 0
        self.stream_errors = 0
        self.first_answer_s: list[float] = []  # each stream's first message, from its opening

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def poll(
    stub: pb_grpc.ExternalScalerStub,
    ref: pb.ScaledObjectRef,
    period: float,
    rpc: str,
    end: float,
    tally: Tally,
) -> None:
    # KEDA's loops do not start in step. The first call falls within the run even
    # when it is shorter than the period, so every object polls at least once.
    await asyncio.sleep(random.uniform(0, min(period, max(0.0, end - time.monotonic()))))
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            if rpc == "GetMetrics":
                answer = await stub.GetMetrics(
                    pb.GetMetricsRequest(scaledObjectRef=ref, metricName=""), timeout=10
                )
                right = math.isclose(answer.metricValues[0].metricValueFloat, EXPECTED_DESIRED)
            else:
                right = (await stub.IsActive(ref, timeout=10)).result is True
        except grpc.aio.AioRpcError as exc:
            tally.error(f"{rpc} {exc.code().name}")
        else:
            tally.ms[rpc].append((time.perf_counter() - started) * 1000)
            tally.wrong += 0 if right else 1
        await asyncio.sleep(min(period, max(0.0, end - time.monotonic())))


async def stream(stub: pb_grpc.ExternalScalerStub, ref: pb.ScaledObjectRef, end: float, tally: Tally) -> None:
    call = stub.StreamIsActive(ref)
    opened = time.perf_counter()
    answered = False
    try:
        while time.monotonic() < end:
            read = asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait({read}, timeout=max(0.0, end - time.monotonic()))
            if not done:
                read.cancel()
                break
            message = read.result()
            if message is grpc.aio.EOF:
                tally.stream_errors += 1
                break
            if not answered:
                answered = True
                tally.first_answer_s.append(time.perf_counter() - opened)
            tally.stream_messages += 1
            if message.result is not True:
                tally.wrong += 1
    except grpc.aio.AioRpcError as exc:
        tally.error(f"StreamIsActive {exc.code().name}")
    finally:
        call.cancel()


async def drive(target: str, refs: list[pb.ScaledObjectRef], duration: float, tally: Tally) -> None:
    end = time.monotonic() + duration
    # KEDA shares one connection per scaler address; a few channels spread the client's work.
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    try:
        tasks = []
        for i, ref in enumerate(refs):
            stub = pb_grpc.ExternalScalerStub(channels[i % len(channels)])
            tasks.append(stream(stub, ref, end, tally))
            tasks.append(poll(stub, ref, HPA_PERIOD_S, "GetMetrics", end, tally))
            tasks.append(poll(stub, ref, KEDA_POLLING_S, "IsActive", end, tally))
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close()


def run(args: argparse.Namespace) -> int:
    with (
        queues(args) as qs,
        scaler_server(args.ttl, args.polled_reading_age) as server,
    ):
        metadata = [with_replica_throughput(q, args.replica_throughput).metadata for q in qs]
        refs = [
            pb.ScaledObjectRef(
                name=f"worker-{i:05d}", namespace=NAMESPACE, scalerMetadata=metadata[i % len(qs)]
            )
            for i in range(args.objects)
        ]
        tally = Tally()
        reads_before = source_reads(server.metrics_url)
        rss: dict[str, float] = {"start": rss_mb(server.process.pid)}

        async def main() -> None:
            # The client stands in for KEDA, whose Go collector runs beside the
            # program; tuned as the server tunes its own, so this process's
            # pauses are not counted as the server's latency.
            tune_gc()
            load = asyncio.ensure_future(drive(server.grpc_target, refs, args.duration, tally))
            await asyncio.sleep(min(args.warm_up, args.duration))
            rss["after warm-up"] = rss_mb(server.process.pid)
            await load

        started = time.monotonic()
        asyncio.run(main())
        elapsed = time.monotonic() - started
        rss["end"] = rss_mb(server.process.pid)
        reads = source_reads(server.metrics_url) - reads_before
        # A read starts only once the last one is older than the TTL (the streams)
        # or the polled reading age (GetMetrics, IsActive), whichever comes first.
        shortest = min(args.ttl, args.polled_reading_age)
        bound = args.queues * (elapsed / shortest + 1)
        cpu = server.cpu_seconds()

    print(
        f"{args.objects} objects over {args.queues} queues, {elapsed:.0f} s: GetMetrics every "
        f"{HPA_PERIOD_S:g} s, IsActive every {KEDA_POLLING_S:g} s, one StreamIsActive each; "
        f"TTL {args.ttl:g} s, polled reading age {args.polled_reading_age:g} s"
        + ("" if args.replica_throughput is None else f"; replicaThroughput {args.replica_throughput:g}")
    )
    for rpc, values in tally.ms.items():
        if values:
            print(
                f"  {rpc}: {len(values):,} calls, p50 {percentile(values, 0.50):.1f} ms, "
                f"p99 {percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms"
            )
    print(f"  errors: {tally.errors or 'none'}; wrong answers: {tally.wrong}")
    print(f"  stream messages: {tally.stream_messages:,} (one per stream expected: the state never changes)")
    if tally.first_answer_s:
        # Every stream is opened at once, as KEDA opens them when it starts.
        print(
            f"  streams' first answers (all opened at once): {len(tally.first_answer_s):,} of "
            f"{args.objects:,}, p50 {percentile(tally.first_answer_s, 0.50):.2f} s, "
            f"max {max(tally.first_answer_s):.2f} s after opening"
        )
    print(
        f"  source reads: {reads:,.0f} "
        f"(bound {args.queues} x ({elapsed:.0f} / {shortest:g} + 1) = {bound:,.0f})"
    )
    growth = rss["end"] - rss["after warm-up"]
    print(
        f"  server RSS: {rss['start']:.1f} MB at start, {rss['after warm-up']:.1f} MB after "
        f"{args.warm_up:g} s, {rss['end']:.1f} MB at the end (growth after warm-up {growth:+.1f} MB)"
    )
    if cpu is not None:
        print(f"  server CPU: {cpu:.0f} s ({cpu / elapsed:.0%} of one core)")
    ok = not tally.errors and tally.wrong == 0 and reads <= bound
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds before the RSS baseline")
    parser.add_argument("--ttl", type=float, default=2.0, help="the server's --cache-ttl")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="rabbitmq",
        help="the queues: RabbitMQ over AMQP (read on the server's event loop) or its "
        "management API, or SQS on moto in server mode (both read in the server's read pool)",
    )
    add_server_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args(None)))
