"""Bad trigger metadata: INVALID_ARGUMENT naming the key, from every rpc KEDA uses."""

from __future__ import annotations

import grpc
import pytest

from scaler._proto import externalscaler_pb2 as pb

pytestmark = pytest.mark.integration

SQS_URL = "http://127.0.0.1:9/000000000000/jobs"  # never read: validation fails first

BAD_METADATA = [
    # (metadata, the key the error must name)
    ({"queueURL": SQS_URL, "queueName": "jobs"}, "source"),  # both SQS's and RabbitMQ's key: say which
    ({"source": "kafka"}, "source"),
    ({"source": "sqs", "queueURL": SQS_URL, "awsRegion": "us-east-1", "queueLength": "0"}, "queueLength"),
    ({"source": "sqs", "queueURL": SQS_URL, "awsRegion": "us-east-1", "mode": "batch"}, "mode"),
    ({"source": "sqs", "queueURL": SQS_URL}, "awsRegion"),
    ({"source": "sqs", "awsRegion": "us-east-1"}, "queueURL"),
    (
        {"source": "sqs", "queueURL": SQS_URL, "awsRegion": "us-east-1", "scaleOnInFlight": "maybe"},
        "scaleOnInFlight",
    ),
    ({"source": "rabbitmq", "host": "amqp://guest:guest@127.0.0.1:5672/"}, "queueName"),
    ({"source": "rabbitmq", "host": "ftp://127.0.0.1/", "queueName": "jobs"}, "host"),
    (
        {
            "source": "rabbitmq",
            "host": "amqp://guest:guest@127.0.0.1:5672/",
            "queueName": "jobs",
            "excludeUnacknowledged": "true",
        },
        "excludeUnacknowledged",
    ),
    (
        {
            "source": "rabbitmq",
            "host": "amqp://127.0.0.1/",
            "queueName": "jobs",
            "activationQueueLength": "-1",
        },
        "activationQueueLength",
    ),
    # KEDA's rabbitmq metadata: MessageRate needs the management API, value goes with mode
    ({"host": "amqp://127.0.0.1/", "queueName": "jobs", "mode": "MessageRate", "value": "5"}, "mode"),
    ({"host": "amqp://127.0.0.1/", "queueName": "jobs", "mode": "QueueLength"}, "value"),
    ({"host": "http://127.0.0.1:15672/", "queueName": "j.*", "useRegex": "true"}, "useRegex"),
]


async def _get_metrics(scaler, ref: pb.ScaledObjectRef) -> object:
    return await scaler.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName="anything"))


async def _stream_is_active(scaler, ref: pb.ScaledObjectRef) -> object:
    return [message async for message in scaler.stub.StreamIsActive(ref)]


RPCS = {
    "GetMetricSpec": lambda scaler, ref: scaler.stub.GetMetricSpec(ref),
    "GetMetrics": _get_metrics,
    "IsActive": lambda scaler, ref: scaler.stub.IsActive(ref),
    "StreamIsActive": _stream_is_active,
}


async def test_every_rpc_rejects_bad_metadata_naming_the_key(scaler_server):
    # One server for all cases (a loop, not parametrize, keeps the suite fast);
    # every mismatch is collected so one run shows them all.
    mismatches = []
    for metadata, key in BAD_METADATA:
        ref = scaler_server.ref(metadata)
        for rpc, call in RPCS.items():
            try:
                await call(scaler_server, ref)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if (
                    code != grpc.StatusCode.INVALID_ARGUMENT
                    or f"'{key}'" not in details
                    or "expected" not in details
                ):
                    mismatches.append((rpc, key, code.name, details))
            else:
                mismatches.append((rpc, key, "OK", "accepted bad metadata"))
    assert mismatches == []


async def test_wrong_metric_name_in_get_metrics(scaler_server, rabbit):
    ref = scaler_server.ref(rabbit.metadata())
    request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName="s0-some-other-metric")

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await scaler_server.stub.GetMetrics(request)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'metricName'" in failure.value.details()
