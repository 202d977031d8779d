"""How far the simulator's cheap way of asking Prewarm is from the server's. The
server's stream evaluates every second; each evaluation reads the queue again once
the cache's 2 s are up, the engine's state (the rate average, the hold's history, the
quiet time) sees those readings, and a `true` after a `false` restarts KEDA's
cooldown. The cheap way asks Prewarm's engine at KEDA's polls and the HPA's syncs,
and at every tick of its stream only while the stream's last answer was not `true`
(when a `true` can act): `make evaluate` runs Twitter's week and Functions' day that
way, and the one-hour traces every second (Scenario.stream_every_tick). This runs
Prewarm's defaults both ways (PolicySpec.stream_every_tick False and True) on every
case of `make evaluate` at cold starts of 120, 300 and 600 s, meaned over its loop
phases as the evaluation means them.

    .venv/bin/python bench/bench_stream_cadence.py [--cases code,twitter,...]
        [--cold-starts 120,300,600] [--workers N]

Prints one Markdown table (GPU-hours / p95 / p99 each way, and the change in
GPU-hours and p95 from the cheap way to every tick), the machine and the time
taken. About 3 minutes on 2 cores (Twitter's week asked every second is most of it).
"""

from __future__ import annotations

import dataclasses

import case_table

from scaler.sim.policies import PolicySpec
from scaler.sim.run import Scenario, _named, prewarm_policy

SETTINGS = ("polls and syncs", "every tick")


def policies(scenario: Scenario) -> list[PolicySpec]:
    """Prewarm's defaults as the evaluation runs them, and asked at every tick."""
    spec = prewarm_policy(
        scenario.world.concurrency,
        scenario.max_replicas,
        cold_start_s=scenario.world.cold_start.typical_s,
        replica_throughput=scenario.rate_per_replica,
    )
    return [
        _named(dataclasses.replace(spec, stream_every_tick=False), SETTINGS[0]),
        _named(dataclasses.replace(spec, stream_every_tick=True), SETTINGS[1]),
    ]


def main() -> None:
    compared = ("every tick against as simulated", SETTINGS[1], SETTINGS[0])
    case_table.main(__doc__ or "", policies, SETTINGS, "{}: GPU-h / p95 / p99", compared)


if __name__ == "__main__":
    main()
