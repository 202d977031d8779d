"""Shutdown: the pause every open stream takes between ticks."""

from __future__ import annotations

import asyncio
import contextlib

from scaler.server import Shutdown


async def test_pause_sleeps_for_its_interval() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await Shutdown().pause(0.05)
    assert loop.time() - started >= 0.05


async def test_set_ends_every_pause_at_once() -> None:
    shutdown = Shutdown()
    pauses = [asyncio.ensure_future(shutdown.pause(60)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(p.done() for p in pauses)
    shutdown.set()
    await asyncio.wait_for(asyncio.gather(*pauses), timeout=1)
    assert shutdown.is_set()


async def test_pause_after_set_returns_at_once() -> None:
    shutdown = Shutdown()
    shutdown.set()
    await asyncio.wait_for(shutdown.pause(60), timeout=1)


async def test_a_cancelled_pause_leaves_nothing_waiting() -> None:
    shutdown = Shutdown()
    pause = asyncio.ensure_future(shutdown.pause(60))
    await asyncio.sleep(0)
    pause.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pause
    assert not shutdown._waiters
