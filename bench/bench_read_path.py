#!/usr/bin/env python3
"""Benchmark: how long a queue read takes while the event loop is busy.

The scaler reads RabbitMQ over AMQP with pika's asyncio adapter, on its event loop
(scaler/signals/rabbitmq.py). Before 5 December 2026 it ran pika's blocking client
in a read-pool thread, as it still does every HTTP source (SQS, the management API,
Prometheus). This bench times one read of a queue of 42 messages through the
scaler's ReadingCache (TTL 0, so every call reads), with the event loop idle and
with N tasks each computing 0.2 ms and yielding, round after round, as an event
loop busy with many streams' ticks does:

- `AMQP on the loop`: the scaler's RabbitAmqpSource (its read is a coroutine), a
  passive declare of a temporary queue;
- `AMQP in a thread`: the same declare over pika's BlockingConnection, run in the
  cache's read pool (the path before);
- `SQS in a thread`: the scaler's SqsSource as it reads today (boto3's
  GetQueueAttributes in the read pool), against moto in server mode in a process
  of its own;
- `management API in a thread`: the scaler's RabbitHttpSource as it reads today
  (a GET of the same RabbitMQ queue through the management API, with `requests`,
  in the read pool).

A thread's read needs the GIL back after each of its client's socket calls, and an
event loop that lets the GIL go and takes it back around every poll keeps winning
it, so the thread's read waits for the loop to go idle. How long a waiting thread
lets the holder keep the GIL before asking for it is CPython's switch interval
(5 ms, which `serve` keeps); `--switch-interval` runs the rows at others too.
Each read's time is capped by --timeout, and each row by --seconds. A read fails
when it times out, or at once while the previous read of its source is still in
its client (the cache starts no second one): the scaler would answer UNAVAILABLE
either way.

    python bench/bench_read_path.py
    python bench/bench_read_path.py --reads 200 --busy 0,1,3 --switch-interval 0.005,0.00001
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time

import pika
from bench_getmetrics import (
    add_rabbitmq_url,
    at_least_one,
    counts_from,
    positive,
    rabbitmq_queue,
    sqs_queue,
    wait_for_management,
)

from scaler.clock import SystemClock
from scaler.config import parse_trigger
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.cache import ReadingCache
from scaler.signals.rabbitmq import AmqpConnections, rabbitmq_source
from scaler.signals.sqs import SqsClients, SqsSource

BUSY_SLICE_S = 0.0002  # each busy task computes this long between yields


class ThreadedDeclare:
    """A passive declare over pika's BlockingConnection: a blocking read, which the
    cache runs in its pool (how the scaler read AMQP before)."""

    def __init__(self, url: str, queue: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(url))
        self._channel = self._connection.channel()
        self._queue = queue
        # pika's blocking client is not thread-safe: a read that timed out may still be
        # in it when the next row's cache starts another (the scaler took turns too).
        self._lock = threading.Lock()

    key = "bench|threaded-declare"
    description = "the passive declare in a read thread"

    def read(self) -> QueueReading:
        with self._lock:
            frame = self._channel.queue_declare(queue=self._queue, passive=True)
        return QueueReading(waiting=float(frame.method.message_count), in_flight=None)

    def wait_idle(self) -> None:
        """Until no read is in the client (one that timed out may still be)."""
        with self._lock:
            pass

    def close(self) -> None:
        with self._lock:
            self._connection.close()


async def _busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < BUSY_SLICE_S:
            pass
        await asyncio.sleep(0)


async def _time_reads(
    cache: ReadingCache, source: object, reads: int, busy: int, budget: float
) -> tuple[list[float], int]:
    """Seconds per read through a TTL-0 cache with `busy` tasks computing, and the
    reads that failed: `reads` of them, or as many as `budget` seconds allow."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(_busy(stop)) for _ in range(busy)]
    times, failed = [], 0
    end = time.monotonic() + budget
    try:
        for _ in range(reads):
            if time.monotonic() >= end:
                break
            started = time.perf_counter()
            try:
                reading = await cache.get(source)  # type: ignore[arg-type]
            except SourceError:
                failed += 1
                continue
            times.append(time.perf_counter() - started)
            assert isinstance(reading.value, QueueReading) and reading.value.waiting == 42, reading
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        # A read that timed out may still be in its thread: with the loop idle now it
        # gets the GIL and returns; wait for it, so no row leaves a read running.
        wait_idle = getattr(source, "wait_idle", None)
        if wait_idle is not None:
            await asyncio.to_thread(wait_idle)
    return times, failed


async def _settle(cache: ReadingCache, source: object, timeout: float) -> None:
    """With the loop idle, read until a read answers: the source is connected, and a
    read the last row left in its client (past its timeout) has returned."""
    end = time.monotonic() + 2 * timeout
    while True:
        try:
            await cache.get(source)  # type: ignore[arg-type]
            return
        except SourceError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.05)


def _row(path: str, interval: float, busy: int, times: list[float], failed: int) -> str:
    reads = len(times) + failed
    head = f"| {path} | {interval * 1e3:g} | {busy} | {reads} |"
    if not times:
        return f"{head} - | - | - | {failed} |"
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{head} {statistics.median(ordered) * 1e3:.2f} | {p99 * 1e3:.2f} | "
        f"{ordered[-1] * 1e3:.1f} | {failed} |"
    )


async def _run(args: argparse.Namespace, amqp: dict[str, str], sqs: dict[str, str]) -> list[str]:
    # The same RabbitMQ queue read through the management API.
    http = {**amqp, "host": args.rabbitmq_management_url}
    rabbit_cfg, http_cfg, sqs_cfg = (
        parse_trigger(amqp).rabbitmq,
        parse_trigger(http).rabbitmq,
        parse_trigger(sqs).sqs,
    )
    assert rabbit_cfg is not None and http_cfg is not None and sqs_cfg is not None
    paths = {
        "AMQP on the loop": rabbitmq_source(rabbit_cfg, timeout=args.timeout, connections=AmqpConnections()),
        "AMQP in a thread": ThreadedDeclare(args.rabbitmq_url, amqp["queueName"]),
        "SQS in a thread": SqsSource(sqs_cfg, timeout=args.timeout, clients=SqsClients()),
        "management API in a thread": rabbitmq_source(http_cfg, timeout=args.timeout),
    }
    # One cache per path for every row, so a path keeps its connection: the rows time
    # reads on an open connection (a connect is not what is measured).
    caches = {path: ReadingCache(SystemClock(), ttl=0.0, timeout=args.timeout) for path in paths}
    rows = []
    default_interval = sys.getswitchinterval()
    try:
        for interval in args.switch_interval:
            sys.setswitchinterval(interval)
            for busy in args.busy:
                for path, source in paths.items():
                    await _settle(caches[path], source, args.timeout)
                    times, failed = await _time_reads(caches[path], source, args.reads, busy, args.seconds)
                    rows.append(_row(path, interval, busy, times, failed))
    finally:
        sys.setswitchinterval(default_interval)
        for cache in caches.values():
            await asyncio.to_thread(cache.close)  # closes the sources
    return rows


def _intervals(text: str) -> list[float]:
    """An argparse type: S or S1,S2,..., each a number of seconds > 0."""
    try:
        return [positive(part) for part in text.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected S or S1,S2,... (seconds > 0), got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reads", type=at_least_one, default=300, help="reads timed per row")
    parser.add_argument(
        "--busy",
        type=counts_from(0),
        default=[0, 1, 3],
        help="busy tasks on the event loop, N or N1,N2,... (0: idle)",
    )
    parser.add_argument("--timeout", type=positive, default=5.0, help="the read timeout, seconds")
    parser.add_argument(
        "--seconds", type=positive, default=10.0, help="the most time spent on one row (its reads stop there)"
    )
    parser.add_argument(
        "--switch-interval",
        type=_intervals,
        default=[sys.getswitchinterval()],
        help="CPython's switch interval for the rows, seconds, S or S1,S2,... "
        f"(default: {sys.getswitchinterval():g}, CPython's and the server's)",
    )
    add_rabbitmq_url(parser)
    args = parser.parse_args(argv)
    with rabbitmq_queue(args.rabbitmq_url) as amqp, sqs_queue(moto_own_process=True) as sqs:
        wait_for_management(args.rabbitmq_management_url, [amqp.metadata["queueName"]])
        rows = asyncio.run(_run(args, dict(amqp.metadata), dict(sqs.metadata)))
    print(
        f"Queue reads through the cache: up to {args.reads} reads or {args.seconds:g} s per row; "
        f"busy tasks compute {BUSY_SLICE_S * 1e3:g} ms between yields; timeout {args.timeout:g} s"
    )
    print("| read | switch interval ms | busy tasks | reads | p50 ms | p99 ms | max ms | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
