"""serve(): the collector's tuning, applied once the server has started."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Iterator

import pytest

import scaler.server as server_module
from scaler.server import GC_THRESHOLDS, Settings, serve


class StartedServer:
    """Stands in for ScalerServer: records when serve() started and stopped it."""

    def __init__(self, settings: Settings) -> None:
        self.events: list[str] = []
        STARTED.append(self)

    async def start(self) -> None:
        self.events.append("start")
        # serve() tunes the collector once the server is up: not yet.
        self.events.append(f"thresholds {gc.get_threshold()}")

    async def stop(self) -> bool:
        self.events.append("stop")
        return True


STARTED: list[StartedServer] = []


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def test_serve_freezes_the_start_up_objects_and_sets_the_thresholds_once_started(
    monkeypatch: pytest.MonkeyPatch, collector_restored: None
) -> None:
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    assert before != GC_THRESHOLDS
    STARTED.clear()
    monkeypatch.setattr(server_module, "ScalerServer", StartedServer)
    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(serve(Settings()))
    try:
        while not STARTED or "start" not in STARTED[0].events:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # past the tuning, to the wait for a signal
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen_before
        # serve()'s own handler ends it (checked first: SIGTERM would end pytest).
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(serving, timeout=5) is True
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert STARTED[0].events == ["start", f"thresholds {before}", "stop"]
