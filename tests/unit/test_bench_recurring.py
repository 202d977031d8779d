"""The recurring-peak benchmark: its synthetic trace, the choice shares it prints, and
the forced estimate reaching the production engine in the simulator."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_recurring as bench

from scaler.sim import evaluate
from scaler.sim.traces import load_trace

DAY = 86_400


def alternate_day_bursts(path: Path, days: int) -> str:
    """Per minute: 120 arrivals a minute, and 1,200 in 10:32-10:38 on even days only."""
    lines = ["timestamp_s,count"]
    for minute in range(days * 1440):
        day, of_day = divmod(minute, 1440)
        burst = day % 2 == 0 and 632 <= of_day < 639
        lines.append(f"{minute * 60},{1200 if burst else 120}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_synthetic_trace_has_ten_bursts_a_day_at_new_minutes(tmp_path: Path) -> None:
    trace = load_trace(Path(bench.synthetic_file(str(tmp_path))))
    assert trace.duration_s == 8 * DAY
    per_minute = trace.counts.reshape(-1, 60).sum(axis=1)
    bursting = per_minute > 8000  # bursts at 230/s, the rest at 50 to 65/s
    starts = [m for m in range(1, len(per_minute)) if bursting[m] and not bursting[m - 1]]
    per_day = [sum(1 for m in starts if m // 1440 == d) for d in range(8)]
    assert all(8 <= n <= 10 for n in per_day)  # ten a day, two may overlap
    minutes_of_day = [{m % 1440 for m in starts if m // 1440 == d} for d in range(8)]
    assert not minutes_of_day[0] & minutes_of_day[1]  # drawn afresh each day
    with gzip.open(tmp_path / f"{bench.SYNTHETIC}.csv.gz", "rt") as f:
        assert f.readline().strip() == "timestamp_s,count"


def test_the_choice_takes_the_envelope_for_bursts_on_some_days_at_a_high_quantile(tmp_path: Path) -> None:
    trace = load_trace(Path(alternate_day_bursts(tmp_path / "bursts.csv", 6)))
    shares = bench.choice_shares(trace, 600)
    # The higher the quantile, the more a missed burst weighs against idle replicas.
    assert shares[0.5] <= shares[0.75] <= shares[0.9] <= shares[0.97]
    assert shares[0.9] > 0.5


def test_a_forced_estimate_reaches_the_engine(tmp_path: Path) -> None:
    file = alternate_day_bursts(tmp_path / "bursts.csv", 3)
    case = evaluate.Case("bursts on even days", file, 0, None, "other", warmup_s=DAY)
    average = bench.simulate(case, "average", 600, throughputs=(1.0, 2.0))
    assert [factor for factor, _, _ in average] == [1.0, 2.0]
    assert average[0][1] > average[1][1]  # more throughput per replica, fewer GPU-hours
    # Before the third day's burst (absent on the second day) the average of past days
    # holds 82 % of it, the envelope 87 %: more replicas pre-warmed for it.
    envelope = bench.simulate(case, "envelope", 600, throughputs=(1.0,))
    assert envelope[0][1] > average[0][1]
