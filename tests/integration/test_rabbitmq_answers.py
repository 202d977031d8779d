"""What RabbitMQ's management API answers, through the real scaler, against a fake
management API on loopback (no broker needed): a count that is missing, null,
NaN, infinite or negative is UNAVAILABLE naming the field, never a reading (a
made-up 0 fed the counted work and the in-flight keep-alive guard)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from fake_http import FakeHttpServer, Request

from scaler.config import parse_trigger
from scaler.signals.base import QueueReading
from scaler.signals.rabbitmq import RabbitHttpSource

pytestmark = pytest.mark.integration

QUEUE = "jobs"
NO_COUNTS_YET = "the management API has no message counts for the queue yet"


class FakeManagementApi:
    """GET /api/queues/<vhost>/<queue> answering `body` (raw JSON text: Python's
    json, as the scaler's, reads a NaN literal)."""

    def __init__(self) -> None:
        self.body = '{"messages_ready": 4, "messages_unacknowledged": 2}'
        self.server = FakeHttpServer(self._answer)
        self.url = self.server.url

    def _answer(self, request: Request) -> tuple[int, str, bytes]:
        return 200, "application/json", self.body.encode()

    def metadata(self) -> dict[str, str]:
        host = self.url.replace("http://", "http://guest:guest@")
        return {"source": "rabbitmq", "host": host, "queueName": QUEUE, "queueLength": "1"}


@pytest.fixture
def management_api() -> Iterator[FakeManagementApi]:
    api = FakeManagementApi()
    yield api
    api.server.stop()


async def _unavailable(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    return str(failure.value.details())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"messages_ready": NaN, "messages_unacknowledged": 2}', "messages_ready = nan; expected a count"),
        (
            '{"messages_ready": 4, "messages_unacknowledged": Infinity}',
            "messages_unacknowledged = inf; expected",
        ),
        ('{"messages_ready": -3, "messages_unacknowledged": 2}', "messages_ready = -3; expected a count"),
        ('{"messages_ready": 4, "messages_unacknowledged": -1}', "messages_unacknowledged = -1; expected"),
        ('{"messages_ready": 4}', NO_COUNTS_YET),
        ('{"messages_ready": null, "messages_unacknowledged": 7}', NO_COUNTS_YET),
        ('{"messages_ready": 4, "messages_unacknowledged": null}', NO_COUNTS_YET),
        ('{"messages_ready": true, "messages_unacknowledged": 2}', "messages_ready is not a number"),
        ('{"messages_ready": "4", "messages_unacknowledged": 2}', "messages_ready is not a number"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "negative-unacked",
        "no-unacked",
        "ready-null",
        "unacked-null",
        "bool",
        "string",
    ],
)
async def test_a_count_that_is_missing_or_not_a_count_is_unavailable(
    start_scaler, management_api, body, expected
):
    scaler = await start_scaler()
    management_api.body = body
    meta = management_api.metadata()

    for call in (scaler.metric(meta), scaler.active(meta)):  # never a made-up reading
        details = await _unavailable(call)
        assert details.startswith(f"rabbitmq queue '{QUEUE}' (vhost '/') at {management_api.url}"), details
        assert expected in details, details
        assert "guest:guest" not in details


@pytest.mark.parametrize("rate", ["NaN", "-1.5", '"fast"', "null"])
def test_a_rate_that_is_not_a_rate_reads_as_not_reported(management_api, rate):
    management_api.body = json.dumps({"messages_ready": 4, "messages_unacknowledged": 2}).replace(
        "}", f', "message_stats": {{"publish_details": {{"rate": {rate}}}}}}}'
    )
    cfg = parse_trigger(management_api.metadata()).rabbitmq
    assert cfg is not None
    source = RabbitHttpSource(cfg, timeout=5.0)
    try:
        assert source.read() == QueueReading(waiting=4.0, in_flight=2.0, publish_rate=None)
    finally:
        source.close()
