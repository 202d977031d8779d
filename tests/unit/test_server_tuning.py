"""serve(): the process tuning applied once the server has started (the switch
interval that keeps read threads from being starved, the collector's thresholds)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Iterator

import pytest

import scaler.server as server_module
from scaler.server import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S, Settings, serve


class StartedServer:
    """Stands in for ScalerServer: records when serve() started and stopped it."""

    def __init__(self, settings: Settings) -> None:
        self.events: list[str] = []
        STARTED.append(self)

    async def start(self) -> None:
        self.events.append("start")
        # serve() tunes the process once the server is up: not yet.
        self.events.append(f"switch interval {sys.getswitchinterval():g}")

    async def stop(self) -> bool:
        self.events.append("stop")
        return True


STARTED: list[StartedServer] = []


@pytest.fixture
def process_settings_restored() -> Iterator[None]:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def test_serve_shortens_the_switch_interval_and_sets_the_collector_once_started(
    monkeypatch: pytest.MonkeyPatch, process_settings_restored: None
) -> None:
    assert sys.getswitchinterval() != pytest.approx(GIL_SWITCH_INTERVAL_S)  # CPython's 5 ms
    STARTED.clear()
    monkeypatch.setattr(server_module, "ScalerServer", StartedServer)
    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(serve(Settings()))
    try:
        while not STARTED or "start" not in STARTED[0].events:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # past the tuning, to the wait for a signal
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        os.kill(os.getpid(), signal.SIGTERM)  # serve()'s own handler ends it
        assert await asyncio.wait_for(serving, timeout=5) is True
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert STARTED[0].events == ["start", "switch interval 0.005", "stop"]
