"""RabbitMQ backlog against the real broker, over AMQP (passive declare) and the
management HTTP API: waiting messages, and unacknowledged ones held by a test
consumer, in both modes."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.integration

PUBLISHED, UNACKED = 10, 3
READY = PUBLISHED - UNACKED
QUEUE_LENGTH = 4.0


@pytest.fixture
async def rabbit_backlog(rabbit):
    """10 published, 3 of them held unacknowledged by a consumer of the test's own;
    returns once the management API (which lags by its stats interval) shows it."""
    rabbit.publish(PUBLISHED)
    rabbit.hold_unacknowledged(UNACKED)
    assert rabbit.counts() == (READY, 1)  # the broker itself knows at once
    await rabbit.wait_management(ready=READY, unacknowledged=UNACKED)
    return rabbit


async def test_counts_over_amqp_and_http_in_both_modes(scaler_server, rabbit_backlog):
    # One backlog, many trigger variants: the management API wait is paid once.
    cases = [
        # (protocol, extra metadata, counted messages)
        ("amqp", {}, READY),  # AMQP cannot see unacknowledged messages
        ("http", {}, READY + UNACKED),
        ("http", {"excludeUnacknowledged": "true"}, READY),
        ("http", {"protocol": "http", "vhostName": "/"}, READY + UNACKED),
        ("amqp", {"mode": "job"}, READY),
        ("http", {"mode": "job"}, READY),  # job mode: the unclaimed backlog only
    ]
    for protocol, extra, counted in cases:
        meta = rabbit_backlog.metadata(protocol, queueLength=f"{QUEUE_LENGTH:g}", **extra)

        value = await scaler_server.metric(meta)

        case = f"{protocol} {extra}"
        assert value.metricValueFloat == pytest.approx(counted / QUEUE_LENGTH), case
        assert value.metricValue == math.ceil(counted / QUEUE_LENGTH), case
        assert await scaler_server.active(meta) is True, case

    # Active when counted work exceeds activationQueueLength (not when it equals it).
    # AMQP cannot see unacknowledged messages: only the ready ones count.
    meta = rabbit_backlog.metadata
    assert await scaler_server.active(meta("amqp", activationQueueLength=str(READY - 1)))
    assert not await scaler_server.active(meta("amqp", activationQueueLength=str(READY)))
    assert await scaler_server.active(meta("http", activationQueueLength=str(READY + UNACKED - 1)))
    # Over HTTP, unacknowledged messages (pods at work) keep a deployment active below
    # the threshold, counted in the metric or not, so KEDA never cools busy pods down.
    assert await scaler_server.active(meta("http", activationQueueLength="100"))
    assert await scaler_server.active(meta("http", activationQueueLength="100", excludeUnacknowledged="true"))
    # Job mode: the unclaimed backlog only.
    assert not await scaler_server.active(meta("http", mode="job", activationQueueLength=str(READY)))


async def test_empty_queue_is_zero_and_inactive(scaler_server, rabbit):
    await rabbit.wait_management(ready=0, unacknowledged=0)  # the API has counts for the new queue
    for protocol in ("amqp", "http"):
        meta = rabbit.metadata(protocol)

        value = await scaler_server.metric(meta)

        assert (value.metricValueFloat, value.metricValue) == (0.0, 0), protocol
        assert await scaler_server.active(meta) is False, protocol
