#!/usr/bin/env python3
"""Benchmark: the scaler's own cost per warm GetMetrics and IsActive, in-process.

Builds the real server's parts (`ScalerServer`: engine, cache, recorder, metrics)
and its servicer in this process, with no gRPC transport, against a temporary
RabbitMQ queue of 42 messages (AMQP), and calls the servicer's handlers back to
back, as KEDA's polls arrive once the reading is warm: µs per call, the median of
several rounds. Under load each µs here costs the server two to three µs of CPU per
call (docs/benchmarks.md, throughput), so this is where the handlers' changes show
first, without the machine's noise that moves the h2load figures.

    python bench/bench_handler.py
    python bench/bench_handler.py --replica-throughput 2   # the capacity term's path
    python bench/bench_handler.py --anew                   # also an evaluation made anew

`--anew` also times `Engine.answer_anew` for a stream tick (from the cached reading,
not kept or reused): what a call costs when the reading has changed since the last
answer, as most do at KEDA's own cadence. Every answer is checked (42 / 5 = 8.4,
active); polled calls read the queue again each --polled-reading-age, as the server
does, so a few calls per round wait for a read.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc
from bench_getmetrics import (
    EXPECTED_DESIRED,
    NAMESPACE,
    add_server_arguments,
    at_least_one,
    rabbitmq_queue,
    with_replica_throughput,
)

from scaler._proto import externalscaler_pb2 as pb
from scaler.engine import Evaluation, ObjectRef
from scaler.server import ExternalScalerServicer, ScalerServer, Settings, tune_gc


class RefusingContext:
    """What the servicer uses of grpc's context: a refused call ends the bench."""

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> NoReturn:
        raise SystemExit(f"FAIL: the scaler refused a call ({self._code.name}): {details}")


async def bench(args: argparse.Namespace, metadata: dict[str, str]) -> dict[str, list[float]]:
    server = ScalerServer(Settings(metrics_port=None, polled_reading_age=args.polled_reading_age))
    servicer = ExternalScalerServicer(server.engine, server.metrics, 1.0, server.shutting_down)
    request = pb.ScaledObjectRef(name="worker", namespace=NAMESPACE, scalerMetadata=metadata)
    get_metrics = pb.GetMetricsRequest(scaledObjectRef=request, metricName="")
    context = RefusingContext()
    ref = ObjectRef(NAMESPACE, "worker")
    cfg = server.engine.config(ref, metadata)

    # Each rpc: the call as the servicer gets it, and the check of its answer (made on
    # the last call of each round, outside the timed loop).
    def get_metrics_ok(answer: pb.GetMetricsResponse | None) -> bool:
        return answer is not None and math.isclose(answer.metricValues[0].metricValueFloat, EXPECTED_DESIRED)

    def is_active_ok(answer: pb.IsActiveResponse | None) -> bool:
        return answer is not None and answer.result is True

    def anew_ok(evaluation: Evaluation) -> bool:
        return math.isclose(evaluation.decision.desired, EXPECTED_DESIRED)

    calls: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[Any], bool]]] = {
        "GetMetrics": (lambda: servicer.GetMetrics(get_metrics, context), get_metrics_ok),  # type: ignore[arg-type]
        "IsActive": (lambda: servicer.IsActive(request, context), is_active_ok),  # type: ignore[arg-type]
    }
    if args.anew:
        calls["evaluation anew"] = (lambda: server.engine.answer_anew(ref, cfg, polled=False), anew_ok)
    try:
        for name, (call, ok) in calls.items():  # warm: the reading cached, the config parsed
            if not ok(await call()):
                raise SystemExit(f"FAIL: a wrong answer to {name}")
        tune_gc()  # as `serve` does once started
        per_call: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, (call, ok) in calls.items():
                started = time.perf_counter()
                for _ in range(args.calls - 1):
                    await call()
                last = await call()
                per_call[name].append((time.perf_counter() - started) / args.calls * 1e6)
                if not ok(last):
                    raise SystemExit(f"FAIL: a wrong answer to {name}")
        return per_call
    finally:
        server.cache.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=at_least_one, default=20_000, help="calls per rpc per round")
    parser.add_argument("--rounds", type=at_least_one, default=7, help="rounds (the median is printed)")
    add_server_arguments(parser)
    parser.add_argument("--anew", action="store_true", help="also time an evaluation made anew")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with rabbitmq_queue(args.rabbitmq_url) as plain_queue:
        queue = with_replica_throughput(plain_queue, args.replica_throughput)
        trigger = (
            "" if args.replica_throughput is None else f", replicaThroughput {args.replica_throughput:g}"
        )
        print(
            f"in-process, no gRPC: {queue.description}{trigger}; {args.rounds} rounds of "
            f"{args.calls:,} calls per rpc, polled reading age {args.polled_reading_age:g} s"
        )
        per_call = asyncio.run(bench(args, queue.metadata))
    for name, rounds in per_call.items():
        listed = ", ".join(f"{value:.1f}" for value in rounds)
        print(f"{name}: median {statistics.median(rounds):.1f} µs per call (rounds: {listed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
