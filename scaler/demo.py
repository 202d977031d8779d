"""`make demo` (`python -m scaler.demo`): watch Prewarm scale something, live.

Starts the real server (scaler.server.ScalerServer, in this process, on a
loopback port), a local SQS (moto in server mode), and a simulated fleet of GPU
workers. The fleet's KEDA and HPA are the simulator's (scaler.sim.keda:
ScaledObjectLoop, Hpa) and talk to the server over gRPC as KEDA does:
GetMetricSpec, GetMetrics for each HPA sync, IsActive for each poll. A producer
replays a slice of a bundled trace as real SQS messages; Ready workers receive
them, hold each for its service time and delete it. The scaler only inspects
the queue.

Time: one sped-up clock (scaler.clock.ScaledClock), `--speed` workload seconds
per wall second, shared by the server (cache TTL, the forecast's time of day),
the fleet (cold starts, service times) and KEDA's loops (pollingInterval,
cooldown, HPA sync and windows), so every period keeps its real length
(docs/decisions.md, "Demo"). The forecast is warm-started the way production
warm-starts it from Prometheus (the arrivalQuery's 7-day range query), fed here
from the trace's earlier days. At the end: a summary against stock KEDA on the
same slice (the simulator's runs, same world settings) and a PNG of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scaler.argtypes import number, positive, whole
from scaler.clock import Clock, ManualClock, ScaledClock
from scaler.config import TriggerConfig
from scaler.engine import SourceFactory
from scaler.signals.base import ArrivalReading, Source
from scaler.sim.policies import TARGET_UTILIZATION, SimSourceFactory, SimulatedQueue

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = ROOT / "bench" / "traces" / "twitter_2021_08_first8d_per_second.csv.gz"
DAY = 86_400
# The Unix time of the trace's t = 0 (the Twitter trace was recorded in August 2021;
# its file gives seconds from its start). The forecast reads the time of day from it.
TRACE_EPOCH = 1_627_776_000.0  # 2021-08-01 00:00 UTC
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any key; these name themselves as local-only.
ACCESS_KEY = "AKIDPREWARMDEMO"
SECRET_KEY = "prewarm-demo-not-a-secret"
# The trigger's arrivalQuery, answered by TraceArrivals (there is no Prometheus in the
# demo; the address is named because the trigger needs one, and never contacted).
PROMETHEUS_ADDRESS = "http://prometheus.demo:9090"
ARRIVAL_QUERY = "sum(rate(demo_messages_sent_total[1m]))"


@dataclass(frozen=True)
class DemoSettings:
    """The fleet and its ScaledObject, in workload seconds (the sped-up clock's):
    KEDA's and the HPA's default periods, a GPU worker's cold start."""

    duration_s: int = 120  # wall seconds of replay
    speed: float = 60.0  # workload seconds per wall second
    start_s: int = 5 * DAY + 14 * 3600 + 50 * 60  # where the slice starts in the trace: day 5, 14:50
    concurrency: int = 2  # messages one worker holds at once
    service_s: float = 20.0
    cold_start_s: float = 300.0
    peak_replicas: float = 8.0  # the busiest minute of the slice's day needs this many at 75 %
    max_replicas: int = 12
    polling_s: float = 30.0  # pollingInterval (KEDA's default)
    hpa_sync_s: float = 15.0  # the HPA's sync period (Kubernetes' default)
    cooldown_s: float = 300.0  # cooldownPeriod (KEDA's default)
    seed: int = 0

    @property
    def queue_length(self) -> float:
        return float(self.concurrency)

    @property
    def replica_throughput(self) -> float:
        """Messages per second one worker carries at the target utilisation."""
        return self.concurrency / self.service_s * TARGET_UTILIZATION

    @property
    def span_s(self) -> int:
        """Workload seconds replayed."""
        return int(self.duration_s * self.speed)


def clock_label(t: float) -> str:
    """A trace time as the day and time of day the forecast sees."""
    day, rest = divmod(int(t), DAY)
    return f"day {day} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


# --- the trace --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoTrace:
    """The slice to replay and the trace's history before it, at one rate scale."""

    name: str
    start_s: int
    slice_counts: np.ndarray  # whole messages to send in each second of the slice
    history: np.ndarray  # messages in each second before the slice (at the same scale)
    gaps: tuple[tuple[float, float], ...]  # missing data in the trace (seconds from its start)
    scale: float

    def counts(self) -> np.ndarray:
        """Arrivals per second from the trace's start to the slice's end."""
        return np.concatenate([self.history, self.slice_counts.astype(float)])


def demo_trace(settings: DemoSettings, trace_path: Path) -> DemoTrace:
    """The trace up to the slice's end, its rate scaled so the busiest minute of the
    slice's day needs `peak_replicas` workers at 75 %, in whole messages (stochastic
    rounding, seeded)."""
    from scaler.sim.traces import Trace, TraceError, load_trace, peak_rate

    trace = load_trace(trace_path)
    start, span = settings.start_s, settings.span_s
    if start < 0 or start >= trace.duration_s:
        raise TraceError(
            f"{trace_path.name}: --start {start} is outside the trace (0..{trace.duration_s - 1} s)"
        )
    counts = trace.counts[: start + span]
    if len(counts) < start + span:
        counts = np.concatenate([counts, np.zeros(start + span - len(counts))])
    day = start // DAY * DAY  # the scale is the slice's day's, whatever part of it is replayed
    peak = peak_rate(Trace(name=trace.name, counts=trace.counts[day : day + DAY], bin_s=1.0))
    scale = settings.peak_replicas * settings.replica_throughput / peak if peak > 0 else 0.0
    # Whole messages, the history too: it is what Prometheus would have recorded had
    # this fleet served the trace on the days before.
    rng = np.random.default_rng(settings.seed)
    whole = np.floor(counts * scale + rng.random(len(counts)))
    name = (
        f"{trace_path.name}, {clock_label(start)}-{clock_label(start + span)[-5:]} "
        f"replayed {settings.speed:g}x"
    )
    return DemoTrace(name, start, whole[start:], whole[:start], trace.gaps, scale)


def initial_replicas(settings: DemoSettings, data: DemoTrace) -> int:
    """Workers Ready when the slice starts (the service was running before it):
    those its first ten minutes need at 75 %."""
    first = data.slice_counts[:600]
    rate = float(first.mean()) if len(first) else 0.0
    return min(settings.max_replicas, math.ceil(rate / settings.replica_throughput))


class TraceArrivals:
    """The trigger's arrivalQuery in the demo. read(): what `sum(rate(...[1m]))`
    over the messages sent would answer (arrivals per second over the last
    minute). history(): the warm start's range query, answered from the trace's
    earlier days at the demo's rate scale (as Prometheus would keep them: no
    points inside the trace's gaps of missing data). Never answers from the
    future: both read `counts` only up to the clock's now."""

    WINDOW_S = 60

    def __init__(self, counts: np.ndarray, clock: Clock, gaps: tuple[tuple[float, float], ...] = ()) -> None:
        self.counts = counts  # arrivals per second from the trace's start (the live part filled as sent)
        self._clock = clock
        self._gaps = gaps

    @property
    def key(self) -> str:
        return "demo/arrivals"

    @property
    def description(self) -> str:
        return "the demo producer's messages (arrivalQuery)"

    def _now(self) -> int:
        return min(len(self.counts), int(self._clock.wall() - TRACE_EPOCH))

    def read(self) -> ArrivalReading:
        t = self._now()
        lo = max(0, t - self.WINDOW_S)
        return ArrivalReading(rate=float(self.counts[lo:t].sum()) / (t - lo) if t > lo else 0.0)

    def history(self, start_wall: float, end_wall: float, step_s: float) -> list[tuple[float, float]]:
        now = self._now()
        cumulative = np.concatenate(([0.0], np.cumsum(self.counts[: max(0, now)])))
        points: list[tuple[float, float]] = []
        wall = start_wall
        while wall <= end_wall:
            t = int(wall - TRACE_EPOCH)
            lo = t - self.WINDOW_S
            if lo >= 0 and t <= now and not any(a < t and b > lo for a, b in self._gaps):
                points.append((wall, float(cumulative[t] - cumulative[lo]) / self.WINDOW_S))
            wall += step_s
        return points

    def close(self) -> None:
        pass


class DemoSources(SourceFactory):
    """The server's sources in the demo: the real ones (SQS through moto), with the
    arrivalQuery answered by TraceArrivals."""

    def __init__(self, arrivals: TraceArrivals, timeout: float = 5.0, failure_ttl: float = 2.0) -> None:
        super().__init__(timeout, failure_ttl=failure_ttl)
        self.arrivals = arrivals

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        return self.arrivals if cfg.forecast.arrival_query is not None else None


class SimDemoSources(SimSourceFactory):
    """The simulator's sources, with the same arrivalQuery (and warm start) as the
    live run's: the simulated Prewarm starts from the same history."""

    def __init__(self, world: SimulatedQueue, clock: ManualClock, arrivals: TraceArrivals) -> None:
        super().__init__(world, clock)
        self.arrivals = arrivals

    def arrival_source(self, cfg: TriggerConfig) -> Source | None:
        return self.arrivals if cfg.forecast.arrival_query is not None else None


# --- the services ---------------------------------------------------------------------


@contextlib.contextmanager
def local_sqs() -> Iterator[tuple[Any, str]]:
    """moto (SQS) in server mode; yields (client, endpoint)."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        yield client, endpoint
    finally:
        moto.stop()


class InProcessScaler:
    """The production server (ScalerServer: gRPC, health, /metrics) on its own
    event loop thread, with the demo's clock and sources injected."""

    def __init__(self, clock: Clock, sources: SourceFactory) -> None:
        from scaler.server import ScalerServer, Settings

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="prewarm-server", daemon=True)
        self.thread.start()

        async def start() -> ScalerServer:
            server = ScalerServer(
                Settings(host=LOOPBACK, port=0, metrics_port=0), clock=clock, sources=sources
            )
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        assert self.server.port is not None and self.server.metrics_port is not None
        self.port: int = self.server.port
        self.metrics_port: int = self.server.metrics_port

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# --- KEDA, over gRPC ------------------------------------------------------------------


class KedaClient:
    """What KEDA's external scaler client sends, counted."""

    def __init__(self, port: int, name: str, metadata: dict[str, str]) -> None:
        import grpc

        from scaler._proto import externalscaler_pb2 as pb
        from scaler._proto import externalscaler_pb2_grpc as pb_grpc

        self.pb = pb
        self.channel = grpc.insecure_channel(f"{LOOPBACK}:{port}")
        self.stub = pb_grpc.ExternalScalerStub(self.channel)
        self.ref = pb.ScaledObjectRef(name=name, namespace="demo", scalerMetadata=metadata)
        self.calls = {"GetMetricSpec": 0, "GetMetrics": 0, "IsActive": 0}
        self.metric_name = ""
        self.target = 1.0

    def metric_spec(self) -> None:
        spec = self.stub.GetMetricSpec(self.ref, timeout=10).metricSpecs[0]
        self.calls["GetMetricSpec"] += 1
        self.metric_name = spec.metricName
        self.target = spec.targetSizeFloat or float(spec.targetSize) or 1.0

    def metric(self) -> float:
        request = self.pb.GetMetricsRequest(scaledObjectRef=self.ref, metricName=self.metric_name)
        values = self.stub.GetMetrics(request, timeout=10).metricValues
        self.calls["GetMetrics"] += 1
        return float(values[0].metricValueFloat or values[0].metricValue) if values else 0.0

    def is_active(self) -> bool:
        result = bool(self.stub.IsActive(self.ref, timeout=10).result)
        self.calls["IsActive"] += 1
        return result

    def close(self) -> None:
        self.channel.close()


@dataclass(frozen=True)
class Scraped:
    """The server's last decision for the object, as its /metrics shows it."""

    winner: str = "-"
    forecast: str = "-"  # its state, "(used)" when in the answer
    floor: float = 0.0  # replicas the forecast asks for
    terms: dict[str, float] = field(default_factory=dict)  # replicas each term asks for


def scraped(port: int, name: str) -> Scraped:
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(f"http://{LOOPBACK}:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return Scraped("?", "?")
    winner, state, used, floor = "-", "-", False, 0.0
    terms: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("name") != name:
                continue
            if sample.name == "prewarm_term_replicas":
                terms[sample.labels.get("term", "?")] = float(sample.value)
            elif sample.name == "prewarm_forecast_floor":
                floor = float(sample.value)
            elif sample.value != 1:
                continue
            elif sample.name == "prewarm_term_winner":
                winner = sample.labels.get("term", "?")
            elif sample.name == "prewarm_forecast_state":
                state = sample.labels.get("state", "?")
            elif sample.name == "prewarm_forecast_used":
                used = True
    return Scraped(winner, state + (" (used)" if used else ""), floor, terms)


# --- the fleet --------------------------------------------------------------------------


@dataclass
class Pod:
    ready_at: float
    idle_since: list[float]  # when each free slot became free (the pod Ready, or its last message done)
    work: list[tuple[float, str]] = field(default_factory=list)  # (done at, receipt handle)


@dataclass
class Pods:
    """The Deployment's pods on the demo clock (pure: no I/O). A pod serves nothing
    until its cold start has passed; a Ready pod holds up to `concurrency`
    messages. Scale-in deletes pods that are not Ready first, then the newest
    (Ready the shortest time, as the ReplicaSet ranks them); a deleted pod that
    holds messages drains (graceful scale-in): it keeps its GPU, and is billed,
    until its last message is done, as the simulator bills draining pods.

    A message starts when its slot could have received it (SQS long polling
    answers at once): the later of its sending and the slot falling free. So the
    demo loop's own latency (a few workload seconds at 60x) is charged neither
    to waits nor to the workers' capacity."""

    concurrency: int
    cold_start_s: float
    pods: list[Pod] = field(default_factory=list)  # the replicas, oldest first
    draining: list[Pod] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return len(self.pods)

    @property
    def billed(self) -> int:
        """Pods holding a GPU: the replicas (starting or Ready) and the draining ones."""
        return len(self.pods) + len(self.draining)

    def ready(self, now: float) -> int:
        return sum(1 for p in self.pods if p.ready_at <= now)

    def starting(self, now: float) -> int:
        return len(self.pods) - self.ready(now)

    def set_replicas(self, n: int, now: float) -> None:
        if n > len(self.pods):
            ready_at = now + self.cold_start_s
            self.pods += [Pod(ready_at, [ready_at] * self.concurrency) for _ in range(n - len(self.pods))]
            return
        for _ in range(len(self.pods) - n):
            starting = [p for p in self.pods if p.ready_at > now]
            pod = starting[-1] if starting else self.pods[-1]
            self.pods.remove(pod)
            if pod.ready_at <= now and pod.work:
                self.draining.append(pod)

    def finished(self, now: float) -> list[str]:
        """The receipt handles of messages done by `now`; drained pods go."""
        done: list[str] = []
        for pod in self.pods + self.draining:
            for t, h in pod.work:
                if t <= now:
                    done.append(h)
                    pod.idle_since.append(t)
            pod.work = [(t, h) for t, h in pod.work if t > now]
        self.draining = [p for p in self.draining if p.work]
        return done

    def free_slots(self, now: float) -> int:
        return sum(len(p.idle_since) for p in self.pods if p.ready_at <= now)

    def assign(self, handle: str, sent: float, now: float, service_s: float) -> float:
        """A message received at `now` goes to the Ready pod's slot free the longest
        (long-polling consumers are answered in turn); returns when it started."""
        ready = [p for p in self.pods if p.ready_at <= now and p.idle_since]
        pod = min(ready, key=lambda p: (min(p.idle_since), len(p.work)))
        since = min(pod.idle_since)
        pod.idle_since.remove(since)
        start = max(sent, since)
        pod.work.append((start + service_s, handle))
        return start


@dataclass
class Fleet:
    """The pods over real SQS: Ready workers receive messages, hold each for the
    service time and delete it. Waits are measured on the demo clock."""

    client: Any
    queue_url: str
    settings: DemoSettings
    clock: Clock
    pods: Pods = field(init=False)
    waits: list[tuple[float, float, bool]] = field(default_factory=list)  # (sent, wait, cold)
    unserved: list[tuple[float, float, bool]] = field(default_factory=list)  # left at the end
    # Messages sent and not received yet (the fleet is the queue's only consumer, and
    # holds what it receives for less than the visibility timeout): no empty receives.
    queued: int = 0

    def __post_init__(self) -> None:
        self.pods = Pods(self.settings.concurrency, self.settings.cold_start_s)

    def step(self, now: float) -> None:
        done = self.pods.finished(now)
        for i in range(0, len(done), 10):
            entries = [{"Id": str(j), "ReceiptHandle": h} for j, h in enumerate(done[i : i + 10])]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        free = min(self.pods.free_slots(now), self.queued)
        while free > 0:
            got = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, free),
                VisibilityTimeout=600,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            for message in got:
                body = json.loads(message["Body"])
                sent = body["sent"]
                started = self.pods.assign(message["ReceiptHandle"], sent, now, self.settings.service_s)
                self.waits.append((sent, started - sent, body["cold"]))
            self.queued -= len(got)
            free -= len(got)
            if len(got) < 10:
                break

    def leftovers(self) -> None:
        """Messages still queued at the end count as waiting until now (as the
        simulator counts work it never served)."""
        while True:
            left = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
            ).get("Messages", [])
            if not left:
                return
            now = self.clock.monotonic()
            for message in left:
                body = json.loads(message["Body"])
                self.unserved.append((body["sent"], now - body["sent"], body["cold"]))


def trigger_metadata(settings: DemoSettings, endpoint: str, queue_url: str) -> dict[str, str]:
    return {
        "scalerAddress": "prewarm.demo:6000",
        "source": "sqs",
        "queueURL": queue_url,
        "awsRegion": REGION,
        "awsEndpoint": endpoint,
        "awsAccessKeyID": ACCESS_KEY,
        "awsSecretAccessKey": SECRET_KEY,
        "queueLength": f"{settings.queue_length:g}",
        "coldStartSeconds": f"{min(3600.0, max(10.0, settings.cold_start_s)):g}",
        "replicaThroughput": f"{settings.replica_throughput:.6g}",
        "prometheusServerAddress": PROMETHEUS_ADDRESS,
        "arrivalQuery": ARRIVAL_QUERY,
    }


@dataclass
class Record:
    """The fleet once per wall second (`speed` workload seconds)."""

    t: float  # workload seconds since the slice's start
    clock: str
    arrivals: int  # messages sent since the last record
    backlog: int  # messages waiting (ApproximateNumberOfMessages)
    replicas: int
    ready: int
    starting: int
    draining: int
    active: bool
    winner: str
    forecast: str
    floor: float
    wake: bool  # the forecast's term is winning with nothing waiting


@dataclass
class ScaleEvent:
    """A replica change KEDA or the HPA made, and the server's decision behind it."""

    t: float
    clock: str
    by: str  # "KEDA" (activation, cooldown) or "HPA"
    before: int
    after: int
    winner: str
    backlog: int  # messages waiting when it was decided
    terms: dict[str, float]
    forecast: str

    @property
    def forecast_wake(self) -> bool:
        """Up, decided by the forecast's term, where the queue's term alone asked
        for no more than the replicas there were: ahead of the backlog."""
        queue = self.terms.get("queue", 0.0)
        return self.after > self.before and self.winner == "forecast" and queue <= self.before

    def line(self) -> str:
        asks = ", ".join(f"{k} {v:.3g}" for k, v in sorted(self.terms.items()))
        why = f"winner {self.winner} ({asks})" if self.by == "HPA" else "IsActive"
        mark = "  <- the forecast's wake, ahead of the backlog" if self.forecast_wake else ""
        return (
            f"{self.clock} {self.by}: {self.before} -> {self.after} replicas, {why}, "
            f"{self.backlog} waiting{mark}"
        )


def backlog(client: Any, queue_url: str) -> int:
    attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def run_live(settings: DemoSettings, data: DemoTrace, live: bool) -> dict[str, Any]:
    """The live run; returns what the summary and the PNG need."""
    from scaler.sim.keda import Hpa, ScaledObjectLoop

    start, span = settings.start_s, settings.span_s
    end = start + span
    counts = np.concatenate([data.history, np.zeros(span)])
    # Paused until the fleet is set up and KEDA's first poll has warm-started the forecast.
    clock = ScaledClock(settings.speed, start=float(start), start_wall=TRACE_EPOCH + start, paused=True)
    records: list[Record] = []
    events: list[ScaleEvent] = []
    with local_sqs() as (client, endpoint):
        queue_url = client.create_queue(QueueName="prewarm-demo")["QueueUrl"]
        scaler = InProcessScaler(clock, DemoSources(TraceArrivals(counts, clock, data.gaps)))
        keda = KedaClient(scaler.port, "workers", trigger_metadata(settings, endpoint, queue_url))
        fleet = Fleet(client, queue_url, settings, clock)
        loop = ScaledObjectLoop(min_replicas=0, cooldown_s=settings.cooldown_s)
        # No behavior, as KEDA creates the HPA by default: Kubernetes' legacy rules.
        hpa = Hpa(1, settings.max_replicas)
        view = LiveView(data.name, settings) if live else None
        billed = 0.0
        try:
            keda.metric_spec()
            keda.is_active()  # the warm start's range query runs on the first evaluation
            clock.resume()
            first = initial_replicas(settings, data)
            fleet.pods.set_replicas(first, start - settings.cold_start_s - 1)
            if first:
                loop.last_active = float(start)
            sent_to = start
            # The HPA syncs 5 s after KEDA's poll, as simulated (HPA_PHASE_S).
            next_poll, next_sync = float(start), float(start) + 5
            next_record = start + settings.speed
            last = float(start)
            active = False
            seen = Scraped()
            sent_since = 0

            def scale(by: str, before: int, after: int, now: float) -> None:
                event = ScaleEvent(
                    t=now - start,
                    clock=clock_label(now),
                    by=by,
                    before=before,
                    after=after,
                    winner=seen.winner,
                    backlog=backlog(client, queue_url),
                    terms=dict(seen.terms),
                    forecast=seen.forecast,
                )
                events.append(event)
                if view is not None:
                    view.event(event)
                else:
                    print(event.line(), flush=True)
                fleet.pods.set_replicas(after, now)

            while True:
                now = clock.monotonic()
                due = min(int(now), end)
                if due > sent_to:  # the producer: the slice's messages up to now
                    part = data.slice_counts[sent_to - start : due - start]
                    counts[sent_to:due] = part
                    n = int(part.sum())
                    body = json.dumps({"sent": now, "cold": fleet.pods.starting(now) > 0})
                    for i in range(0, n, 10):
                        entries = [{"Id": str(j), "MessageBody": body} for j in range(min(10, n - i))]
                        client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                    sent_to, sent_since = due, sent_since + n
                    fleet.queued += n
                if now >= end:
                    break
                if now >= next_poll:  # KEDA's poll: activation, cooldown
                    next_poll = max(next_poll + settings.polling_s, now)
                    active = keda.is_active()
                    seen = scraped(scaler.metrics_port, "workers")
                    before = fleet.pods.replicas
                    after = loop.poll(now, before, active)
                    if after != before:
                        scale("KEDA", before, after, now)
                if now >= next_sync:  # the HPA's sync: GetMetrics against the target
                    next_sync = max(next_sync + settings.hpa_sync_s, now)
                    if fleet.pods.replicas > 0:
                        value = keda.metric()
                        seen = scraped(scaler.metrics_port, "workers")
                        before = fleet.pods.replicas
                        after = hpa.sync(now, before, [(value, keda.target)])
                        if after != before:
                            scale("HPA", before, after, now)
                fleet.step(now)
                now = clock.monotonic()
                billed += fleet.pods.billed * (now - last)
                last = now
                if now >= next_record:
                    next_record += settings.speed
                    waiting = backlog(client, queue_url)
                    record = Record(
                        t=now - start,
                        clock=clock_label(now),
                        arrivals=sent_since,
                        backlog=waiting,
                        replicas=fleet.pods.replicas,
                        ready=fleet.pods.ready(now),
                        starting=fleet.pods.starting(now),
                        draining=len(fleet.pods.draining),
                        active=active,
                        winner=seen.winner,
                        forecast=seen.forecast,
                        floor=seen.floor,
                        wake=seen.winner == "forecast" and waiting == 0,
                    )
                    sent_since = 0
                    records.append(record)
                    if view is not None:
                        view.update(record)
                    elif len(records) % 10 == 0:
                        print(
                            f"{record.clock} arrivals={record.arrivals:3d} backlog={record.backlog:4d} "
                            f"replicas={record.replicas} (ready {record.ready}, draining {record.draining}) "
                            f"active={active} winner={record.winner} forecast={record.forecast}",
                            flush=True,
                        )
                time.sleep(0.01)
            fleet.leftovers()
        finally:
            if view is not None:
                view.stop()
            keda.close()
            scaler.stop()
        calls = dict(keda.calls)
    return {
        "records": records,
        "events": events,
        "waits": fleet.waits,
        "unserved": fleet.unserved,
        "calls": calls,
        "billed_pod_seconds": billed,
        "sent": int(data.slice_counts.sum()),
        "slice": data.name,
    }


class LiveView:
    """The rich live table (the last minutes of the run) and the last scale events."""

    def __init__(self, slice_name: str, settings: DemoSettings) -> None:
        from rich.console import Console
        from rich.live import Live

        self.rows: list[Record] = []
        self.events: list[ScaleEvent] = []
        self.slice_name = slice_name
        self.settings = settings
        self.live = Live(self._view(), console=Console(), refresh_per_second=4)
        self.live.start()

    def _view(self) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        s = self.settings
        table = Table(
            title=f"Prewarm demo: {self.slice_name}\ncold start {s.cold_start_s:g} s, "
            f"{s.concurrency} messages per worker, {s.service_s:g} s each",
            caption=f"one clock {s.speed:g}x for the real gRPC server, moto SQS and the emulated "
            f"KEDA/HPA; arrivals per {s.speed:g} s; forecast: its state and the replicas it asks for; "
            "green: the forecast's term winning with nothing waiting",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            padding=(0, 0),
        )
        columns = ["time", "arrivals", "backlog", "replicas", "starting", "draining", "active"]
        for column in [*columns, "winner", "forecast"]:
            table.add_column(column, justify="right" if column in columns[1:] else "left", no_wrap=True)
        for r in self.rows[-10:]:  # with the events, it fits a 24-line terminal
            state = r.forecast.split(" ")[0]
            forecast = f"{state} {math.ceil(r.floor)}" if "(used)" in r.forecast else state
            counts = (r.arrivals, r.backlog, r.replicas, r.starting, r.draining)
            active = "yes" if r.active else "no"
            row = (r.clock[-5:], *map(str, counts), active, r.winner, forecast)
            table.add_row(*row, style="bold green" if r.wake else None)
        lines = [Text(e.line(), style="bold green" if e.forecast_wake else "") for e in self.events[-4:]]
        return Group(table, *lines)

    def update(self, record: Record) -> None:
        self.rows.append(record)
        self.live.update(self._view())

    def event(self, event: ScaleEvent) -> None:
        self.events.append(event)
        self.live.update(self._view())

    def stop(self) -> None:
        self.live.stop()


# --- the summary --------------------------------------------------------------------------


def live_results(run: dict[str, Any], settings: DemoSettings) -> dict[str, Any]:
    """The live run's figures, defined as the simulator's (scaler.sim.run.results):
    billed GPU time over the slice (draining pods included), p95 over every message
    (those still queued at the end count their wait so far), and a cold-start
    wait is a message that waited >= 1 s having arrived while a pod was starting."""
    waits = run["waits"] + run["unserved"]
    wait = np.array([w for _, w, _ in waits]) if waits else np.zeros(1)
    events: list[ScaleEvent] = run["events"]
    return {
        "policy": "prewarm (live)",
        "gpu_minutes": run["billed_pod_seconds"] / 60,
        "wait_p95_s": float(np.percentile(wait, 95)),
        "cold_start_waits": sum(1 for _, w, cold in waits if cold and w >= 1.0),
        "served": len(run["waits"]),
        "arrivals": run["sent"],
        "forecast_wakes": sum(1 for e in events if e.forecast_wake),
        "scale_ups_by_winner": {
            w: sum(1 for e in events if e.after > e.before and e.by == "HPA" and e.winner == w)
            for w in sorted({e.winner for e in events if e.by == "HPA"})
        },
    }


def simulated(
    settings: DemoSettings, data: DemoTrace, first: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prewarm (with the live run's warm start) and stock KEDA in the simulator, on
    the same messages and settings."""
    from scaler.sim.policies import PolicySpec, PrewarmTrigger
    from scaler.sim.run import Scenario, keda_queue_policy, results, simulate
    from scaler.sim.traces import Trace
    from scaler.sim.world import ColdStart, ServiceModel, World, WorldConfig

    trace = Trace(name=data.name, counts=data.slice_counts.astype(float), bin_s=1.0)
    world = WorldConfig(
        concurrency=settings.concurrency,
        service=ServiceModel("constant", settings.service_s),
        cold_start=ColdStart("constant", settings.cold_start_s),
        drain_tail_s=600,
        seed=settings.seed,
    )
    scenario = Scenario(
        trace,
        world,
        slo_s=60.0,
        max_replicas=settings.max_replicas,
        initial_replicas=first,
        wall_start=TRACE_EPOCH + settings.start_s,
    )
    metadata = trigger_metadata(
        settings, "http://127.0.0.1:9", "http://127.0.0.1:9/000000000000/prewarm-demo"
    )
    full = data.counts()

    def prewarm_trigger(w: World, clock: ManualClock) -> list[Any]:
        arrivals = TraceArrivals(full, clock, data.gaps)
        return [PrewarmTrigger(w, clock, metadata, sources=SimDemoSources(w, clock, arrivals))]

    prewarm = PolicySpec(
        name="prewarm (simulated)",
        description="Prewarm, the demo's trigger, warm-started from the same history",
        make_triggers=prewarm_trigger,
        max_replicas=settings.max_replicas,
    )
    keda = keda_queue_policy(settings.queue_length, 0, settings.max_replicas)
    rows = []
    runs = {}
    for spec, name in ((prewarm, prewarm.name), (keda, "stock KEDA (simulated)")):
        spec = replace(
            spec,
            name=name,
            polling_s=settings.polling_s,
            hpa_sync_s=settings.hpa_sync_s,
            cooldown_s=settings.cooldown_s,
            behavior=None,  # as the live run's HPA: none set, KEDA's default
        )
        run = simulate(scenario, spec)
        row = results(scenario, run)
        row["gpu_minutes"] = row["gpu_hours"] * 60
        rows.append(row)
        runs[spec.name] = run
    return rows, runs


def burst_start(counts: np.ndarray) -> int | None:
    """Seconds into the slice where its busiest burst begins: the first of the
    minutes leading up to the busiest one with at least half its arrivals. None
    when the busiest minute is not twice the slice's median (no burst)."""
    minutes = len(counts) // 60
    if minutes == 0:
        return None
    per_minute = counts[: minutes * 60].reshape(minutes, 60).sum(axis=1)
    peak = int(per_minute.argmax())
    if per_minute[peak] <= 0 or per_minute[peak] < 2 * float(np.median(per_minute)):
        return None
    first = peak
    while first > 0 and per_minute[first - 1] >= per_minute[peak] / 2:
        first -= 1
    return first * 60


@dataclass(frozen=True)
class Burst:
    """The slice's busiest burst, what the forecast did before it and when stock
    KEDA (simulated) first scaled up for it."""

    t: float  # seconds into the slice
    clock: str
    forecast_ahead: list[ScaleEvent]  # the forecast's scale-ups within two cold starts before it
    keda_first_up: float | None  # seconds into the slice


def the_burst(
    settings: DemoSettings, data: DemoTrace, run: dict[str, Any], keda_run: Any | None
) -> Burst | None:
    start = burst_start(data.slice_counts)
    if start is None:
        return None
    lead = 2 * settings.cold_start_s
    events: list[ScaleEvent] = run["events"]
    ahead = [e for e in events if e.forecast_wake and start - lead <= e.t < start]
    keda_up = None
    if keda_run is not None:
        ups = [
            t for t, before, after in keda_run.world.replica_changes if after > before and t >= start - lead
        ]
        keda_up = float(ups[0]) if ups else None
    return Burst(float(start), clock_label(settings.start_s + start), ahead, keda_up)


def burst_lines(burst: Burst | None, settings: DemoSettings) -> list[str]:
    if burst is None:
        return []
    lines = [f"The burst at {burst.clock} (the slice's busiest minutes):"]
    cold = settings.cold_start_s
    if burst.forecast_ahead:
        ready = [clock_label(settings.start_s + e.t + cold)[-5:] for e in burst.forecast_ahead]
        ups = ", ".join(
            f"{e.before} -> {e.after} at {e.clock[-5:]} (Ready {at})"
            for e, at in zip(burst.forecast_ahead, ready, strict=True)
        )
        lines.append(
            f"- the forecast scaled the fleet up ahead of it, the queue's term asking for no more "
            f"replicas than there were: {ups};"
        )
    else:
        lines.append("- the forecast did not scale the fleet up ahead of it;")
    if burst.keda_first_up is not None:
        up = settings.start_s + burst.keda_first_up
        lines.append(
            f"- stock KEDA (simulated), scaling on its backlog alone, first scaled up at "
            f"{clock_label(up)[-5:]}, its new pods Ready from {clock_label(up + cold)[-5:]}."
        )
    return lines


def summary_text(
    live: dict[str, Any], rows: list[dict[str, Any]], run: dict[str, Any], burst: list[str]
) -> str:
    lines = [
        "| run | GPU-minutes | p95 wait | requests that waited on a cold start |",
        "|---|---:|---:|---:|",
        f"| {live['policy']} | {live['gpu_minutes']:.1f} | {live['wait_p95_s']:.1f} s "
        f"| {live['cold_start_waits']} |",
    ]
    for row in rows:
        lines.append(
            f"| {row['policy']} | {row['gpu_minutes']:.1f} | {row['wait_p95_s']:.1f} s "
            f"| {row['cold_start_waits']:.0f} |"
        )
    lines.append("")
    lines += burst
    lines.append(
        f"{live['arrivals']} messages sent, {live['served']} served; the server answered "
        + ", ".join(f"{n} {name}" for name, n in run["calls"].items())
        + ". GPU-minutes bill draining pods until their last message is done. Stock KEDA is the "
        "simulator's run on the same messages and settings (same KEDA/HPA emulation)."
    )
    return "\n".join(lines)


def plot(path: Path, run: dict[str, Any], data: DemoTrace, sim_runs: dict[str, Any], speed: float) -> None:
    """The live run's records and the simulated runs at the same moments."""
    from scaler.sim.report import plot_timeline

    records: list[Record] = run["records"]
    at = np.array([min(int(r.t), len(data.slice_counts) - 1) for r in records], dtype=int)
    series = {
        "prewarm (live)": {
            "waiting": np.array([r.backlog for r in records], dtype=float),
            "pods": np.array([r.replicas for r in records], dtype=float),
        }
    }
    for name, sim in sim_runs.items():
        series[name] = {"waiting": sim.world.rec_waiting[at], "pods": sim.world.rec_pods[at]}
    arrivals = np.array([r.arrivals for r in records], dtype=float) / speed
    plot_timeline(path, f"Prewarm demo: {run['slice']}", arrivals, series, (60.0 / speed, "minutes"))


def main(argv: list[str] | None = None) -> int:
    from scaler.sim.traces import TraceError

    defaults = DemoSettings()
    p = argparse.ArgumentParser(prog="python -m scaler.demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--duration", type=whole(5), default=defaults.duration_s, help="wall seconds of replay (default 120)"
    )
    p.add_argument(
        "--speed", type=positive, default=defaults.speed, help="workload seconds per wall second (default 60)"
    )
    p.add_argument(
        "--trace",
        default=str(DEFAULT_TRACE),
        help="a trace under bench/traces/ (default: Twitter, per second)",
    )
    p.add_argument(
        "--start",
        type=whole(0),
        default=defaults.start_s,
        help=f"the slice's start in the trace, seconds (default {defaults.start_s}, "
        f"{clock_label(defaults.start_s)})",
    )
    p.add_argument(
        "--cold-start",
        type=number(0),
        default=defaults.cold_start_s,
        help="seconds from pod creation to Ready (default 300)",
    )
    p.add_argument("--out", default="demo", help="folder for demo.png and summary.json (default ./demo)")
    p.add_argument("--no-live", action="store_true", help="print a line every 10 s instead of the live view")
    args = p.parse_args(argv)
    settings = replace(
        defaults, duration_s=args.duration, speed=args.speed, start_s=args.start, cold_start_s=args.cold_start
    )
    try:
        data = demo_trace(settings, Path(args.trace))
    except (TraceError, OSError) as exc:
        p.error(str(exc))
    live = not args.no_live and sys.stdout.isatty()
    import logging

    logging.getLogger().addHandler(logging.NullHandler())
    run = run_live(settings, data, live)
    figures = live_results(run, settings)
    rows, sim_runs = simulated(settings, data, initial_replicas(settings, data))
    burst = the_burst(settings, data, run, sim_runs.get("stock KEDA (simulated)"))
    text = summary_text(figures, rows, run, burst_lines(burst, settings))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(out / "demo.png", run, data, sim_runs, settings.speed)
    summary = {
        "live": figures,
        "simulated": [
            {k: r[k] for k in ("policy", "gpu_minutes", "wait_p95_s", "cold_start_waits", "peak_replicas")}
            | {"decision_winners": r.get("decision_winners"), "forecast_states": r.get("forecast_states")}
            for r in rows
        ],
        "calls": run["calls"],
        "max_replicas_live": max((r.replicas for r in run["records"]), default=0),
        "events": [asdict(e) | {"forecast_wake": e.forecast_wake} for e in run["events"]],
        "records": [asdict(r) for r in run["records"]],
        "burst": asdict(burst) if burst is not None else None,
        "settings": asdict(settings),
        "rate_scale": data.scale,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print()
    print(text)
    print(f"\nPNG of the run: {out / 'demo.png'}; figures: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
