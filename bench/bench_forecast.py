"""Evidence for the forecaster (scaler/forecast/model.py) on the real traces in bench/traces/.

For every trace: the forecast error at horizons of 60, 180, 300 and 600 s as MASE
against the naive forecast ("the same as the last minute"), and against
seasonal-naive ("the same minute yesterday") where the trace has two days or more.
MASE here is the model's mean absolute error divided by the reference's, over the
same points (< 1: the model is better). Two figures per horizon:

- raw: the model's own forecast at every point, cold or gated or not;
- used: what the scaler acts on: the model's forecast where the model says it is
  usable (state ready at that horizon), else nothing, which for scoring is the
  naive forecast (a gated or cold forecast leaves the decision to the live signals).

Also the update cost (µs per observation, and per closed minute) and the memory of
one series, and on the traces with days of history the pre-warm wake figures: see
`wake_figures`. Gaps in the Twitter trace (its `gap_seconds`) are masked: no
observation is fed and no point is scored there.

    .venv/bin/python bench/bench_forecast.py            # all traces, a table
    .venv/bin/python bench/bench_forecast.py --json out.json --check

`--check` exits 1 unless the default model's used forecast beats naive (MASE < 1)
on the 22-day Twitter trace at every horizon and is at most 5 % worse than naive
on every trace and horizon.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import platform
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scaler.forecast.model import DAY, STEP, Forecaster, ForecastState

TRACES = Path(__file__).resolve().parent / "traces"
HORIZONS = (60, 180, 300, 600)
# The pre-warm figures: look-ahead L, and the idle time after which a workload is at zero.
WAKE_L = 300.0
IDLE_BEFORE_ONSET = 1800.0
# Wall-clock origin of the traces (their timestamps are offsets): a midnight UTC,
# so the model's time of day is the trace's own.
ORIGIN = 1_628_000_000 - 1_628_000_000 % 86_400


@dataclass
class Trace:
    name: str
    rate: np.ndarray  # arrivals per second, per STEP bucket; NaN = masked (collection gap)
    per_second: np.ndarray | None = None  # per-second counts where the file has them (update cost)


def _read_counts(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:  # type: ignore[operator]
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    data = np.array(body, dtype=float)
    gaps = data[:, header.index("gap_seconds")] if "gap_seconds" in header else None
    return data[:, 0], data[:, 1], gaps


def load_traces(only: str | None = None) -> list[Trace]:
    traces = []
    for path in sorted(TRACES.glob("*_per_*.csv*")):
        if only and only not in path.name:
            continue
        ts, counts, gaps = _read_counts(path)
        name = path.name.split(".csv")[0]
        if "per_minute" in name:
            rate = counts / 60.0
            if gaps is not None:
                rate[gaps > 0] = np.nan
            traces.append(Trace(name, rate))
            continue
        # Per second: one count per second from 0; the Twitter file's gaps are
        # zero-filled runs at the known places (bench/traces/README.md).
        n = int(ts.max()) + 1
        seconds = np.zeros(n)
        seconds[ts.astype(int)] = counts
        masked = np.zeros(n, dtype=bool)
        if name.startswith("twitter"):
            masked = _twitter_gaps(seconds)
        minutes = n // 60
        per_minute = seconds[: minutes * 60].reshape(minutes, 60)
        rate = per_minute.mean(axis=1)
        rate[masked[: minutes * 60].reshape(minutes, 60).any(axis=1)] = np.nan
        traces.append(Trace(name, rate, per_second=np.where(masked, np.nan, seconds)))
    return traces


def _twitter_gaps(seconds: np.ndarray) -> np.ndarray:
    """Zero runs of over 100 s: the collection gaps (the stream never idles for that long)."""
    masked = np.zeros(len(seconds), dtype=bool)
    zero = seconds == 0
    start = None
    for i, z in enumerate(np.append(zero, False)):
        if z and start is None:
            start = i
        elif not z and start is not None:
            if i - start > 100:
                masked[start:i] = True
            start = None
    return masked


def evaluate(trace: Trace) -> dict[str, Any]:
    """Feed the trace minute by minute; forecast each horizon after each minute."""
    y = trace.rate
    n = len(y)
    model = Forecaster()
    steps = {h: int(h // STEP) for h in HORIZONS}
    forecasts = {h: np.full(n, np.nan) for h in HORIZONS}
    used = {h: np.zeros(n, dtype=bool) for h in HORIZONS}
    for i in range(n):
        if not math.isnan(y[i]):
            model.observe(ORIGIN + i * STEP + STEP / 2, float(y[i]))
        now = ORIGIN + (i + 1) * STEP
        for h in HORIZONS:
            outlook = model.outlook(now, h)
            forecasts[h][i] = model.predict(now, h - STEP / 2)
            used[h][i] = outlook.state is ForecastState.READY
    result: dict[str, Any] = {"trace": trace.name, "minutes": n, "days": round(n * STEP / DAY, 2)}
    rows = []
    seasonal_lag = int(DAY // STEP)
    for h in HORIZONS:
        k = steps[h]
        origin = np.arange(n - k)
        target = origin + k
        ok = ~np.isnan(y[origin]) & ~np.isnan(y[target])
        actual = y[target][ok]
        naive = y[origin][ok]
        raw = forecasts[h][origin][ok]
        eff = np.where(used[h][origin][ok], raw, naive)
        naive_mae = np.mean(np.abs(actual - naive))
        row: dict[str, Any] = {
            "horizon_s": h,
            "points": int(ok.sum()),
            "mase_raw": float(np.mean(np.abs(actual - raw)) / naive_mae),
            "mase_used": float(np.mean(np.abs(actual - eff)) / naive_mae),
            "used_share": float(np.mean(used[h][origin][ok])),
        }
        if n * STEP >= 2 * DAY:
            s_ok = ok & (target >= seasonal_lag)
            s_ok &= ~np.isnan(y[np.maximum(target - seasonal_lag, 0)])
            idx = origin[s_ok]
            snaive = y[idx + k - seasonal_lag]
            actual_s = y[idx + k]
            raw_s = forecasts[h][idx]
            eff_s = np.where(used[h][idx], raw_s, y[idx])
            s_mae = np.mean(np.abs(actual_s - snaive))
            row["mase_seasonal_raw"] = float(np.mean(np.abs(actual_s - raw_s)) / s_mae)
            row["mase_seasonal_used"] = float(np.mean(np.abs(actual_s - eff_s)) / s_mae)
        rows.append(row)
    result["horizons"] = rows
    if n * STEP >= 3 * DAY:
        result["wake"] = wake_figures(y)
    return result


def wake_figures(rate: np.ndarray, horizon: float = WAKE_L) -> dict[str, Any]:
    """Pre-warm wakes on a workload that idles: the trace's demand above its 40th
    percentile (rate - p40, floored at 0), so each day has hours of zero demand and
    a morning onset, like a scaled-to-zero GPU pool serving a daily pattern.

    - onset: the first minute with demand after >= 30 minutes without any;
    - woken early enough: the forecast activation (state ready and >= 1 arrival
      expected within L) was on over the whole [onset - L, onset);
    - woke for nothing: an activation episode that starts while there is no
      demand, and no demand arrives before it ends (or within L after).
    """
    threshold = float(np.nanpercentile(rate, 40))
    demand = np.where(np.isnan(rate), np.nan, np.maximum(0.0, rate - threshold))
    n = len(demand)
    model = Forecaster()
    active = np.zeros(n, dtype=bool)
    for i in range(n):
        if not math.isnan(demand[i]):
            model.observe(ORIGIN + i * STEP + STEP / 2, float(demand[i]))
        outlook = model.outlook(ORIGIN + (i + 1) * STEP, horizon)
        # active[i]: the answer during minute i + 1, decided at its start
        active[i] = outlook.state is ForecastState.READY and outlook.expected_arrivals >= 1.0
    has = np.nan_to_num(demand) > 0
    k = int(horizon // STEP)
    idle_k = int(IDLE_BEFORE_ONSET // STEP)
    onsets, early, leads = 0, 0, []
    for t in range(idle_k, n):
        window = demand[t - idle_k : t]
        if not has[t] or np.isnan(window).any() or window.any():
            continue
        if model_cold_at(t):
            continue
        onsets += 1
        before = active[t - k - 1 : t - 1]  # the answers given during [t - L, t)
        if len(before) == k and before.all():
            early += 1
            start = t - 1
            while start > 0 and active[start - 1]:
                start -= 1
            leads.append((t - 1 - start) * STEP)
    episodes, for_nothing = 0, 0
    i = 0
    while i < n:
        if active[i] and (i == 0 or not active[i - 1]) and not has[i]:
            end = i
            while end < n and active[end]:
                end += 1
            episodes += 1
            if not has[i : min(n, end + k + 1)].any():
                for_nothing += 1
            i = end
        i += 1
    return {
        "demand": "rate above the trace's 40th percentile",
        "horizon_s": horizon,
        "onsets_scored": onsets,
        "woken_early_enough": early,
        "woken_early_share": early / onsets if onsets else None,
        "median_lead_s": float(np.median(leads)) if leads else None,
        "prewarm_episodes": episodes,
        "for_nothing": for_nothing,
        "for_nothing_share": for_nothing / episodes if episodes else None,
    }


def model_cold_at(t: int) -> bool:
    """Onsets in the first day are not scored: the model is cold by design."""
    return t * STEP < DAY + STEP


def update_cost(trace: Trace) -> dict[str, Any]:
    """µs per observation (per-second feed: most only add to the open minute) and
    per closed minute (the model update), and bytes per series."""
    values = trace.per_second if trace.per_second is not None else np.repeat(trace.rate, 60)
    values = values[: int(2 * DAY)]
    model = Forecaster()
    walls = ORIGIN + np.arange(len(values), dtype=float)
    pairs = [(float(w), float(v)) for w, v in zip(walls, values, strict=True) if not math.isnan(v)]
    started = time.perf_counter()
    for wall, value in pairs:
        model.observe(wall, value)
    per_observation = (time.perf_counter() - started) / len(pairs) * 1e6
    minutes = [(ORIGIN + i * STEP + 1, float(v)) for i, v in enumerate(trace.rate[: int(2 * DAY / STEP)])]
    minutes = [(w, v) for w, v in minutes if not math.isnan(v)]
    model = Forecaster()
    started = time.perf_counter()
    for wall, value in minutes:
        model.observe(wall, value)  # each one closes the previous minute
    per_close = (time.perf_counter() - started) / len(minutes) * 1e6
    started = time.perf_counter()
    for i in range(1000):
        model.outlook(ORIGIN + 2 * DAY + i, 300.0)
    per_outlook = (time.perf_counter() - started) / 1000 * 1e6
    return {
        "us_per_observation": round(per_observation, 2),
        "us_per_minute_update": round(per_close, 2),
        "us_per_outlook_300s": round(per_outlook, 2),
        "bytes_per_series": series_bytes(minutes),
    }


def series_bytes(minutes: list[tuple[float, float]]) -> int:
    """Memory of one warmed-up model (tracemalloc, 20 models, averaged)."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    models = []
    for _ in range(20):
        model = Forecaster()
        for wall, value in minutes:
            model.observe(wall, value)
        model.outlook(minutes[-1][0] + STEP, 300.0)
        models.append(model)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return int(grown / len(models))


def check(results: list[dict[str, Any]]) -> list[str]:
    failures = []
    for result in results:
        for row in result["horizons"]:
            where = f"{result['trace']} at {row['horizon_s']} s"
            if row["mase_used"] > 1.05:
                failures.append(f"{where}: used MASE {row['mase_used']:.3f} > 1.05 (more than 5 % worse)")
            if result["trace"] == "twitter_2021_08_per_minute" and row["mase_used"] >= 1.0:
                failures.append(f"{where}: used MASE {row['mase_used']:.3f} >= 1 (must beat naive)")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the targets hold")
    parser.add_argument("--only", help="only traces whose name contains this")
    args = parser.parse_args(argv)
    traces = load_traces(args.only)
    results = []
    for trace in traces:
        started = time.perf_counter()
        result = evaluate(trace)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results.append(result)
        print(f"{trace.name}: {result['days']} d ({result['seconds']} s to evaluate)")
        for row in result["horizons"]:
            seasonal = (
                f"  vs seasonal-naive raw {row['mase_seasonal_raw']:.3f} used {row['mase_seasonal_used']:.3f}"
                if "mase_seasonal_raw" in row
                else ""
            )
            print(
                f"  {row['horizon_s']:>4} s  MASE vs naive raw {row['mase_raw']:.3f} used "
                f"{row['mase_used']:.3f} (used {row['used_share']:.0%} of {row['points']} points){seasonal}"
            )
        if "wake" in result:
            w = result["wake"]
            print(
                f"  pre-warm (L {w['horizon_s']:g} s, {w['demand']}): woken early enough for "
                f"{w['woken_early_enough']}/{w['onsets_scored']} onsets, median lead "
                f"{w['median_lead_s']} s; {w['for_nothing']}/{w['prewarm_episodes']} wakes for nothing"
            )
    biggest = max(traces, key=lambda t: len(t.rate))
    with_seconds = [t for t in traces if t.per_second is not None and len(t.rate) > 2 * 1440]
    cost = update_cost(with_seconds[0] if with_seconds else biggest)
    print(
        f"update cost: {cost['us_per_observation']} µs per observation, "
        f"{cost['us_per_minute_update']} µs per closed minute, "
        f"{cost['us_per_outlook_300s']} µs per 300 s outlook; "
        f"{cost['bytes_per_series']} bytes per series"
    )
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {machine}")
    failures = check(results)
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "cost": cost, "traces": results, "missed": failures}, indent=2)
        )
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
