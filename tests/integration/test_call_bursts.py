"""A burst of calls, as KEDA makes when it starts: it opens every external-push
object's StreamIsActive at once. grpc refuses calls waiting to be picked up past
its pending limits (CANCELLED), which by its own defaults cancelled about a tenth
of 2,000 streams opened together; the scaler's limit (--max-pending-calls) lets
such a burst wait its second instead."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from scaler.server import Settings

pytestmark = pytest.mark.integration

BURST = 2500  # streams opened at once: past grpc's own soft limit (1,000) by far
FIRST_ANSWER_WITHIN_S = 30.0


async def _open_all(scaler, metadata: dict[str, str], count: int) -> Counter[str]:
    """Open `count` streams at once; how each ended: its first answer, or its status."""

    async def first_answer(i: int) -> str:
        stream = scaler.stub.StreamIsActive(scaler.ref(metadata, name=f"worker-{i:05d}"))
        try:
            message = await asyncio.wait_for(stream.read(), FIRST_ANSWER_WITHIN_S)
            return "answered" if message is not grpc.aio.EOF and message.result else "wrong answer"
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        finally:
            stream.cancel()

    return Counter(await asyncio.gather(*(first_answer(i) for i in range(count))))


async def test_every_stream_of_a_burst_is_answered(start_scaler, rabbit):
    rabbit.publish(3)
    scaler = await start_scaler()
    assert scaler.server.settings.max_pending_calls == Settings().max_pending_calls
    outcomes = await _open_all(scaler, rabbit.metadata("amqp"), BURST)
    assert outcomes == Counter({"answered": BURST})


async def test_calls_past_the_pending_limit_are_refused(start_scaler, rabbit):
    """The same burst against a low limit: grpc cancels some, so the setting is
    what the server runs with (and the test above could fail)."""
    rabbit.publish(3)
    scaler = await start_scaler(max_pending_calls=100)
    outcomes = await _open_all(scaler, rabbit.metadata("amqp"), BURST)
    assert outcomes["CANCELLED"] > 0, outcomes
    assert set(outcomes) <= {"answered", "CANCELLED"}, outcomes
