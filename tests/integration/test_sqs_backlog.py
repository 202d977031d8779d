"""SQS backlog against moto's server mode: visible, in-flight and delayed
messages, counted per scaleOnInFlight / scaleOnDelayed, in both modes.

The test itself plays the worker (it receives messages with a visibility
timeout); the scaler only ever reads queue attributes.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.integration

VISIBLE, IN_FLIGHT, DELAYED = 7, 3, 2
QUEUE_LENGTH = 4.0


@pytest.fixture
def sqs_backlog(sqs_queue):
    """7 visible, 3 in flight (received by the test), 2 delayed."""
    sqs_queue.send(VISIBLE + IN_FLIGHT)
    sqs_queue.receive(IN_FLIGHT, visibility_timeout=300)
    sqs_queue.send(DELAYED, delay_seconds=300)
    assert sqs_queue.counts() == {"visible": VISIBLE, "in_flight": IN_FLIGHT, "delayed": DELAYED}
    return sqs_queue


@pytest.mark.parametrize(
    ("extra", "counted"),
    [
        ({}, VISIBLE + IN_FLIGHT),  # defaults: in flight counted, delayed not
        ({"scaleOnInFlight": "false"}, VISIBLE),
        ({"scaleOnDelayed": "true"}, VISIBLE + IN_FLIGHT + DELAYED),
        ({"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, VISIBLE + DELAYED),
        ({"scaleOnInFlightFromEnv": "false"}, VISIBLE),  # KEDA's resolved FromEnv form
    ],
    ids=["default", "no-in-flight", "with-delayed", "visible-and-delayed", "from-env"],
)
async def test_deployment_mode_counts_per_settings(scaler_server, sqs_backlog, extra, counted):
    meta = sqs_backlog.metadata(queueLength=f"{QUEUE_LENGTH:g}", **extra)

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == pytest.approx(counted / QUEUE_LENGTH)
    assert value.metricValue == math.ceil(counted / QUEUE_LENGTH)
    assert await scaler_server.active(meta) is True


async def test_job_mode_counts_only_waiting(scaler_server, sqs_backlog):
    # Even with delayed counting on: a Job per unclaimed message, never in flight.
    meta = sqs_backlog.metadata(mode="job", queueLength=f"{QUEUE_LENGTH:g}", scaleOnDelayed="true")

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == pytest.approx(VISIBLE / QUEUE_LENGTH)
    assert value.metricValue == math.ceil(VISIBLE / QUEUE_LENGTH)


@pytest.mark.parametrize(
    ("extra", "active"),
    [
        ({"activationQueueLength": str(VISIBLE + IN_FLIGHT - 1)}, True),
        # Below the threshold, messages in flight keep a deployment active (busy
        # pods must not be cooled down to zero), counted in the metric or not.
        ({"activationQueueLength": "100"}, True),
        ({"activationQueueLength": "100", "scaleOnInFlight": "false"}, True),
        # Job mode: the unclaimed backlog only.
        ({"mode": "job", "activationQueueLength": str(VISIBLE - 1)}, True),
        ({"mode": "job", "activationQueueLength": str(VISIBLE)}, False),  # must exceed, not equal
    ],
    ids=["above", "kept-by-in-flight", "kept-by-uncounted-in-flight", "job-above", "job-equal"],
)
async def test_activation_threshold(scaler_server, sqs_backlog, extra, active):
    meta = sqs_backlog.metadata(**extra)

    assert await scaler_server.active(meta) is active


async def test_activation_threshold_without_in_flight(scaler_server, sqs_queue):
    sqs_queue.send(5)
    sqs_queue.send(2, delay_seconds=300)

    assert await scaler_server.active(sqs_queue.metadata(activationQueueLength="4")) is True
    assert await scaler_server.active(sqs_queue.metadata(activationQueueLength="5")) is False  # not equal
    both = sqs_queue.metadata(activationQueueLength="6", scaleOnDelayed="true")
    assert await scaler_server.active(both) is True


async def test_empty_queue_is_zero_and_inactive(scaler_server, sqs_queue):
    meta = sqs_queue.metadata()

    value = await scaler_server.metric(meta)

    assert (value.metricValueFloat, value.metricValue) == (0.0, 0)
    assert await scaler_server.active(meta) is False
