"""The access policy through the real gRPC server, against real servers: a host
outside --allowed-hosts is INVALID_ARGUMENT at once with no connection made, hosts
inside it read as usual (RabbitMQ, moto's SQS, Prometheus); the scaler's own AWS
identity (its environment, as IRSA would give it) and role assumption are refused
to namespaces outside --ambient-identity-namespaces; health and reflection show
nothing of the configuration."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_fixture import gpu_exporter, gpus, prometheus  # noqa: F401  (fixtures)

from scaler._proto import externalscaler_pb2 as pb
from scaler.access import AccessPolicy, Patterns

pytestmark = pytest.mark.integration

CALL_TIMEOUT = 10.0


def policy(hosts: str | None = None, namespaces: str | None = None) -> AccessPolicy:
    return AccessPolicy(
        allowed_hosts=Patterns.parse(hosts, what="host") if hosts is not None else None,
        ambient_identity_namespaces=Patterns.parse(namespaces, what="namespace")
        if namespaces is not None
        else None,
    )


async def refused(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await asyncio.wait_for(call, CALL_TIMEOUT)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
    return str(failure.value.details())


async def test_hosts_outside_the_list_are_refused_without_a_connection(
    start_scaler, silent_server, wait_until
):
    scaler = await start_scaler(access=policy(hosts="127.0.0.1"), source_timeout=0.5)
    # The same listener under a name the list does not hold: refused at once by
    # every rpc, and nothing ever connects to it.
    named = silent_server.rabbit_http_metadata()
    named["host"] = f"http://guest:guest@localhost:{silent_server.port}"
    ref = scaler.ref(named)
    for call in (
        scaler.stub.GetMetricSpec(ref, timeout=CALL_TIMEOUT),
        scaler.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=ref, metricName=""), timeout=CALL_TIMEOUT
        ),
        scaler.stub.IsActive(ref, timeout=CALL_TIMEOUT),
    ):
        details = await refused(call)
        assert "'host'" in details and "'localhost'" in details, details
        assert "--allowed-hosts" in details and "guest" not in details, details
    stream = scaler.stub.StreamIsActive(ref, timeout=CALL_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stream.read()
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert silent_server.connections == 0
    # The counter counts: an allowed host does reach the listener (and times out).
    with pytest.raises(grpc.aio.AioRpcError) as timed_out:
        await scaler.active(silent_server.rabbit_http_metadata())
    assert timed_out.value.code() == grpc.StatusCode.UNAVAILABLE
    # The scaler's backstop may answer before a late read thread has connected.
    await wait_until(lambda: silent_server.connections >= 1, timeout=5, what="the allowed host's connection")


async def test_allowed_hosts_read_real_servers(start_scaler, rabbit, sqs_queue, prometheus, gpus):  # noqa: F811
    scaler = await start_scaler(access=policy(hosts="127.0.0.0/8"))
    rabbit.publish(3)
    sqs_queue.send(2)
    gpus({"sd-worker-0": 100.0, "sd-worker-1": 100.0})
    gpu_meta = {
        "prometheusServerAddress": prometheus.url,
        "gpuSelector": 'pod=~"sd-worker-.*"',
        "gpuTargetUtilization": "100",
    }
    assert (await scaler.metric(rabbit.metadata("amqp", queueLength="1"))).metricValueFloat == 3
    assert (await scaler.metric(sqs_queue.metadata(queueLength="1"))).metricValueFloat == 2
    assert (await scaler.metric(gpu_meta)).metricValueFloat == 2

    # The same servers named as localhost: each is refused, naming its own key.
    strict = await start_scaler(access=policy(hosts="127.0.0.1"))
    local = f"http://localhost:{prometheus.url.rsplit(':', 1)[1]}"
    for metadata, key in (
        (rabbit.metadata("amqp", host="amqp://guest:guest@localhost:5672/%2F"), "host"),
        (
            sqs_queue.metadata(awsEndpoint=sqs_queue.moto.endpoint.replace("127.0.0.1", "localhost")),
            "awsEndpoint",
        ),
        ({**gpu_meta, "prometheusServerAddress": local}, "prometheusServerAddress"),
    ):
        details = await refused(strict.stub.IsActive(strict.ref(metadata), timeout=CALL_TIMEOUT))
        assert f"metadata key {key!r}" in details and "'localhost'" in details, details


@pytest.fixture
def ambient_aws(monkeypatch: pytest.MonkeyPatch, sqs_queue) -> None:
    """The scaler's own AWS identity, as IRSA or the pod's environment would give
    it, and STS at moto (for awsRoleArn)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSCALEROWN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "scaler-own-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sqs_queue.moto.endpoint)


async def test_ambient_identity_only_for_listed_namespaces(start_scaler, sqs_queue, ambient_aws):
    scaler = await start_scaler(access=policy(namespaces="team-a"))
    sqs_queue.send(4)
    ambient = sqs_queue.metadata(queueLength="1")
    del ambient["awsAccessKeyID"], ambient["awsSecretAccessKey"]
    role = {**ambient, "awsRoleArn": "arn:aws:iam::123456789012:role/team-a-queue-reader"}

    for metadata in (ambient, role):
        # team-a may: the read goes through the scaler's identity (and STS for the role).
        answer = await scaler.stub.IsActive(scaler.ref(metadata, namespace="team-a"), timeout=CALL_TIMEOUT)
        assert answer.result is True
    # team-b may not, whichever way it asks.
    details = await refused(
        scaler.stub.IsActive(scaler.ref(ambient, namespace="team-b"), timeout=CALL_TIMEOUT)
    )
    assert "'awsAccessKeyID'" in details and "'team-b'" in details, details
    assert "--ambient-identity-namespaces" in details
    details = await refused(
        scaler.stub.GetMetricSpec(scaler.ref(role, namespace="team-b"), timeout=CALL_TIMEOUT)
    )
    assert "'awsRoleArn'" in details and "assume" in details, details
    assert "scaler-own-secret" not in details
    # With keys of its own, team-b reads its queue.
    own = await scaler.stub.IsActive(
        scaler.ref(sqs_queue.metadata(), namespace="team-b"), timeout=CALL_TIMEOUT
    )
    assert own.result is True


async def test_health_and_reflection_reveal_no_configuration(start_scaler):
    hosts, namespaces = "rabbit-zq7.internal.example", "team-secret-x9"
    scaler = await start_scaler(access=policy(hosts=hosts, namespaces=namespaces))
    seen: list[bytes] = []
    for service in ("", "externalscaler.ExternalScaler"):
        answer = await scaler.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        seen.append(answer.SerializeToString())
    reflection = reflection_pb2_grpc.ServerReflectionStub(scaler.channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services="")]
    async for response in reflection.ServerReflectionInfo(iter(requests), timeout=5):
        seen.append(response.SerializeToString())
        names = [s.name for s in response.list_services_response.service]
    assert "externalscaler.ExternalScaler" in names
    symbols = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in names]
    async for response in reflection.ServerReflectionInfo(iter(symbols), timeout=5):
        assert response.WhichOneof("message_response") == "file_descriptor_response"
        seen.append(response.SerializeToString())
    everything = b"".join(seen)
    for secret in (hosts, namespaces, "allowed", "ambient", "127.0.0.1", str(scaler.server.metrics_port)):
        assert secret.encode() not in everything, secret
