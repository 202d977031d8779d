"""`make demo` (`python -m scaler.demo`): watch Prewarm scale something, live.

Starts the real server (`python -m scaler serve --port 0`, the port read from its
"serving" log line), a local SQS (moto in server mode), and a simulated fleet of
GPU workers. The fleet's KEDA and HPA are the simulator's (scaler.sim.keda:
ScaledObjectLoop, Hpa) and talk to the server over gRPC as KEDA does:
GetMetricSpec, GetMetrics for each HPA sync, IsActive for each poll. A producer
replays a slice of a bundled trace as real SQS messages; Ready workers receive
them, hold each for its service time and delete it. The scaler only inspects
the queue.

Time: the real clock, with a short cold start and KEDA/HPA periods to match
(docs/decisions.md, "Demo"), and the trace slice replayed `--speed` times faster
than it was recorded. At the end: a summary against stock KEDA on the same slice
(the simulator's run of both, same world settings) and a PNG of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = ROOT / "bench" / "traces" / "azure_llm_2023_code_per_second.csv"
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any key; these name themselves as local-only.
ACCESS_KEY = "AKIDPREWARMDEMO"
SECRET_KEY = "prewarm-demo-not-a-secret"


@dataclass(frozen=True)
class DemoSettings:
    """The fleet and its ScaledObject: KEDA's periods shrunk with the cold start."""

    duration_s: int = 120  # wall seconds of replay
    speed: float = 30.0  # trace seconds replayed per wall second
    start_s: int = 0  # where the slice starts in the trace
    concurrency: int = 2  # messages one worker holds at once
    service_s: float = 2.0
    cold_start_s: float = 10.0
    mean_replicas: float = 3.0  # the slice's mean rate needs this many at 75 % (its bursts more)
    max_replicas: int = 8
    polling_s: float = 2.0  # pollingInterval
    hpa_sync_s: float = 3.0
    cooldown_s: float = 15.0  # cooldownPeriod
    scale_down_window_s: float = 15.0  # behavior.scaleDown.stabilizationWindowSeconds
    seed: int = 0

    @property
    def queue_length(self) -> float:
        return float(self.concurrency)


# --- the services ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ScalerProcess:
    """`python -m scaler serve` on an OS-chosen port, read from its JSON "serving" line."""

    def __init__(self, metrics_port: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scaler",
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                "0",
                "--metrics-port",
                str(metrics_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PREWARM_LOG_FORMAT": "json"},
            text=True,
        )
        self.metrics_port = metrics_port
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the scaler exited:\n" + "".join(self.lines[-20:]))
            for line in list(self.lines):
                fields = json.loads(line) if line.startswith("{") else {}
                if fields.get("message") == "serving":
                    return int(fields["grpc_port"])
            time.sleep(0.05)
        raise RuntimeError("the scaler did not log 'serving' in time:\n" + "".join(self.lines[-20:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()


@contextlib.contextmanager
def services() -> Iterator[tuple[Any, str, ScalerProcess, int]]:
    """moto (SQS) and the scaler; yields (sqs client, endpoint, scaler, gRPC port)."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    moto.start()
    scaler: ScalerProcess | None = None
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
        scaler = ScalerProcess(free_port())
        yield client, endpoint, scaler, scaler.port()
    finally:
        if scaler is not None:
            scaler.stop()
        moto.stop()


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


def scraped(port: int, name: str) -> tuple[str, str]:
    """(winning term, forecast state and whether used) from the server's /metrics."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(f"http://{LOOPBACK}:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return "?", "?"
    winner, state, used = "-", "-", False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("name") != name or sample.value != 1:
                continue
            if sample.name == "prewarm_term_winner":
                winner = sample.labels.get("term", "?")
            elif sample.name == "prewarm_forecast_state":
                state = sample.labels.get("state", "?")
            elif sample.name == "prewarm_forecast_used":
                used = True
    return winner, state + (" (used)" if used else "")


# --- the fleet --------------------------------------------------------------------------


@dataclass
class Fleet:
    """Worker pods: not Ready until their cold start has passed; a Ready pod holds
    up to `concurrency` messages, each for the service time, then deletes it."""

    client: Any
    queue_url: str
    settings: DemoSettings
    starting: list[float] = field(default_factory=list)  # ready_at, wall monotonic
    ready: int = 0
    in_flight: list[tuple[float, str]] = field(default_factory=list)  # (done_at, receipt handle)
    waits: list[tuple[float, float]] = field(default_factory=list)  # (sent, wait)
    unserved: list[tuple[float, float]] = field(default_factory=list)  # left at the end: (sent, waited)

    @property
    def pods(self) -> int:
        return self.ready + len(self.starting)

    def set_replicas(self, n: int, now: float) -> None:
        if n > self.pods:
            self.starting += [now + self.settings.cold_start_s] * (n - self.pods)
            return
        remove = self.pods - n
        drop = min(remove, len(self.starting))
        if drop:
            del self.starting[len(self.starting) - drop :]  # not-Ready pods go first
        self.ready -= remove - drop  # in-flight work finishes (graceful scale-in)

    def step(self, now: float) -> None:
        while self.starting and self.starting[0] <= now:
            self.starting.pop(0)
            self.ready += 1
        done = [h for t, h in self.in_flight if t <= now]
        self.in_flight = [(t, h) for t, h in self.in_flight if t > now]
        for i in range(0, len(done), 10):
            entries = [{"Id": str(j), "ReceiptHandle": h} for j, h in enumerate(done[i : i + 10])]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        free = self.ready * self.settings.concurrency - len(self.in_flight)
        while free > 0:
            got = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, free),
                VisibilityTimeout=max(30, int(self.settings.service_s * 4)),
                WaitTimeSeconds=0,
            ).get("Messages", [])
            taken = time.time()
            for message in got:
                sent = float(json.loads(message["Body"])["sent"])
                self.waits.append((sent, max(0.0, taken - sent)))
                self.in_flight.append((now + self.settings.service_s, message["ReceiptHandle"]))
            free -= len(got)
            if len(got) < 10:
                break


def demo_counts(settings: DemoSettings, trace_path: Path) -> tuple[np.ndarray, str]:
    """Messages to send in each wall second: the trace slice, `speed` trace seconds
    per wall second, scaled so its mean rate needs `mean_replicas`."""
    from scaler.sim.traces import load_trace

    trace = load_trace(trace_path)
    span = int(settings.duration_s * settings.speed)
    counts = trace.counts[settings.start_s : settings.start_s + span]
    if len(counts) < span:
        counts = np.concatenate([counts, np.zeros(span - len(counts))])
    per_second = counts.reshape(settings.duration_s, -1).sum(axis=1) if settings.speed >= 1 else counts
    per_replica = settings.concurrency / settings.service_s * 0.75
    mean = float(per_second.mean())
    scale = settings.mean_replicas * per_replica / mean if mean > 0 else 0.0
    rng = np.random.default_rng(settings.seed)
    scaled = per_second * scale
    whole = np.floor(scaled + rng.random(len(scaled)))  # stochastic rounding: whole messages
    name = (
        f"{trace_path.name}, {settings.start_s / 60:g}-{(settings.start_s + span) / 60:g} min "
        f"replayed {settings.speed:g}x"
    )
    return whole, name


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
        "coldStartSeconds": f"{max(10.0, settings.cold_start_s):g}",
        "replicaThroughput": f"{settings.concurrency / settings.service_s * 0.75:g}",
    }


@dataclass
class Record:
    t: int
    arrivals: int
    backlog: int
    replicas: int
    ready: int
    starting: int
    active: bool
    winner: str
    forecast: str


def run_live(settings: DemoSettings, trace_path: Path, live: bool) -> dict[str, Any]:
    """The live run; returns what the summary and the PNG need."""
    from scaler.sim.keda import Behavior, Hpa, ScaledObjectLoop

    counts, slice_name = demo_counts(settings, trace_path)
    records: list[Record] = []
    with services() as (client, endpoint, scaler, port):
        queue_url = client.create_queue(QueueName="prewarm-demo")["QueueUrl"]
        keda = KedaClient(port, "workers", trigger_metadata(settings, endpoint, queue_url))
        fleet = Fleet(client, queue_url, settings)
        loop = ScaledObjectLoop(min_replicas=0, cooldown_s=settings.cooldown_s)
        hpa = Hpa(1, settings.max_replicas, Behavior(scale_down=scale_down_rules(settings)))
        view = LiveView(slice_name, settings) if live else None
        try:
            keda.metric_spec()
            start = time.monotonic()
            wall0 = time.time()
            active = False
            winner = forecast = "-"
            next_poll = next_sync = 0.0
            for second in range(settings.duration_s):
                sent_at = time.time()
                body = json.dumps({"sent": sent_at})
                n = int(counts[second])
                for i in range(0, n, 10):
                    entries = [{"Id": str(j), "MessageBody": body} for j in range(min(10, n - i))]
                    client.send_message_batch(QueueUrl=queue_url, Entries=entries)
                tick_end = start + second + 1
                while True:
                    now = time.monotonic()
                    elapsed = now - start
                    if elapsed >= next_poll:  # KEDA's poll: activation, cooldown
                        next_poll += settings.polling_s
                        active = keda.is_active()
                        fleet.set_replicas(loop.poll(elapsed, fleet.pods, active), now)
                    if elapsed >= next_sync:  # the HPA's sync: GetMetrics against the target
                        next_sync += settings.hpa_sync_s
                        if fleet.pods > 0:
                            value = keda.metric()
                            fleet.set_replicas(hpa.sync(elapsed, fleet.pods, [(value, keda.target)]), now)
                        winner, forecast = scraped(scaler.metrics_port, "workers")
                    fleet.step(now)
                    if now >= tick_end:
                        break
                    time.sleep(min(0.1, max(0.0, tick_end - time.monotonic())))
                attrs = client.get_queue_attributes(
                    QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                record = Record(
                    second,
                    n,
                    int(attrs["ApproximateNumberOfMessages"]),
                    fleet.pods,
                    fleet.ready,
                    len(fleet.starting),
                    active,
                    winner,
                    forecast,
                )
                records.append(record)
                if view is not None:
                    view.update(record)
                elif second % 10 == 0:
                    print(
                        f"t={second:4d}s arrivals={n:3d} backlog={record.backlog:4d} "
                        f"replicas={record.replicas} "
                        f"(ready {record.ready}) active={active} winner={winner} forecast={forecast}",
                        flush=True,
                    )
            # Messages still queued at the end count as waiting until now (as the simulator
            # counts work it never served).
            while True:
                left = client.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
                ).get("Messages", [])
                if not left:
                    break
                for message in left:
                    sent = float(json.loads(message["Body"])["sent"])
                    fleet.unserved.append((sent, time.time() - sent))
        finally:
            if view is not None:
                view.stop()
            keda.close()
        calls = dict(keda.calls)
    return {
        "records": records,
        "counts": counts,
        "waits": fleet.waits,
        "unserved": fleet.unserved,
        "calls": calls,
        "slice": slice_name,
        "wall0": wall0,
    }


def scale_down_rules(settings: DemoSettings) -> Any:
    """Kubernetes' default scale-down policy with the demo's stabilization window."""
    from scaler.sim.keda import DEFAULT_SCALE_DOWN, ScalingRules

    return ScalingRules(settings.scale_down_window_s, DEFAULT_SCALE_DOWN.policies, DEFAULT_SCALE_DOWN.select)


class LiveView:
    """The rich live table: the last seconds of the run."""

    def __init__(self, slice_name: str, settings: DemoSettings) -> None:
        from rich.console import Console
        from rich.live import Live

        self.rows: list[Record] = []
        self.slice_name = slice_name
        self.settings = settings
        self.live = Live(self._table(), console=Console(), refresh_per_second=4)
        self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        s = self.settings
        table = Table(
            title=f"Prewarm demo: {self.slice_name}; cold start {s.cold_start_s:g} s, "
            f"{s.concurrency} messages per worker, {s.service_s:g} s each",
            caption="real gRPC server + moto SQS; KEDA/HPA emulated (scaler.sim.keda)",
        )
        columns = (
            "t",
            "arrivals",
            "backlog",
            "replicas",
            "ready",
            "starting",
            "active",
            "winner",
            "forecast",
        )
        for column in columns:
            table.add_column(column, justify="left" if column in ("winner", "forecast") else "right")
        for r in self.rows[-15:]:
            table.add_row(
                f"{r.t} s",
                str(r.arrivals),
                str(r.backlog),
                str(r.replicas),
                str(r.ready),
                str(r.starting),
                "yes" if r.active else "no",
                r.winner,
                r.forecast,
            )
        return table

    def update(self, record: Record) -> None:
        self.rows.append(record)
        self.live.update(self._table())

    def stop(self) -> None:
        self.live.stop()


# --- the summary --------------------------------------------------------------------------


def live_results(run: dict[str, Any], settings: DemoSettings) -> dict[str, Any]:
    """The live run's figures, defined as the simulator's (scaler.sim.run.results)."""
    records: list[Record] = run["records"]
    starting = np.array([r.starting for r in records])
    waits = run["waits"] + run["unserved"]
    wait = np.array([w for _, w in waits]) if waits else np.zeros(1)
    cold = 0
    for sent, w in waits:
        second = min(len(starting) - 1, max(0, int(sent - run["wall0"])))
        if w >= 1.0 and starting[second] > 0:
            cold += 1
    return {
        "policy": "prewarm (live)",
        "gpu_minutes": sum(r.replicas for r in records) / 60,
        "wait_p95_s": float(np.percentile(wait, 95)),
        "cold_start_waits": cold,
        "served": len(run["waits"]),
        "arrivals": int(run["counts"].sum()),
    }


def simulated(
    settings: DemoSettings, counts: np.ndarray, name: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prewarm and stock KEDA in the simulator on the same slice and settings."""
    from dataclasses import replace

    from scaler.sim.keda import Behavior
    from scaler.sim.run import Scenario, keda_queue_policy, prewarm_policy, results, simulate
    from scaler.sim.traces import Trace
    from scaler.sim.world import ColdStart, ServiceModel, WorldConfig

    trace = Trace(name=name, counts=counts.astype(float), bin_s=1.0)
    world = WorldConfig(
        concurrency=settings.concurrency,
        service=ServiceModel("constant", settings.service_s),
        cold_start=ColdStart("constant", settings.cold_start_s),
        drain_tail_s=60,
        seed=settings.seed,
    )
    scenario = Scenario(trace, world, slo_s=60.0, max_replicas=settings.max_replicas)
    rate = settings.concurrency / settings.service_s * 0.75
    behavior = Behavior(scale_down=scale_down_rules(settings))
    prewarm = prewarm_policy(
        settings.queue_length,
        settings.max_replicas,
        cold_start_s=settings.cold_start_s,
        replica_throughput=rate,
    )
    keda = keda_queue_policy(settings.queue_length, 0, settings.max_replicas)
    specs = [
        replace(
            spec,
            name=name,
            polling_s=settings.polling_s,
            hpa_sync_s=settings.hpa_sync_s,
            cooldown_s=settings.cooldown_s,
            behavior=behavior,
        )
        for spec, name in ((prewarm, "prewarm (simulated)"), (keda, "stock KEDA (simulated)"))
    ]
    rows = []
    runs = {}
    for spec in specs:
        run = simulate(scenario, spec)
        row = results(scenario, run)
        row["gpu_minutes"] = row["gpu_hours"] * 60
        rows.append(row)
        runs[spec.name] = run
    return rows, runs


def summary_text(live: dict[str, Any], rows: list[dict[str, Any]], calls: dict[str, int]) -> str:
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
    lines.append(
        f"{live['arrivals']} messages sent, {live['served']} served; the server answered "
        + ", ".join(f"{n} {name}" for name, n in calls.items())
        + ". Stock KEDA is the simulator's run on the same slice and settings (same KEDA/HPA emulation)."
    )
    return "\n".join(lines)


def plot(path: Path, run: dict[str, Any], sim_runs: dict[str, Any]) -> None:
    from scaler.sim.report import plot_timeline

    records: list[Record] = run["records"]
    series = {
        "prewarm (live)": {
            "waiting": np.array([r.backlog for r in records], dtype=float),
            "pods": np.array([r.replicas for r in records], dtype=float),
        }
    }
    n = len(records)
    for name, sim in sim_runs.items():
        series[name] = {"waiting": sim.world.rec_waiting[:n], "pods": sim.world.rec_pods[:n]}
    plot_timeline(
        path, f"Prewarm demo: {run['slice']}", run["counts"].astype(float), series, (1.0, "seconds")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaler.demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=120, help="seconds of replay (default 120)")
    p.add_argument("--speed", type=float, default=30.0, help="trace seconds per second (default 30)")
    p.add_argument(
        "--trace", default=str(DEFAULT_TRACE), help="a trace under bench/traces/ (default: Azure LLM code)"
    )
    p.add_argument("--start", type=int, default=0, help="the slice's start in the trace, seconds")
    p.add_argument(
        "--cold-start", type=float, default=10.0, help="seconds from pod creation to Ready (default 10)"
    )
    p.add_argument("--out", default="demo", help="folder for demo.png and summary.json (default ./demo)")
    p.add_argument("--no-live", action="store_true", help="print a line every 10 s instead of the live view")
    args = p.parse_args(argv)
    if args.duration < 5 or args.speed <= 0:
        p.error("--duration must be >= 5 and --speed > 0")
    settings = DemoSettings(
        duration_s=args.duration, speed=args.speed, start_s=args.start, cold_start_s=args.cold_start
    )
    live = not args.no_live and sys.stdout.isatty()
    import logging

    logging.getLogger().addHandler(logging.NullHandler())
    run = run_live(settings, Path(args.trace), live)
    figures = live_results(run, settings)
    rows, sim_runs = simulated(settings, run["counts"], run["slice"])
    text = summary_text(figures, rows, run["calls"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(out / "demo.png", run, sim_runs)
    summary = {
        "live": figures,
        "simulated": [
            {k: r[k] for k in ("policy", "gpu_minutes", "wait_p95_s", "cold_start_waits", "peak_replicas")}
            for r in rows
        ],
        "calls": run["calls"],
        "max_replicas_live": max((r.replicas for r in run["records"]), default=0),
        "settings": settings.__dict__,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print()
    print(text)
    print(f"\nPNG of the run: {out / 'demo.png'}; figures: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
