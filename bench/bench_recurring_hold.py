"""What holding bursts that came back does by default: Prewarm's defaults (holdSeconds
unset: the burst's rate held for a cold start, and for half an hour where the burst
came back within it, policy.recurring_hold_window) against holdSeconds set to the cold
start (the hold without that part, the default before 5 December 2026) and holdSeconds
1800 (every burst held for half an hour), on every case of `make evaluate` at cold
starts of 120, 300 and 600 s, meaned over its loop phases as the evaluation means them.

    .venv/bin/python bench/bench_recurring_hold.py [--cases code,twitter,...]
        [--cold-starts 120,300,600] [--workers N]

Prints one Markdown table (GPU-hours / p95 / p99 per setting, and the default's change
in GPU-hours and p95 against one cold start's hold), the machine and the time taken.
About 6 minutes on 2 cores (Twitter's week is most of it).
"""

from __future__ import annotations

import case_table

from scaler.sim.policies import PolicySpec
from scaler.sim.run import LONG_HOLD_S, Scenario, _named, prewarm_policy

SETTINGS = ("unset (default)", "cold start", f"{LONG_HOLD_S:g}")


def policies(scenario: Scenario) -> list[PolicySpec]:
    """Prewarm's defaults as the evaluation runs them, with holdSeconds unset, at the
    cold start, and at LONG_HOLD_S."""
    lead = scenario.world.cold_start.typical_s
    out = []
    for setting, hold in zip(SETTINGS, (None, lead, LONG_HOLD_S), strict=True):
        spec = prewarm_policy(
            scenario.world.concurrency,
            scenario.max_replicas,
            cold_start_s=lead,
            replica_throughput=scenario.rate_per_replica,
            hold_s=hold,
        )
        out.append(_named(spec, setting))
    return out


def main() -> None:
    compared = ("default against a cold start's hold", SETTINGS[0], SETTINGS[1])
    case_table.main(__doc__ or "", policies, SETTINGS, "holdSeconds {}: GPU-h / p95 / p99", compared)


if __name__ == "__main__":
    main()
