"""Trace loading: every supported format, scaling, and errors that name the line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from scaler.sim.traces import Trace, TraceError, led_in, load_trace, peak_rate, scaled, sliced

BENCH = Path(__file__).resolve().parents[2] / "bench" / "traces"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_count_series_spread_within_bins_and_gaps(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "timestamp_s,count,gap_seconds\n0,120,0\n60,60,0\n120,0,60\n180,30,0\n")
    trace = load_trace(path)
    assert trace.bin_s == 60 and trace.duration_s == 240
    assert trace.counts[:60].tolist() == [2.0] * 60
    assert trace.counts[60:120].tolist() == [1.0] * 60
    assert trace.total == 210
    assert trace.gaps == ((120.0, 180.0),)


def test_per_request_formats(tmp_path: Path) -> None:
    plain = load_trace(write(tmp_path, "r.csv", "timestamp_s,service_s\n0.5,2\n0.7,1.5\n3.2,4\n"))
    assert plain.counts.tolist() == [2.0, 0.0, 1.0]  # re-based to the first request
    assert plain.service_s is not None and plain.service_s.tolist() == [2.0, 1.5, 4.0]
    azure = load_trace(
        write(
            tmp_path,
            "a.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
            "2023-11-16 18:15:50.9951690,396,109\n",
        )
    )
    assert azure.request_times is not None
    assert azure.request_times.tolist() == pytest.approx([0.0, 4.314579])
    assert azure.output_tokens is not None and azure.output_tokens.tolist() == [44.0, 109.0]
    jsonl = tmp_path / "m.jsonl.gz"
    with gzip.open(jsonl, "wt") as handle:
        handle.write('{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n')
        handle.write('{"timestamp": 2500, "input_length": 20, "output_length": 6, "hash_ids": []}\n')
    moon = load_trace(jsonl)
    assert moon.counts.tolist() == [1.0, 0.0, 1.0]
    assert moon.input_tokens is not None and moon.input_tokens.tolist() == [10.0, 20.0]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "timestamp_s,count\n0,5\n60,five\n", r"a\.csv:3: count 'five' is not a number"),
        ("b.csv", "timestamp_s,count\n0,5\n0,6\n", r"b\.csv:3: timestamp_s 0 is not after"),
        ("c.csv", "timestamp_s,count\n0,-1\n", r"c\.csv:2: count '-1' must be a finite number >= 0"),
        ("d.csv", "when,what\n1,2\n", r"d\.csv:1: unknown header 'when,what'"),
        ("e.csv", "", r"e\.csv: empty file"),
        (
            "f.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 5}\n',
            r"f\.jsonl:2: missing key 'input_length'",
        ),
        (
            "g.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n",
            r"g\.csv:2: TIMESTAMP 'yesterday'",
        ),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(write(tmp_path, name, text))


def test_missing_file() -> None:
    with pytest.raises(TraceError, match="no such file"):
        load_trace("/nonexistent/trace.csv")


def test_scaling_a_count_series_and_a_per_request_trace(tmp_path: Path) -> None:
    counts = load_trace(write(tmp_path, "c.csv", "timestamp_s,count\n0,4\n1,8\n"))
    assert scaled(counts, 0.5).counts.tolist() == [2.0, 4.0]
    times = ",\n".join(str(i / 10) for i in range(1000)) + ",\n"
    requests = load_trace(write(tmp_path, "r.csv", "timestamp_s\n" + times.replace(",", "")))
    doubled = scaled(requests, 2.0)
    assert doubled.total == 2000
    thinned = scaled(requests, 0.3, seed=1)
    assert 220 < thinned.total < 380  # binomial thinning, seeded
    assert thinned.request_times is not None and len(thinned.request_times) == thinned.total


def test_the_bundled_traces_load() -> None:
    conv = load_trace(BENCH / "azure_llm_2023_conv.csv")
    assert conv.total == 19366 and conv.input_tokens is not None
    per_second = load_trace(BENCH / "azure_llm_2023_conv_per_second.csv")
    assert np.allclose(conv.counts[: len(per_second.counts)], per_second.counts)
    minute = load_trace(BENCH / "twitter_2021_08_per_minute.csv")
    assert len(minute.gaps) >= 21  # the daily collection gaps, flagged in gap_seconds
    assert peak_rate(sliced(minute, 0, 86400)) > 0


def test_a_lead_in_plays_the_opening_backwards_before_the_trace() -> None:
    trace = Trace(
        name="c", counts=np.asarray([1.0, 2.0, 3.0, 4.0, 5.0]), bin_s=1.0, gaps=((1.0, 2.0), (4.0, 5.0))
    )
    led = led_in(trace, 3)
    # The load is continuous across the join: the lead ends with the second the trace starts with.
    assert led.counts.tolist() == [3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert led.gaps == ((1.0, 2.0), (4.0, 5.0), (7.0, 8.0))
    for bad in (0, 6):
        with pytest.raises(TraceError, match=f"lead-in must be 1 to 5 s .the trace's length., got {bad}"):
            led_in(trace, bad)


def test_a_lead_in_keeps_each_requests_size_with_it(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "r.csv", "timestamp_s,service_s\n0,1\n0.5,2\n1,3\n2.7,4\n4.2,5\n"))
    led = led_in(trace, 3)
    assert led.request_times is not None and led.service_s is not None
    # 2.7 replays at 0.3, 1 just below 2, 0.5 at 2.5 and 0 just below 3; then the trace, 3 s on.
    assert led.service_s.tolist() == [4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.allclose(led.request_times, [0.3, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0, 5.7, 7.2])
    assert (led.request_times[:4] < 3).all() and (np.diff(led.request_times) >= 0).all()
    # Per second, the requests land where the mirrored count series puts them.
    assert led.counts.tolist() == np.bincount(led.request_times.astype(int), minlength=8).tolist()
    assert led.counts.tolist() == [*trace.counts[:3][::-1], *trace.counts]
