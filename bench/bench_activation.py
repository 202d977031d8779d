#!/usr/bin/env python3
"""Benchmark: activation latency, from the first message published to an empty
queue to `true` on StreamIsActive (what wakes a pool from zero with external-push).

Against the real scaler (`python -m scaler serve`, default settings unless given)
in its own process and a real queue: RabbitMQ (AMQP) or SQS (moto's server mode,
started here). Each trial uses a fresh, empty queue: it opens the stream, waits
for the first answer (`false`), waits a random fraction of the cache TTL (so the
publish lands at any phase of the scaler's read and stream cycles), publishes one
message and times the `true`. Prints p50, p90 and max over the trials.

    python bench/bench_activation.py --source rabbitmq --trials 50
    python bench/bench_activation.py --source sqs --trials 50

Everything runs on 127.0.0.1; queues are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
from bench_getmetrics import (
    NAMESPACE,
    amqp_channel,
    moto_server,
    percentile,
    scaler_server,
    sqs_client,
    sqs_metadata,
)

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc

# One trial's queue: its trigger metadata, a way to publish one message, a way to delete it.
Trial = tuple[dict[str, str], Callable[[], None], Callable[[], None]]


@contextlib.contextmanager
def rabbitmq_trials(url: str) -> Iterator[Callable[[], Trial]]:
    def make() -> Trial:
        name = f"prewarm-activation-{uuid.uuid4().hex[:8]}"
        with amqp_channel(url) as channel:
            channel.queue_declare(queue=name, arguments={"x-expires": 600_000})

        def publish() -> None:
            with amqp_channel(url) as channel:
                channel.basic_publish(exchange="", routing_key=name, body=b"first job")

        def delete() -> None:
            with amqp_channel(url) as channel:
                channel.queue_delete(queue=name)

        return {"source": "rabbitmq", "host": url, "queueName": name}, publish, delete

    yield make


@contextlib.contextmanager
def sqs_trials() -> Iterator[Callable[[], Trial]]:
    with moto_server(own_process=False) as endpoint:
        client = sqs_client(endpoint)

        def make() -> Trial:
            url = client.create_queue(QueueName=f"prewarm-activation-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            return (
                sqs_metadata(endpoint, url),
                lambda: client.send_message(QueueUrl=url, MessageBody="first job"),
                lambda: client.delete_queue(QueueUrl=url),
            )

        yield make


async def trial(stub: pb_grpc.ExternalScalerStub, make: Callable[[], Trial], ttl: float, index: int) -> float:
    metadata, publish, delete = await asyncio.to_thread(make)
    ref = pb.ScaledObjectRef(name=f"worker-{index}", namespace=NAMESPACE, scalerMetadata=metadata)
    call = stub.StreamIsActive(ref)
    try:
        first = await asyncio.wait_for(call.read(), 30)
        assert first.result is False, f"an empty queue read as active: {first}"
        await asyncio.sleep(random.uniform(0, ttl))
        published = time.perf_counter()
        await asyncio.to_thread(publish)
        answer = await asyncio.wait_for(call.read(), 30)
        assert answer.result is True, answer
        return time.perf_counter() - published
    finally:
        call.cancel()
        await asyncio.to_thread(delete)


async def measure(target: str, make: Callable[[], Trial], trials: int, ttl: float) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ExternalScalerStub(channel)
        return [await trial(stub, make, ttl, i) for i in range(trials)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", choices=("rabbitmq", "sqs"), default="rabbitmq")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument(
        "--ttl", type=float, default=2.0, help="the server's --cache-ttl (default: its default)"
    )
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = parser.parse_args(argv)
    trials = rabbitmq_trials(args.rabbitmq_url) if args.source == "rabbitmq" else sqs_trials()
    with trials as make, scaler_server(args.ttl) as server:
        latencies = asyncio.run(measure(server.grpc_target, make, args.trials, args.ttl))
    print(
        f"{args.source}: first message to StreamIsActive true, {len(latencies)} trials, TTL {args.ttl:g} s: "
        f"p50 {percentile(latencies, 0.5):.2f} s, p90 {percentile(latencies, 0.9):.2f} s, "
        f"max {max(latencies):.2f} s, min {min(latencies):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
