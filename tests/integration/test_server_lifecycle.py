"""The server around the scaler: health, reflection, and graceful shutdown of the
real command (`python -m scaler serve`) on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

SCALER_SERVICE = "externalscaler.ExternalScaler"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRACE_PERIOD = 5.0


async def test_health_serving_once_started(scaler_server):
    for service in ("", SCALER_SERVICE):
        response = await scaler_server.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == SERVING, service


async def test_health_not_serving_during_shutdown(start_scaler):
    scaler = await start_scaler()
    watch = scaler.health.Watch(health_pb2.HealthCheckRequest(service=SCALER_SERVICE))
    assert (await watch.read()).status == SERVING

    stopping = asyncio.create_task(scaler.server.stop())

    # Pushed while the server drains: a load balancer or probe stops sending new work.
    assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
    watch.cancel()
    await asyncio.wait_for(stopping, 5)


async def test_reflection_lists_the_scaler_service(scaler_server):
    stub = reflection_pb2_grpc.ServerReflectionStub(scaler_server.channel)

    async def ask(request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
        assert len(responses) == 1
        return responses[0]

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {SCALER_SERVICE, "grpc.health.v1.Health"} <= names

    # And the descriptor is served, so grpcurl can call the rpcs without the proto file.
    described = await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SCALER_SERVICE))
    assert described.file_descriptor_response.file_descriptor_proto


async def test_graceful_shutdown_on_sigterm(rabbit, free_port, wait_until):
    port = free_port()
    command = f"serve --host 127.0.0.1 --port {port} --metrics-port 0 --grace-period {GRACE_PERIOD:g}"
    command += " --stream-interval 0.2 --cache-ttl 0.2 --source-timeout 1"
    process = subprocess.Popen(
        [sys.executable, "-m", "scaler", *command.split()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            try:
                response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            except grpc.aio.AioRpcError:
                return False
            return response.status == SERVING

        await wait_until(serving, timeout=20, interval=0.1, what="the scaler subprocess to serve")

        watch = health.Watch(health_pb2.HealthCheckRequest(service=SCALER_SERVICE))
        assert (await watch.read()).status == SERVING
        stream = pb_grpc.ExternalScalerStub(channel).StreamIsActive(
            pb.ScaledObjectRef(name="worker", namespace="default", scalerMetadata=rabbit.metadata())
        )
        assert (await asyncio.wait_for(stream.read(), 5)).result is False  # the current state first

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        assert (await asyncio.wait_for(watch.read(), GRACE_PERIOD)).status == NOT_SERVING
        watch.cancel()
        # The stream ends cleanly (KEDA reconnects at once), not with an error.
        assert await asyncio.wait_for(stream.read(), GRACE_PERIOD) is grpc.aio.EOF
        assert await stream.code() == grpc.StatusCode.OK
        exit_code = await asyncio.to_thread(process.wait, GRACE_PERIOD)
        assert exit_code == 0
        assert time.monotonic() - signalled < GRACE_PERIOD
    finally:
        await channel.close()
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode(errors="replace")
    assert '"message": "stopped"' in output, output
