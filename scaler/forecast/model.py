"""The demand forecaster: online, O(1) per update, bounded memory, pure.

One `Forecaster` per demand series (arrivals per second). No I/O and no clock:
every call passes the wall-clock time in seconds, and seasonality is read from
it (time of day in UTC, day of week).

Observations (rate readings, at any spacing) are averaged into STEP-second
buckets; each closed bucket updates the model once:

- a daily profile: the usual rate at each DAILY_SLOT of the day, an exponential
  average over days (used once a day of history is in);
- a weekly correction: the usual difference from the daily profile at each
  WEEKLY_SLOT of the week (used once two weeks are in);
- level and damped trend (Holt) of the deviation from that seasonal profile;
  before the profile is ready, of the rate itself;
- a recurring peak: at each minute of the day, the average of past days and the
  fading envelope of their highest, each scored against what the minute brought;
  the better one at the asked quantile only raises the upper rate.

The forecast for time t + h is the seasonal profile at t + h plus the current
deviation, which decays towards the profile as h grows (today's traffic is
"10 % above usual", and that fades over hours, not minutes).

It keeps score of itself online: for a ladder of horizons, every forecast made
is compared with what arrived h later, and so is the naive forecast ("the same
as now"). Its recent errors give the upper quantile (from the residuals at
the horizon) and the gate (the forecast is not used while its error is worse
than naive's). See docs/forecast.md.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

STEP = 60.0  # seconds per bucket: the model's time resolution
DAY = 86_400.0
WEEK = 7 * DAY
DAILY_SLOT = 3600.0  # the daily profile's resolution (linear between slots: a smooth profile)
WEEKLY_SLOT = 3600.0  # the weekly correction's resolution
DAILY_SLOTS = int(DAY / DAILY_SLOT)
# The recurring-peak profile: the usual rate at each minute of the day (see
# Forecaster._recurring_peak); only raises the upper rate, never the point forecast.
MINUTE_SLOTS = int(DAY / STEP)
WEEKLY_SLOTS = int(WEEK / WEEKLY_SLOT)
# Horizons (seconds) the model keeps score at; a request for L uses the first >= L.
HORIZONS = (60, 180, 300, 600, 1200, 1800, 3600)
RESIDUALS_KEPT = 240  # recent residuals per horizon, for the quantile (4 h at one per bucket)

MIN_HISTORY = DAY  # cold before: the daily profile is what the forecast adds over "same as now"
WEEKLY_AFTER = 2 * WEEK  # the weekly correction is used once two of each weekday are in
MIN_SCORED = 360  # forecasts scored (6 h) with the daily profile before the gate can open
GATE_CLOSE = 1.0  # gated when the error ratio to naive is above this
GATE_OPEN = 0.97  # and opens again only below this (no flapping at the edge)
# A gap longer than this (no observation at all) lets the deviation fade out:
# the profile is a better guess than a level from before the gap.
LONG_GAP = 6 * 3600.0
# Which recurring estimate raises the upper rate (Tuning.recurring_estimate).
RecurringEstimate = Literal["scored", "average", "envelope"]
OUTLOOK_RESOLUTION = 10.0  # seconds: outlooks are computed at wall time rounded down to this
# A reading more than this before the newest minute means the clock moved back: the
# model re-anchors its timeline there (see observe()). Within it, a reading is late
# or out of order, and ignored. Two minutes: a step back of hours or of minutes alike
# (an NTP correction, a VM restored) would otherwise have every reading ignored until
# the clock caught up, and the last minute's deviation served unfaded all that time.
CLOCK_BACK_LIMIT = 2 * STEP
# Arrival rates above this (per second) are taken for a bad reading (a query in the
# wrong unit, a corrupt sample) and ignored: one such minute would hold the recurring
# floor at maxReplicaCount at that minute for weeks, and past about 1e38 overflow the
# float32 profiles (and the sums past 1e308), leaving a series NaN or inf for good.
MAX_RATE = 1e7
# A forecast whose target minute had no reading is scored against the next minute
# that has one, up to this many minutes late (readings a poll apart when KEDA polls a
# workload at zero every 2 to 5 minutes); later than that it is dropped.
SCORE_LATE_BUCKETS = 5
# The error ratio reported when naive's error is exactly 0 and the model's is not.
MAX_ERROR_RATIO = 1e6


@dataclass(frozen=True)
class Tuning:
    """Smoothing constants, per bucket unless stated. Chosen on the benchmark
    traces (bench/bench_forecast.py) as round values, none per trace."""

    # Level: the last minute as it is. Smoothing it costs more (it lags real
    # moves) than it gains on noise, on every trace.
    level: float = 1.0
    trend: float = 0.2  # Holt trend smoothing: minute-to-minute momentum
    trend_damping: float = 0.3  # per bucket: momentum is gone within a few minutes
    # Per bucket: a deviation from the usual profile halves in 30 minutes (a burst
    # or a lull is short-lived; the pattern is what comes back).
    deviation_persistence: float = 0.5 ** (STEP / 1800)
    # Per update of a slot (one per bucket): each day's weight in the profile is
    # about 20 % (an exponential average over the last ~5 days).
    daily: float = 1 - 0.8 ** (STEP / DAILY_SLOT)
    weekly: float = 1 - 0.8 ** (STEP / WEEKLY_SLOT)  # the same, over weeks
    # Error averages for the gate: a memory of about a day, so that the quiet
    # hours (where any forecast is right) and the busy ones are weighed together.
    error: float = 1 / 1440
    # Per day (one update per minute slot a day): each day's weight in the
    # recurring-peak profile, as in the daily profile (about 20 %).
    recurring: float = 0.2
    # Per day: the recurring-peak envelope (each minute's highest recent rate)
    # falls 15 % of the way to what the minute brings, and rises to it at once.
    envelope_fade: float = 0.85
    # Which recurring estimate raises the upper rate: the one that scored better
    # (always, in the server), or one of them (a seam for bench/bench_recurring.py).
    recurring_estimate: RecurringEstimate = "scored"


class ForecastState(StrEnum):
    COLD = "cold"  # too little history
    GATED = "gated"  # recent errors worse than the naive forecast
    READY = "ready"  # used


@dataclass(frozen=True)
class Outlook:
    """What the model expects over [now, now + horizon]."""

    state: ForecastState
    reason: str  # "cold: 2.0 h of history (needs 24 h)", "gated: error 1.4x naive", "ready: ..."
    horizon: float  # seconds looked ahead
    history: float  # seconds of history behind the model
    rate: float  # point forecast: mean arrivals/s over the window
    peak: float  # point forecast: the highest bucket rate in the window
    upper: float  # the upper quantile of the peak, or the recurring peak if higher (arrivals/s)
    expected_arrivals: float  # rate * horizon: arrivals expected in the window
    error_ratio: float | None  # model error / naive error at the horizon; None before scored
    # The usual (or recent highest) peak minute in the window on past days (arrivals/s).
    recurring: float = 0.0
    # True when `recurring` is the envelope of recent days' highest minutes, the
    # estimate that scored better at the quantile asked for; False: the average.
    recurring_envelope: bool = False

    @property
    def usable(self) -> bool:
        return self.state is ForecastState.READY


class Forecaster:
    """Online forecaster of one demand series. Every public method is total:
    bad input (NaN, negative, time going back) is ignored, never raised."""

    __slots__ = (
        "_bucket",
        "_bucket_n",
        "_bucket_sum",
        "_daily",
        "_daily_n",
        "_daily_ready",
        "_envelope",
        "_err_model",
        "_err_naive",
        "_first",
        "_last_bucket",
        "_last_value",
        "_level",
        "_minute",
        "_outlook_memo",
        "_pending_f",
        "_pending_idx",
        "_pending_naive",
        "_quantile_memo",
        "_recurring_loss",
        "_recurring_scored",
        "_residual_n",
        "_residuals",
        "_scored",
        "_trend",
        "_tune",
        "_weekly",
        "gated",
        "ignored",
    )

    def __init__(self, tuning: Tuning | None = None) -> None:
        self._tune = tuning or Tuning()
        self._first: float | None = None  # wall time of the first bucket
        self._bucket: int | None = None  # index (wall // STEP) of the open bucket
        self._bucket_sum = 0.0
        self._bucket_n = 0
        self._last_bucket: int | None = None  # the last closed bucket
        self._last_value = 0.0
        self._level = 0.0
        self._trend = 0.0
        self._daily = array("d", [math.nan]) * DAILY_SLOTS
        self._daily_n = 0  # slots seen at least once
        self._daily_ready = False
        self._weekly = array("d", [0.0]) * WEEKLY_SLOTS
        self._minute = array("f", [math.nan]) * MINUTE_SLOTS  # float32: 5.6 KB
        self._envelope = array("f", [math.nan]) * MINUTE_SLOTS  # float32: 5.6 KB
        # How each recurring estimate fared against the minute it estimated: the
        # average under- and over-estimate of the average's, then the envelope's.
        self._recurring_loss = array("d", [0.0]) * 4
        self._recurring_scored = 0
        # Forecasts waiting for their outcome: one ring per horizon, indexed by
        # target bucket modulo the ring size (h / STEP entries each).
        sizes = [max(1, int(h // STEP)) for h in HORIZONS]
        total = sum(sizes)
        self._pending_idx = array("q", [-1]) * total
        self._pending_f = array("d", [0.0]) * total
        self._pending_naive = array("d", [0.0]) * total
        self._err_model = array("d", [0.0]) * len(HORIZONS)
        self._err_naive = array("d", [0.0]) * len(HORIZONS)
        self._scored = array("q", [0]) * len(HORIZONS)
        self._residuals = array("d", [0.0]) * (RESIDUALS_KEPT * len(HORIZONS))  # relative residuals
        self._residual_n = array("q", [0]) * len(HORIZONS)
        self._quantile_memo: dict[tuple[int, int, float], float] = {}
        self._outlook_memo: dict[tuple[float, float, float], Outlook] = {}
        self.gated = array("b", [0]) * len(HORIZONS)
        self.ignored = 0  # observations ignored (bad values, time going back)

    # --- feeding ---------------------------------------------------------------

    def observe(self, wall: float, rate: float) -> None:
        """One reading of the arrival rate (per second) at wall-clock time `wall`."""
        if not (math.isfinite(wall) and math.isfinite(rate)) or rate < 0 or rate > MAX_RATE:
            self.ignored += 1
            return
        index = int(wall // STEP)
        newest = self._bucket if self._bucket is not None else self._last_bucket
        if newest is not None and index < newest + (0 if self._bucket is not None else 1):
            if (newest - index) * STEP > CLOCK_BACK_LIMIT:
                # The clock was wrong before (or is now): start the timeline
                # again from here, keeping what was learnt about the pattern.
                self._reanchor(index)
            else:
                self.ignored += 1  # late or out of order: that bucket is closed
                return
        if self._bucket is None:
            self._open(index)
        elif index > self._bucket:
            self._close()
            self._open(index)
        self._bucket_sum += rate
        self._bucket_n += 1

    def _open(self, index: int) -> None:
        if self._first is None:
            self._first = index * STEP
        self._bucket = index
        self._bucket_sum = 0.0
        self._bucket_n = 0

    def _reanchor(self, index: int) -> None:
        """Go on from bucket `index` as if it followed the newest one: the minute in
        progress is closed (it was read, under the old clock), what was learnt is
        kept (profile, level, trend, scores), and the forecasts waiting for minutes
        of the old timeline are dropped. The history's span is kept."""
        newest = self._bucket if self._bucket is not None else self._last_bucket
        span = (newest or index) * STEP - (self._first or 0.0)
        self._close()
        self._bucket = None
        if self._last_bucket is not None:
            self._last_bucket = index - 1  # the next minute closed follows it: no gap
        for i in range(len(self._pending_idx)):
            self._pending_idx[i] = -1
        self._quantile_memo.clear()
        self._outlook_memo.clear()
        self._first = index * STEP - span
        self._open(index)

    def flush(self, wall: float) -> None:
        """Close the open bucket if `wall` is past it (so a forecast made at
        `wall` includes the last complete bucket)."""
        if self._bucket is not None and int(wall // STEP) > self._bucket and self._bucket_n:
            self._close()
            self._bucket = None

    def _close(self) -> None:
        index = self._bucket
        if index is None or self._bucket_n == 0:
            return
        value = self._bucket_sum / self._bucket_n
        t = self._tune
        wall = (index + 0.5) * STEP
        gap = (index - self._last_bucket - 1) * STEP if self._last_bucket is not None else 0.0
        self._score(index, value)
        if self._last_bucket is None:
            self._level = value - (self._seasonal(wall) if self._daily_ready else 0.0)
            self._trend = 0.0
        else:
            steps = index - self._last_bucket
            if gap > LONG_GAP and self._daily_ready:
                self._level = 0.0  # the pattern, not the pre-gap deviation
            elif steps > 1:
                self._level *= t.deviation_persistence ** (steps - 1) if self._daily_ready else 1.0
                self._trend = 0.0
            deviation = value - (self._seasonal(wall) if self._daily_ready else 0.0)
            previous = self._level
            self._level = t.level * deviation + (1 - t.level) * (previous + self._trend)
            self._trend = t.trend * (self._level - previous) + (1 - t.trend) * self._trend * t.trend_damping
        self._learn_seasonal(wall, value)
        self._last_bucket = index
        self._last_value = value
        self._issue(index, wall, value)
        self._quantile_memo.clear()
        self._outlook_memo.clear()

    def _learn_seasonal(self, wall: float, value: float) -> None:
        t = self._tune
        minute = int((wall % DAY) // STEP)
        seen = self._minute[minute]
        envelope = self._envelope[minute]
        if not math.isnan(seen):
            self._score_recurring(value, seen, envelope)
        self._minute[minute] = value if math.isnan(seen) else seen + t.recurring * (value - seen)
        self._envelope[minute] = (
            value if math.isnan(envelope) else value + t.envelope_fade * max(0.0, envelope - value)
        )
        slot = int((wall % DAY) // DAILY_SLOT)
        current = self._daily[slot]
        if math.isnan(current):
            self._daily[slot] = value
            self._daily_n += 1
        else:
            self._daily[slot] = current + t.daily * (value - current)
        if self._daily_ready:
            week_slot = int((wall % WEEK) // WEEKLY_SLOT)
            diff = value - self._daily_at(wall)
            self._weekly[week_slot] += t.weekly * (diff - self._weekly[week_slot])
        elif self.history_at(wall) >= MIN_HISTORY and self._daily_n >= DAILY_SLOTS // 2:
            self._fill_daily()
            self._daily_ready = True
            # Score the model afresh: the first day's errors were those of a model
            # without its profile.
            for h in range(len(HORIZONS)):
                self._scored[h] = 0
                self._residual_n[h] = 0
                self.gated[h] = 0  # the gate judges the new model only
            # From now on the level is the deviation from the profile.
            self._level = value - self._daily_at(wall)
            self._trend = 0.0

    def _fill_daily(self) -> None:
        """Slots never seen (gaps) take the nearest seen slot's value."""
        seen = [i for i in range(DAILY_SLOTS) if not math.isnan(self._daily[i])]
        if not seen:
            return
        for i in range(DAILY_SLOTS):
            if math.isnan(self._daily[i]):
                nearest = min(seen, key=lambda j: min(abs(i - j), DAILY_SLOTS - abs(i - j)))
                self._daily[i] = self._daily[nearest]

    # --- the seasonal profile ----------------------------------------------------

    def _daily_at(self, wall: float) -> float:
        """The daily profile at `wall`, linear between slot centres."""
        position = (wall % DAY) / DAILY_SLOT - 0.5
        low = math.floor(position)
        frac = position - low
        a = self._daily[low % DAILY_SLOTS]
        b = self._daily[(low + 1) % DAILY_SLOTS]
        return a + (b - a) * frac

    def _seasonal(self, wall: float) -> float:
        value = self._daily_at(wall)
        if self.history_at(wall) >= WEEKLY_AFTER:
            value += self._weekly[int((wall % WEEK) // WEEKLY_SLOT)]
        return value

    # --- forecasting -------------------------------------------------------------

    def predict(self, wall: float, ahead: float) -> float:
        """Point forecast of the rate (per second) at `wall + ahead`, from the
        last closed bucket. 0 when nothing was ever observed."""
        if self._last_bucket is None:
            return 0.0
        t = self._tune
        origin = (self._last_bucket + 0.5) * STEP
        steps = max(0.0, (wall + ahead - origin) / STEP)
        damped = t.trend_damping * (1 - t.trend_damping**steps) / (1 - t.trend_damping)
        deviation = self._level + self._trend * damped
        if not self._daily_ready:
            return max(0.0, deviation)
        if (wall - origin) > LONG_GAP:
            deviation = 0.0
        deviation *= t.deviation_persistence**steps
        return max(0.0, self._seasonal(wall + ahead) + deviation)

    def outlook(self, wall: float, horizon: float, quantile: float = 0.9) -> Outlook:
        """What is expected over [wall, wall + horizon], and whether to use it.

        Computed at `wall` rounded down to OUTLOOK_RESOLUTION and kept until the
        model changes: many objects polling one series every few seconds share one
        computation (the model itself moves once a minute)."""
        self.flush(wall)
        wall = math.floor(wall / OUTLOOK_RESOLUTION) * OUTLOOK_RESOLUTION
        key = (wall, horizon, quantile)
        kept = self._outlook_memo.get(key)
        if kept is not None:
            return kept
        if len(self._outlook_memo) >= 8:
            self._outlook_memo.clear()
        self._outlook_memo[key] = made = self._outlook(wall, horizon, quantile)
        return made

    def _outlook(self, wall: float, horizon: float, quantile: float) -> Outlook:
        # A window of at least one bucket to read the forecast over; arrivals are
        # expected within the cold start itself.
        cold_start = horizon
        horizon = max(STEP, horizon)
        history = self.history_at(wall)
        h = _horizon_index(horizon)
        ratio = self.error_ratio(h)
        points = max(1, math.ceil(horizon / STEP))
        path = [self.predict(wall, (i + 0.5) * horizon / points) for i in range(points)]
        rate = sum(path) / points
        peak = max(path)
        margin = self._quantile(h, quantile)
        envelope, recurring = False, 0.0
        if self._daily_ready:
            chosen = self._tune.recurring_estimate
            envelope = self._envelope_scores_better(quantile) if chosen == "scored" else chosen == "envelope"
            recurring = self._recurring_peak(wall, horizon, envelope)
        upper = max(peak, peak * (1 + margin), recurring)
        state, reason = self._state(history, h, ratio)
        return Outlook(
            state=state,
            reason=reason,
            horizon=horizon,
            history=history,
            rate=rate,
            peak=peak,
            upper=upper,
            expected_arrivals=rate * cold_start,
            error_ratio=ratio,
            recurring=recurring,
            recurring_envelope=envelope,
        )

    def _recurring_peak(self, wall: float, horizon: float, envelope: bool) -> float:
        """The highest minute in [wall, wall + horizon] on past days: their average
        at each minute, or with `envelope` the recent highest (fading).

        The hourly profile (the point forecast) smooths a burst that comes back
        at the same minute of the day (a batch sender, a cron job, a scheduled
        report) into its hour; these per-minute profiles keep it, so the upper
        rate (the floor) covers it before it comes, one cold start ahead. It
        never lowers the upper rate, and it is used only with the forecast (once
        the daily profile is in; while gated, on its own)."""
        profile = self._envelope if envelope else self._minute
        first = int((wall % DAY) // STEP)
        # Every minute the window touches, the one holding wall + horizon included:
        # replicas asked for now are Ready then, and must be for that minute.
        minutes = int((wall + horizon) // STEP) - int(wall // STEP) + 1
        peak = 0.0
        for i in range(minutes):
            value = profile[(first + i) % MINUTE_SLOTS]
            if value > peak:  # NaN (a minute never seen) compares False
                peak = value
        return peak

    def _score_recurring(self, value: float, average: float, envelope: float) -> None:
        """Score both recurring estimates of this minute (made from past days)
        against what it brought: the average under- and over-estimate of each,
        with the gate's memory of about a day."""
        loss = self._recurring_loss
        weight = 1.0 if self._recurring_scored == 0 else self._tune.error
        for i, estimate in enumerate((average, envelope)):
            loss[2 * i] += weight * (max(0.0, value - estimate) - loss[2 * i])
            loss[2 * i + 1] += weight * (max(0.0, estimate - value) - loss[2 * i + 1])
        self._recurring_scored += 1

    def _envelope_scores_better(self, quantile: float) -> bool:
        """Whether the envelope of recent days' highest minutes has been the better
        `quantile` estimate of each minute than the average over days: a lower
        pinball loss (under-estimates weigh `quantile`, over-estimates the rest).

        A burst that comes back at its minute on some days but not all is half
        averaged away, and the envelope keeps it; bursts at random times would
        have the envelope pre-warm every minute one ever came at, and there it
        loses on over-estimates and the average stays (docs/decisions.md)."""
        if self._recurring_scored < MIN_SCORED:
            return False
        loss = self._recurring_loss
        average = quantile * loss[0] + (1 - quantile) * loss[1]
        return quantile * loss[2] + (1 - quantile) * loss[3] < average

    def _state(self, history: float, h: int, ratio: float | None) -> tuple[ForecastState, str]:
        if self._last_bucket is None:
            return ForecastState.COLD, "cold: no history yet"
        if history < MIN_HISTORY or not self._daily_ready:
            return (
                ForecastState.COLD,
                f"cold: {history / 3600:.1f} h of history (needs {MIN_HISTORY / 3600:.0f} h)",
            )
        if ratio is None:
            scored = self._scored[h]
            return ForecastState.COLD, f"cold: {scored} of {MIN_SCORED} forecasts scored at {HORIZONS[h]} s"
        weekly = ", weekly" if history >= WEEKLY_AFTER else ""
        if self.gated[h]:
            return ForecastState.GATED, f"gated: error {ratio:.2f}x naive"
        days = f"{history / 86400:.1f} d of history{weekly}"
        return ForecastState.READY, f"ready: error {ratio:.2f}x naive, {days}"

    def error_ratio(self, h: int) -> float | None:
        """Recent mean absolute error of the model over naive's, at HORIZONS[h]."""
        if self._scored[h] < MIN_SCORED:
            return None
        naive = self._err_naive[h]
        model = self._err_model[h]
        if naive <= 0:
            return 1.0 if model <= 0 else MAX_ERROR_RATIO
        return min(MAX_ERROR_RATIO, model / naive)

    def history_at(self, wall: float) -> float:
        """Seconds between the first observation and `wall`."""
        return 0.0 if self._first is None else max(0.0, wall - self._first)

    # --- keeping score -----------------------------------------------------------

    def _issue(self, index: int, wall: float, value: float) -> None:
        """Record this bucket's forecasts at each horizon, to score them later."""
        offset = 0
        for horizon in HORIZONS:
            size = max(1, int(horizon // STEP))
            target = index + size
            slot = offset + target % size
            self._pending_idx[slot] = target
            self._pending_f[slot] = self.predict(wall - 0.5 * STEP + STEP, horizon - STEP * 0.5)
            self._pending_naive[slot] = value
            offset += size

    def _score(self, index: int, value: float) -> None:
        """Score the forecasts made for this bucket, and, after buckets without a
        reading, those made for them (against this bucket, up to SCORE_LATE_BUCKETS
        late): with readings 2 minutes apart, the 1, 3 and 5-minute forecasts never
        met their exact target, and the forecast stayed cold for good."""
        offset = 0
        skipped = self._last_bucket is not None and index - self._last_bucket > 1
        for h, horizon in enumerate(HORIZONS):
            size = max(1, int(horizon // STEP))
            slots = range(offset, offset + size) if skipped else (offset + index % size,)
            offset += size
            for slot in slots:
                target = self._pending_idx[slot]
                if target == index or (skipped and 0 <= index - target <= SCORE_LATE_BUCKETS):
                    self._pending_idx[slot] = -1
                    self._score_one(h, slot, value)

    def _score_one(self, h: int, slot: int, value: float) -> None:
        t = self._tune
        forecast = self._pending_f[slot]
        model_err = abs(value - forecast)
        naive_err = abs(value - self._pending_naive[slot])
        if self._scored[h] == 0:
            self._err_model[h], self._err_naive[h] = model_err, naive_err
        else:
            self._err_model[h] += t.error * (model_err - self._err_model[h])
            self._err_naive[h] += t.error * (naive_err - self._err_naive[h])
        self._scored[h] += 1
        ratio = self.error_ratio(h)
        if ratio is not None:
            if ratio > GATE_CLOSE:
                self.gated[h] = 1
            elif ratio < GATE_OPEN:
                self.gated[h] = 0
        # Relative residual (how far above the forecast it came), for the quantile.
        scale = max(forecast, 1e-9)
        residual = min(10.0, max(-1.0, (value - forecast) / scale)) if forecast > 0 else 0.0
        n = self._residual_n[h]
        self._residuals[h * RESIDUALS_KEPT + n % RESIDUALS_KEPT] = residual
        self._residual_n[h] = n + 1

    def _quantile(self, h: int, quantile: float) -> float:
        """The `quantile` of the recent relative residuals at HORIZONS[h] (0 without any)."""
        n = min(self._residual_n[h], RESIDUALS_KEPT)
        if n == 0:
            return 0.0
        key = (h, n, quantile)
        memo = self._quantile_memo.get(key)
        if memo is not None:
            return memo
        start = h * RESIDUALS_KEPT
        ordered = sorted(self._residuals[start : start + n])
        position = min(n - 1, max(0, math.ceil(quantile * n) - 1))
        value = max(0.0, ordered[position])
        self._quantile_memo[key] = value
        return value


def _horizon_index(horizon: float) -> int:
    for i, h in enumerate(HORIZONS):
        if horizon <= h:
            return i
    return len(HORIZONS) - 1
