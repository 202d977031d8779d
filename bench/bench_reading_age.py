"""How old Prewarm's readings are, as a cost: `keda-min1` against Prewarm's points that
ask exactly what it asks (minReplicaCount 1, replicaThroughput unset), at each of
`make evaluate`'s loop phases: Prewarm as the server answers (KEDA's polled calls from
a queue reading at most --polled-reading-age, 0.5 s, old), and with those calls
answered from the shared reading, up to the cache's TTL (2 s) old, as the server did
before `a5dc2e3`.

    .venv/bin/python bench/bench_reading_age.py [--points conv:300:2,code:120:2,...]
        [--shared-age 2]

KEDA's own scaler reads the queue at each call. Answered from the shared reading,
where a sync falls a second after the stream's last read, the HPA sees the queue a
second late, and at some loop phases a scale-up waits one sync more. Prints, per point
and phase, GPU-hours and p95 for the three, and the means over the phases (what
docs/evaluation.md's frontiers use). The default points are the ones where
`make evaluate` found `keda-min1` ahead with the shared reading (docs/decisions.md,
"Polled answers read the queue afresh"); about 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

from scaler.argtypes import seconds
from scaler.signals.cache import DEFAULT_TTL, POLLED_READING_AGE
from scaler.sim import evaluate
from scaler.sim.main import run_policies
from scaler.sim.policies import PolicySpec
from scaler.sim.run import Scenario, _at_min1, _named, keda_queue_policy, prewarm_policy

CASES = evaluate.CASE_NAMES
DEFAULT_POINTS = (
    "conv:300:1,conv:300:2,conv:300:3,conv:300:4,conv:600:1,conv:600:2,conv:600:3,conv:600:4,code:120:2"
)


def point(text: str) -> tuple[str, int, float]:
    case, cold, length = text.split(":")
    if case not in CASES:
        raise argparse.ArgumentTypeError(f"case {case!r}: one of {', '.join(CASES)}")
    return case, int(cold), float(length)


def specs(scenario: Scenario, queue_length: float, shared_age: float) -> list[PolicySpec]:
    lead = scenario.world.cold_start.typical_s
    top = scenario.max_replicas

    def prewarm(age: float) -> PolicySpec:
        return _at_min1(prewarm_policy(queue_length, top, cold_start_s=lead, polled_reading_age=age))

    return [
        _named(keda_queue_policy(queue_length, 1, top), "keda-min1"),
        _named(prewarm(POLLED_READING_AGE), f"prewarm@polled-age={POLLED_READING_AGE:g}s"),
        _named(prewarm(shared_age), f"prewarm@polled-age={shared_age:g}s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--points", default=DEFAULT_POINTS, help="case:coldStart:queueLength, comma-separated"
    )
    parser.add_argument(
        "--shared-age",
        type=seconds,
        default=DEFAULT_TTL,
        help="the polled reading age to compare with the server's (the TTL: the shared reading)",
    )
    args = parser.parse_args()
    points = [point(p) for p in args.points.split(",")]
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    started = time.monotonic()
    for case_name, cold_start, queue_length in points:
        case = evaluate.CASES[CASES[case_name]]
        scenario, _ = evaluate.case_scenario(case, evaluate.case_trace(case, False), cold_start, False)
        print(f"\n{case_name}, cold start {cold_start} s, queueLength {queue_length:g} (GPU-h / p95 s)")
        means: dict[str, list[tuple[float, float]]] = {}
        for phase in evaluate.case_phases(case):
            at_phase = replace(scenario, loop_phase=phase)
            rows, _ = run_policies(at_phase, specs(at_phase, queue_length, args.shared_age), progress=False)
            cells = []
            for row in rows:
                means.setdefault(row["policy"], []).append((row["gpu_hours"], row["wait_p95_s"]))
                cells.append(f"{row['policy']} {row['gpu_hours']:.3f} / {row['wait_p95_s']:.2f}")
            print(f"  phase {phase}: " + "; ".join(cells))
        cells = [
            f"{name} {sum(g for g, _ in runs) / len(runs):.3f} / {sum(p for _, p in runs) / len(runs):.2f}"
            for name, runs in means.items()
        ]
        print("  mean: " + "; ".join(cells))
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
