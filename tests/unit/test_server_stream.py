"""server.stream_wait: when a StreamIsActive stream evaluates next."""

from __future__ import annotations

import pytest

from scaler.server import STREAM_MIN_WAIT, stream_wait


def test_waits_the_interval_while_the_readings_are_young() -> None:
    assert stream_wait(1.0, 2.0, {"queue": 0.1}) == 1.0
    assert stream_wait(1.0, 2.0, {}) == 1.0  # nothing read (a failing source): the interval


def test_wakes_just_after_the_oldest_live_reading_expires() -> None:
    # Read 1.7 s ago by another caller: it expires in 0.3 s, not after a full interval.
    assert stream_wait(1.0, 2.0, {"queue": 1.7, "gpu": 0.2}) == pytest.approx(0.3 + STREAM_MIN_WAIT)


def test_never_spins_on_an_expired_reading() -> None:
    assert stream_wait(1.0, 2.0, {"queue": 5.0}) == STREAM_MIN_WAIT


def test_the_forecasts_own_reads_do_not_count() -> None:
    # The cold start is read every few minutes on purpose: it must not wake the stream.
    assert stream_wait(1.0, 2.0, {"queue": 0.1, "cold start": 120.0, "arrival": 30.0}) == 1.0
