"""`prewarm simulate`: replay a trace through Prewarm and the baselines."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaler.argtypes import number, positive, seconds, whole
from scaler.sim.keda import DEFAULT_SCALE_DOWN

if TYPE_CHECKING:  # numpy and friends load only when simulate runs (`serve` needs none of them)
    from scaler.sim.traces import Trace

DEFAULT_PEAK_REPLICAS = 20
DEFAULT_MAX_REPLICAS = 100
# The what-if's defaults, filled in when it runs (None tells a flag that was not given).
WHATIF_DEFAULTS = {"since": "7d", "gpu_price": 2.5, "timeout": 10.0}
# Flags only one mode reads. Given in the other mode they are refused, not ignored.
WHATIF_ONLY = (
    "trigger",
    "prometheus",
    "arrival_query",
    "since",
    "step",
    "service_query",
    "gpu_price",
    "timeout",
    "no_advice",
)
TRACE_ONLY = ("max_replicas", "queue_length", "policies", "sweep", "jobs", "scale_down_window", "lead_in")
DEFAULT_SCALE_DOWN_WINDOW_S = round(DEFAULT_SCALE_DOWN.stabilization_s)  # Kubernetes' default


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay an arrival trace through Prewarm and stock KEDA set-ups, compare cost and waits",
        description="Replays a real arrival trace through a simulated queue, GPU workers and pods, with "
        "KEDA and the HPA emulated, for Prewarm (the production decision engine) and the baselines. "
        "Writes results.json, report.md and PNG plots to --out.",
    )
    p.add_argument(
        "--trace",
        default=None,
        help="trace file (timestamp_s,count / timestamp_s[,service_s] / "
        "the Azure LLM and Mooncake formats; .gz ok); required unless --prometheus/--arrival-query",
    )
    whatif = p.add_argument_group(
        "what-if on your own object and traffic",
        "--scaledobject FILE: your ScaledObject as you would apply it, simulated with Prewarm and as "
        "stock KEDA (its twin); the arrivals from --trace or from your Prometheus",
    )
    whatif.add_argument("--scaledobject", metavar="FILE", help="your ScaledObject manifest (YAML)")
    whatif.add_argument(
        "--trigger",
        type=whole(0),
        default=None,
        help="the trigger's index (default: the first external one)",
    )
    whatif.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus to read the arrival history from (default: the trigger's prometheusServerAddress)",
    )
    whatif.add_argument(
        "--arrival-query",
        metavar="Q",
        help="PromQL: requests/s into the workload (default: the trigger's arrivalQuery)",
    )
    whatif.add_argument(
        "--since", default=None, help=f"how much history to replay (default {WHATIF_DEFAULTS['since']})"
    )
    whatif.add_argument(
        "--step", default=None, help="the range query's step (default 60s, more for long spans)"
    )
    whatif.add_argument("--service-query", metavar="Q", help="PromQL: mean seconds one request holds a slot")
    whatif.add_argument(
        "--gpu-price",
        type=number(0),
        default=None,
        help=f"dollars per GPU-hour (default {WHATIF_DEFAULTS['gpu_price']:g})",
    )
    whatif.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help=f"Prometheus query timeout, s (default {WHATIF_DEFAULTS['timeout']:g})",
    )
    whatif.add_argument("--no-advice", action="store_true", help="skip the one-setting-at-a-time runs")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--rate-scale", type=positive, help="multiply the trace's arrival rate by X")
    scale.add_argument(
        "--peak-replicas",
        type=whole(1),
        help=f"scale the trace so that N replicas carry its peak minute at 75 %% utilisation "
        f"(default {DEFAULT_PEAK_REPLICAS})",
    )
    p.add_argument(
        "--concurrency",
        type=whole(1),
        default=None,
        help="requests one replica serves at once (default 4; with --scaledobject, its queueLength)",
    )
    p.add_argument(
        "--service",
        default=None,
        help="service time: SECONDS, lognormal:MEAN[:SIGMA], trace (service_s column), "
        "tokens[:PREFILL:DECODE] (default: tokens for LLM traces, trace when it has service_s, "
        "else lognormal:2:0.5)",
    )
    p.add_argument(
        "--cold-start",
        default=None,
        help="seconds to Ready: S, uniform:LO:HI or lognormal:MEDIAN:SIGMA (default 300; with "
        "--scaledobject, its coldStartQuery's answer or coldStartSeconds)",
    )
    p.add_argument(
        "--slo",
        type=positive,
        default=60.0,
        help="queue-wait SLO in seconds (default 60)",
    )
    p.add_argument(
        "--queue-length",
        type=positive,
        default=None,
        help="queueLength for the queue policies (default: --concurrency)",
    )
    p.add_argument(
        "--max-replicas",
        type=whole(1),
        default=None,
        help=f"maxReplicaCount (default {DEFAULT_MAX_REPLICAS})",
    )
    p.add_argument(
        "--scale-down-window",
        type=whole(0, 3600),
        default=None,
        metavar="SECONDS",
        help="the HPA's scale-down stabilization window for every policy KEDA runs, 0..3600 "
        f"(default {DEFAULT_SCALE_DOWN_WINDOW_S}, Kubernetes' own)",
    )
    p.add_argument("--policies", default=None, help="comma-separated policy names (default: all)")
    p.add_argument("--sweep", action="store_true", help="also sweep each policy's main knob (frontiers)")
    p.add_argument(
        "--kill-in-flight", action="store_true", help="scale-in kills in-flight work (counted as lost)"
    )
    p.add_argument(
        "--jobs",
        action="store_true",
        help="compare ScaledJobs instead (one Job per message; each strategy; Jobs per message)",
    )
    p.add_argument("--start", type=whole(0), default=0, help="simulate from this second of the trace")
    p.add_argument("--duration", type=whole(1), default=None, help="simulate this many seconds")
    p.add_argument(
        "--warmup",
        type=whole(0),
        default=0,
        help="seconds at the start simulated as history for the forecasters but not scored or billed",
    )
    p.add_argument(
        "--lead-in",
        type=whole(1),
        default=None,
        metavar="SECONDS",
        help="enter the trace warm: simulate it from SECONDS earlier, over its first SECONDS played "
        "backwards, not scored or billed (a short trace otherwise starts from zero at full load)",
    )
    p.add_argument(
        "--stream-every-second",
        action="store_true",
        help="evaluate Prewarm's stream every second throughout, as the server's does (make evaluate "
        "does on its one-hour traces); by default, while the stream's last answer is true, only at "
        "KEDA's polls and the HPA's syncs: within about 4 %% of GPU-hours on the bundled traces, and "
        "4 to 5 times faster on a week of busy traffic",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (cold-start samples, thinning)")
    p.add_argument("--out", default="simulation", help="output folder (default ./simulation)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_scenario(
    trace: Trace,
    *,
    concurrency: int,
    service: str | None,
    cold_start: str,
    slo: float,
    max_replicas: int,
    rate_scale: float | None = None,
    peak_replicas: int | None = None,
    kill_in_flight: bool = False,
    seed: int = 0,
    scale_down_window_s: int | None = None,
    stream_every_second: bool | None = None,
) -> tuple[Any, list[str]]:
    """The Scenario and the lines describing how it was set up (`scale_down_window_s`:
    the window the policies will run with, for the line on KEDA's and the HPA's
    settings; `stream_every_second`: Scenario.stream_every_tick, with a line saying
    which, None to leave the default unsaid). Raises ModelError/TraceError."""
    from scaler.sim.policies import TARGET_UTILIZATION
    from scaler.sim.run import Scenario
    from scaler.sim.traces import TraceError, peak_rate, scaled
    from scaler.sim.world import ColdStart, ModelError, ServiceModel, WorldConfig

    if concurrency < 1:
        raise ModelError("--concurrency must be a whole number >= 1")
    if service is None:
        if trace.input_tokens is not None:
            service = "tokens"
        elif trace.service_s is not None:
            service = "trace"
        else:
            service = "lognormal:2:0.5"
    model = ServiceModel.parse(service)
    world = WorldConfig(
        concurrency=concurrency,
        service=model,
        cold_start=ColdStart.parse(cold_start),
        graceful_scale_in=not kill_in_flight,
        seed=seed,
    )
    mean = model.mean(trace)
    per_replica = concurrency / mean * TARGET_UTILIZATION
    if rate_scale is None:
        wanted = peak_replicas or DEFAULT_PEAK_REPLICAS
        peak = peak_rate(trace)
        if peak <= 0:
            raise TraceError(f"{trace.name}: no arrivals")
        rate_scale = wanted * per_replica / peak
    fitted = scaled(trace, rate_scale, seed=seed)
    peak_n = max(1, round(peak_rate(fitted) / per_replica))
    scenario = Scenario(fitted, world, slo_s=slo, max_replicas=max_replicas, peak_replicas=peak_n)
    setup = [
        f"trace: `{trace.name}`, {trace.duration_s / 3600:.1f} h, {trace.total:,.0f} arrivals "
        f"(resolution {trace.bin_s:g} s)",
        f"rate scale {rate_scale:.4g}: peak minute {peak_rate(fitted):.3g} req/s = {peak_n} replicas at "
        f"{TARGET_UTILIZATION:.0%} utilisation",
        f"replica: {concurrency} concurrent requests, service {model.describe()} (mean {mean:.3g} s), "
        f"1 GPU; cold start {world.cold_start.describe()}",
        f"scale-in: {'kills in-flight work' if kill_in_flight else 'graceful (in-flight work finishes)'}; "
        f"SLO {slo:g} s; maxReplicaCount {max_replicas}",
        _loops_line(scale_down_window_s),
    ]
    if stream_every_second is not None:
        scenario.stream_every_tick = stream_every_second
        setup.append(_stream_line(stream_every_second))
    setup += list(fitted.notes)
    return scenario, setup


def _stream_line(every_second: bool) -> str:
    """The report's line on how often Prewarm's stream is evaluated."""
    if every_second:
        return "Prewarm's stream evaluated every second, as the server's is (--stream-every-second)"
    return (
        "Prewarm's stream evaluated at KEDA's polls and the HPA's syncs while its last answer is true, "
        "every second otherwise (the server's evaluates every second: --stream-every-second)"
    )


def _loops_line(scale_down_window_s: int | None = None) -> str:
    """The report's line on KEDA's and the HPA's settings."""
    if scale_down_window_s is None:
        behavior = (
            f"no behavior set, as KEDA creates the HPA by default (Kubernetes' legacy rules: the highest "
            f"ask of the last {DEFAULT_SCALE_DOWN_WINDOW_S} s, up by at most max(2x, 4) a sync)"
        )
    else:
        behavior = (
            f"behavior: scale-down window {scale_down_window_s} s (--scale-down-window), else the default"
        )
    return f"KEDA pollingInterval 30 s, cooldownPeriod 300 s; HPA sync 15 s, tolerance 0.1, {behavior}"


def run_policies(
    scenario: Any, specs: Sequence[Any], progress: bool, label: str = ""
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Simulate each policy; (results rows, the runs by name)."""
    from scaler.sim.run import results, simulate

    rows: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    bar = None
    tick: Callable[[int], object] | None = None
    if progress:
        from tqdm import tqdm

        total = (scenario.trace.duration_s + scenario.world.drain_tail_s) * len(specs)
        bar = tqdm(total=total, unit="s", unit_scale=True, desc=label or "simulating", file=sys.stderr)
        tick = bar.update
    for spec in specs:
        run = simulate(scenario, spec, tick)
        rows.append(results(scenario, run))
        runs[spec.name] = run
    if bar is not None:
        bar.close()
    return rows, runs


def misplaced_flags(args: argparse.Namespace) -> str | None:
    """What is wrong with flags given in a mode that does not read them, else None."""

    def given(names: Sequence[str]) -> list[str]:
        # Unset flags are None (values) or False (switches); `is`, since 0 == False and
        # --scale-down-window 0 is a value.
        values = {name: getattr(args, name) for name in names}
        return ["--" + n.replace("_", "-") for n, v in values.items() if v is not None and v is not False]

    if args.scaledobject:
        extra = given(TRACE_ONLY)
        if extra:
            return (
                f"{', '.join(extra)}: not with --scaledobject (a what-if takes maxReplicaCount, "
                "queueLength and the HPA's behavior from the ScaledObject, and compares it with stock KEDA)"
            )
        return None
    extra = given(WHATIF_ONLY)
    if extra:
        return f"{', '.join(extra)}: only with --scaledobject (the what-if on your own ScaledObject)"
    if args.jobs:
        extra = given(
            ("queue_length", "policies", "sweep", "scale_down_window", "lead_in", "stream_every_second")
        )
        if extra:
            return (
                f"{', '.join(extra)}: not with --jobs (it compares KEDA's ScaledJob strategies, "
                "with and without Prewarm; ScaledJobs have no HPA)"
            )
    return None


def main(args: argparse.Namespace) -> int:
    from scaler.sim import report
    from scaler.sim.run import led_in_scenario, standard_policies, sweep_policies, with_scale_down_window
    from scaler.sim.traces import TraceError, load_trace, sliced
    from scaler.sim.world import ModelError

    refused = misplaced_flags(args)
    if refused:
        print(f"prewarm simulate: {refused}", file=sys.stderr)
        return 2
    if args.scaledobject:
        from scaler.sim.whatif import main as whatif

        for name, value in WHATIF_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, value)

        return whatif(args)
    if not args.trace:
        print("prewarm simulate: --trace FILE is required (or --scaledobject for a what-if)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        trace = load_trace(args.trace)
        if args.start or args.duration:
            end = trace.duration_s if args.duration is None else args.start + args.duration
            trace = sliced(trace, args.start, end)
        scenario, setup = build_scenario(
            trace,
            concurrency=args.concurrency or 4,
            service=args.service,
            cold_start=args.cold_start or "300",
            slo=args.slo,
            max_replicas=args.max_replicas or DEFAULT_MAX_REPLICAS,
            rate_scale=args.rate_scale,
            peak_replicas=args.peak_replicas,
            kill_in_flight=args.kill_in_flight,
            seed=args.seed,
            scale_down_window_s=args.scale_down_window,
            # ScaledJobs are simulated without a stream (scaler.sim.jobs).
            stream_every_second=None if args.jobs else args.stream_every_second,
        )
        if args.warmup:
            scenario.warmup_s = args.warmup
            setup.append(f"the first {args.warmup} s are history for the forecasters, not scored or billed")
        if args.lead_in:
            scenario = led_in_scenario(scenario, args.lead_in)
            setup.append(
                f"entered warm: simulated from {args.lead_in} s before the trace starts, over its first "
                f"{args.lead_in} s played backwards (--lead-in), not scored or billed"
            )
    except (TraceError, ModelError) as exc:
        print(f"prewarm simulate: {exc}", file=sys.stderr)
        return 2
    if args.jobs:
        return _jobs(args, scenario, setup, started)
    specs = standard_policies(scenario, args.queue_length)
    if args.policies:
        wanted = [name.strip() for name in args.policies.split(",") if name.strip()]
        known = {spec.name for spec in specs}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            print(
                f"prewarm simulate: unknown policy {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                file=sys.stderr,
            )
            return 2
        specs = [spec for spec in specs if spec.name in wanted]
    sweeps = sweep_policies(scenario) if args.sweep else []
    if args.policies:
        # The chosen policies' families, and the perfect-foresight reference beside them.
        families = {spec.family for spec in specs} | {"oracle"}
        sweeps = [spec for spec in sweeps if spec.family in families]
    window = args.scale_down_window
    if window is not None:
        specs = [with_scale_down_window(spec, window) for spec in specs]
        sweeps = [with_scale_down_window(spec, window) for spec in sweeps]
    progress = not args.no_progress and sys.stderr.isatty()
    rows, runs = run_policies(scenario, specs, progress)
    sweep_rows: list[dict[str, Any]] = []
    if sweeps:
        sweep_rows, _ = run_policies(scenario, sweeps, progress, "sweep")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "results.json", rows)
    if sweep_rows:
        report.write_json(out / "sweep.json", sweep_rows)
    plots: list[str] = []
    if not args.no_plots:
        report.plot_runs(out / "timeline.png", trace.name, runs, scored_from_s=scenario.warmup_s)
        plots.append("timeline.png")
        if sweep_rows:
            report.plot_frontiers(out / "frontiers.png", trace.name, sweep_rows)
            plots.append("frontiers.png")
    text = report.markdown(f"Simulation: {trace.name}", setup, rows, sweep_rows, plots)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(report.table(rows))
    print(
        f"\n{len(specs)} policies{' + sweep' if sweep_rows else ''} in {time.monotonic() - started:.1f} s; "
        f"results in {out}/ (results.json, report.md{', plots' if plots else ''})"
    )
    return 0


JOB_COLUMNS = (
    ("policy", "policy", "{}"),
    ("jobs_per_message", "Jobs/message", "{:.2f}"),
    ("jobs_without_work", "Jobs without work", "{}"),
    ("gpu_hours", "GPU-h", "{:.1f}"),
    ("floor_gpu_hours", "floor GPU-h", "{:.1f}"),
    ("wait_p50_s", "p50 s", "{:.0f}"),
    ("wait_p95_s", "p95 s", "{:.0f}"),
    ("wait_p99_s", "p99 s", "{:.0f}"),
    ("slo_violation_share", "> SLO", "{:.1%}"),
)


def job_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(t for _, t, _ in JOB_COLUMNS) + " |",
        "|---" + "|---:" * (len(JOB_COLUMNS) - 1) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[key]) for key, _, fmt in JOB_COLUMNS) + " |")
    return "\n".join(lines)


def _jobs(args: argparse.Namespace, scenario: Any, setup: list[str], started: float) -> int:
    from scaler.sim import report
    from scaler.sim.jobs import job_policies, simulate_jobs

    rows = [
        simulate_jobs(scenario.trace, scenario.world, p, scenario.slo_s, scored_from_s=scenario.warmup_s)
        for p in job_policies(args.max_replicas or DEFAULT_MAX_REPLICAS)
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "jobs.json", rows)
    text = "\n".join(
        [
            f"# ScaledJob simulation: {scenario.trace.name}",
            "",
            *(f"- {x}" for x in setup),
            "",
            job_table(rows),
            "",
        ]
    )
    (out / "report.md").write_text(text, encoding="utf-8")
    print(job_table(rows))
    print(f"\n{len(rows)} ScaledJob policies in {time.monotonic() - started:.1f} s; results in {out}/")
    return 0
