"""Arrival traces: the formats we read, fitted to a fleet.

Everything becomes arrivals per second (`counts`, float: a scaled count series is
a fluid) plus, for per-request traces, each request's arrival time and what the
trace says about its size (service_s, or input/output token counts).

Formats (the header decides):
- `timestamp_s,count[,gap_seconds]`: arrivals per bin, any bin width (the gap
  between the first two timestamps), spread evenly within each bin; a non-zero
  `gap_seconds` marks missing data;
- `timestamp_s[,service_s]`: one row per request;
- `TIMESTAMP,ContextTokens,GeneratedTokens`: the Azure LLM inference traces;
- `timestamp_ms,input_length,output_length`: the Mooncake derived CSV;
- `*.jsonl` with `timestamp` (ms), `input_length`, `output_length`: Mooncake's release.
Files ending in `.gz` are read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    name: str
    counts: np.ndarray  # arrivals in each second [t, t+1), float
    bin_s: float  # the file's resolution (1 for per-request files)
    request_times: np.ndarray | None = None  # per-request traces: arrival seconds, sorted
    service_s: np.ndarray | None = None  # per request, when the trace gives it
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    # Missing data [start, end) in seconds: no policy is scored on arrivals there.
    gaps: tuple[tuple[float, float], ...] = ()
    rate_scale: float = 1.0
    notes: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> int:
        return len(self.counts)

    @property
    def per_request(self) -> bool:
        return self.request_times is not None

    @property
    def total(self) -> float:
        return float(self.counts.sum())


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def load_trace(path: str | Path) -> Trace:
    """Read a trace in any supported format. Raises TraceError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    try:
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            return _load_jsonl(path)
        return _load_csv(path)
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text file (UTF-8 CSV or JSON lines expected)") from None


def _load_csv(path: Path) -> Trace:
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise TraceError(f"{path}: empty file") from None
        rows = _numbered(reader)
        if header[:2] == ["timestamp_s", "count"]:
            return _counts(path, header, rows)
        if header and header[0] == "timestamp_s":
            return _requests_s(path, header, rows)
        if header[:3] == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
            return _azure_llm(path, rows)
        if header[:3] == ["timestamp_ms", "input_length", "output_length"]:
            return _tokens_ms(path, rows)
    raise TraceError(
        f"{path}:1: unknown header {','.join(header)!r}; expected 'timestamp_s,count', "
        "'timestamp_s[,service_s]', 'TIMESTAMP,ContextTokens,GeneratedTokens' or "
        "'timestamp_ms,input_length,output_length'"
    )


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    for index, row in enumerate(reader):
        if row and any(cell.strip() for cell in row):
            yield index + 2, row  # line 1 is the header


def _number(path: Path, line: int, column: str, text: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise TraceError(f"{path}:{line}: {column} {text!r} must be a finite number >= {minimum:g}")
    return value


def _cells(path: Path, line: int, row: list[str], wanted: int) -> list[str]:
    if len(row) < wanted:
        raise TraceError(f"{path}:{line}: expected {wanted} columns, got {len(row)}")
    return row


def _counts(path: Path, header: list[str], rows: Iterator[tuple[int, list[str]]]) -> Trace:
    has_gap = len(header) > 2 and header[2] == "gap_seconds"
    times: list[float] = []
    counts: list[float] = []
    gap_marks: list[tuple[float, float]] = []
    last = -math.inf
    for line, row in rows:
        _cells(path, line, row, 2)
        t = _number(path, line, "timestamp_s", row[0])
        if t <= last:
            raise TraceError(f"{path}:{line}: timestamp_s {row[0]} is not after the previous row's")
        last = t
        times.append(t)
        counts.append(_number(path, line, "count", row[1]))
        if has_gap and len(row) > 2 and row[2].strip():
            gap = _number(path, line, "gap_seconds", row[2])
            if gap > 0:
                gap_marks.append((t, gap))
    if not times:
        raise TraceError(f"{path}: no rows after the header")
    bin_s = times[1] - times[0] if len(times) > 1 else 1.0
    start = times[0]
    length = math.ceil(times[-1] - start + bin_s)
    per_second = np.zeros(length)
    width = max(1, round(bin_s))
    for t, c in zip(times, counts, strict=True):
        i = round(t - start)
        per_second[i : i + width] += c / width  # spread evenly within the bin
    gaps = _merge([(t - start, t - start + min(g, bin_s)) for t, g in gap_marks])
    if not has_gap:
        gaps = _zero_runs(per_second)
    notes: tuple[str, ...] = ()
    if gaps:
        total = sum(b - a for a, b in gaps)
        notes = (f"{len(gaps)} gaps of missing data ({total:.0f} s) masked from scoring",)
    return Trace(name=path.name, counts=per_second, bin_s=bin_s, gaps=tuple(gaps), notes=notes)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:  # adjacent bins (a 59 s gap then the next minute)
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


# A busy count series that reads exactly zero for this long is missing data
# (a collection gap), not idle time.
GAP_MIN_ZERO_RUN_S = 600
GAP_MIN_MEDIAN_PER_S = 1.0


def _zero_runs(per_second: np.ndarray) -> list[tuple[float, float]]:
    """Collection gaps in a series without a gap column: runs of exact zeros of at
    least GAP_MIN_ZERO_RUN_S in a series whose median second has at least
    GAP_MIN_MEDIAN_PER_S arrivals (a quiet series may really be idle that long)."""
    if len(per_second) == 0 or float(np.median(per_second)) < GAP_MIN_MEDIAN_PER_S:
        return []
    zero = np.concatenate(([False], per_second == 0, [False]))
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return [(float(a), float(b)) for a, b in zip(starts, ends, strict=True) if b - a >= GAP_MIN_ZERO_RUN_S]


def _from_requests(
    path: Path,
    times: list[float],
    service: list[float] | None = None,
    tokens_in: list[float] | None = None,
    tokens_out: list[float] | None = None,
) -> Trace:
    if not times:
        raise TraceError(f"{path}: no rows after the header")
    t = np.asarray(times, dtype=float)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    counts = np.bincount(t.astype(np.int64), minlength=int(t[-1]) + 1).astype(float)

    def arr(values: list[float] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=float)[order]

    return Trace(
        name=path.name,
        counts=counts,
        bin_s=1.0,
        request_times=t,
        service_s=arr(service),
        input_tokens=arr(tokens_in),
        output_tokens=arr(tokens_out),
    )


def _requests_s(path: Path, header: list[str], rows: Iterator[tuple[int, list[str]]]) -> Trace:
    has_service = len(header) > 1 and header[1] == "service_s"
    if len(header) > 1 and not has_service:
        raise TraceError(f"{path}:1: second column must be 'service_s' or 'count', got {header[1]!r}")
    times: list[float] = []
    service: list[float] = []
    for line, row in rows:
        times.append(_number(path, line, "timestamp_s", _cells(path, line, row, 1)[0]))
        if has_service:
            service.append(_number(path, line, "service_s", _cells(path, line, row, 2)[1], minimum=0.0))
    return _from_requests(path, times, service if has_service else None)


def _azure_llm(path: Path, rows: Iterator[tuple[int, list[str]]]) -> Trace:
    times: list[float] = []
    tokens_in: list[float] = []
    tokens_out: list[float] = []
    for line, row in rows:
        _cells(path, line, row, 3)
        stamp = row[0].strip()
        try:
            # 7 fractional digits: Python takes 6.
            head, _, frac = stamp.partition(".")
            when = datetime.fromisoformat(head) if not frac else datetime.fromisoformat(f"{head}.{frac[:6]}")
        except ValueError:
            raise TraceError(f"{path}:{line}: TIMESTAMP {stamp!r} is not a date and time") from None
        times.append(when.timestamp())
        tokens_in.append(_number(path, line, "ContextTokens", row[1]))
        tokens_out.append(_number(path, line, "GeneratedTokens", row[2]))
    return _from_requests(path, times, tokens_in=tokens_in, tokens_out=tokens_out)


def _tokens_ms(path: Path, rows: Iterator[tuple[int, list[str]]]) -> Trace:
    times: list[float] = []
    tokens_in: list[float] = []
    tokens_out: list[float] = []
    for line, row in rows:
        _cells(path, line, row, 3)
        times.append(_number(path, line, "timestamp_ms", row[0]) / 1000)
        tokens_in.append(_number(path, line, "input_length", row[1]))
        tokens_out.append(_number(path, line, "output_length", row[2]))
    return _from_requests(path, times, tokens_in=tokens_in, tokens_out=tokens_out)


def _load_jsonl(path: Path) -> Trace:
    times: list[float] = []
    tokens_in: list[float] = []
    tokens_out: list[float] = []
    with _open_text(path) as handle:
        for index, text in enumerate(handle):
            line = index + 1
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                stamp, t_in, t_out = row["timestamp"], row["input_length"], row["output_length"]
            except (json.JSONDecodeError, TypeError):
                raise TraceError(f"{path}:{line}: not a JSON object") from None
            except KeyError as exc:
                raise TraceError(f"{path}:{line}: missing key {exc.args[0]!r}") from None
            times.append(_number(path, line, "timestamp", str(stamp)) / 1000)
            tokens_in.append(_number(path, line, "input_length", str(t_in)))
            tokens_out.append(_number(path, line, "output_length", str(t_out)))
    return _from_requests(path, times, tokens_in=tokens_in, tokens_out=tokens_out)


def scaled(trace: Trace, factor: float, seed: int = 0) -> Trace:
    """The trace with its rate multiplied by `factor`. A count series scales as a
    fluid; a per-request trace keeps whole requests: each request is kept
    floor(factor) times plus once more with probability frac(factor) (seeded)."""
    if factor <= 0 or not math.isfinite(factor):
        raise TraceError(f"rate scale must be a number > 0, got {factor!r}")
    if factor == 1:
        return trace
    if trace.request_times is None:
        return replace(trace, counts=trace.counts * factor, rate_scale=trace.rate_scale * factor)
    rng = np.random.default_rng(seed)
    n = len(trace.request_times)
    copies = np.floor(factor).astype(int) + (rng.random(n) < factor - math.floor(factor))
    index = np.repeat(np.arange(n), copies)

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[index]

    times = trace.request_times[index]
    counts = np.bincount(times.astype(np.int64), minlength=len(trace.counts)).astype(float)
    return replace(
        trace,
        counts=counts,
        request_times=times,
        service_s=pick(trace.service_s),
        input_tokens=pick(trace.input_tokens),
        output_tokens=pick(trace.output_tokens),
        rate_scale=trace.rate_scale * factor,
    )


def peak_rate(trace: Trace, window_s: int = 60) -> float:
    """The highest arrival rate (per second) averaged over `window_s`, outside gaps."""
    counts = trace.counts
    if len(counts) < window_s:
        return float(counts.sum() / max(1, len(counts)))
    cumulative = np.concatenate(([0.0], np.cumsum(counts)))
    means = (cumulative[window_s:] - cumulative[:-window_s]) / window_s
    return float(means.max())


def sliced(trace: Trace, start_s: int, end_s: int) -> Trace:
    """The part of the trace in [start_s, end_s), re-based to start at 0."""
    counts = trace.counts[start_s:end_s]
    gaps = tuple(
        (max(a, start_s) - start_s, min(b, end_s) - start_s)
        for a, b in trace.gaps
        if b > start_s and a < end_s
    )
    notes = tuple(n for n in trace.notes if "gaps of missing data" not in n)
    if gaps:
        notes += (
            f"{len(gaps)} gaps of missing data ({sum(b - a for a, b in gaps):.0f} s) masked from scoring",
        )
    if trace.request_times is None:
        return replace(trace, counts=counts, gaps=gaps, notes=notes)
    keep = (trace.request_times >= start_s) & (trace.request_times < end_s)

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[keep]

    times = trace.request_times[keep] - start_s
    return replace(
        trace,
        counts=counts,
        request_times=times,
        service_s=pick(trace.service_s),
        input_tokens=pick(trace.input_tokens),
        output_tokens=pick(trace.output_tokens),
        gaps=gaps,
        notes=notes,
    )


def led_in(trace: Trace, seconds: int) -> Trace:
    """The trace preceded by its own first `seconds` played backwards.

    A short trace is a window cut from a service that was already running: replayed
    as it is, every policy starts from zero replicas at the window's full load, and
    that one opening wake sets much of the tail. Led in, each policy enters the
    window with the fleet its own decisions hold for that load. Played backwards,
    the lead ends with the second the trace starts with, so the load is continuous
    across the join. The result's time 0 is `seconds` before the original's;
    the caller scores from `seconds` on (Scenario.warmup_s)."""
    if not 0 < seconds <= trace.duration_s:
        raise TraceError(f"lead-in must be 1 to {trace.duration_s} s (the trace's length), got {seconds}")
    head = sliced(trace, 0, seconds)
    counts = np.concatenate((head.counts[::-1], trace.counts))
    gaps = tuple((seconds - b, seconds - a) for a, b in reversed(head.gaps))
    gaps += tuple((a + seconds, b + seconds) for a, b in trace.gaps)
    if head.request_times is None or trace.request_times is None:
        return replace(trace, counts=counts, gaps=gaps)
    # A request at t in [k, k+1) replays in second seconds - 1 - k: just below seconds - t.
    mirrored = np.nextafter(seconds - head.request_times, -np.inf)
    order = np.argsort(mirrored, kind="stable")

    def joined(lead: np.ndarray | None, rest: np.ndarray | None) -> np.ndarray | None:
        return None if lead is None or rest is None else np.concatenate((lead[order], rest))

    return replace(
        trace,
        counts=counts,
        gaps=gaps,
        request_times=np.concatenate((mirrored[order], trace.request_times + seconds)),
        service_s=joined(head.service_s, trace.service_s),
        input_tokens=joined(head.input_tokens, trace.input_tokens),
        output_tokens=joined(head.output_tokens, trace.output_tokens),
    )
