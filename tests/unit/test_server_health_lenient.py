"""The health service against real servers: request bytes that are not a
HealthCheckRequest are INVALID_ARGUMENT, with nothing logged at ERROR, on the main
port and on the plaintext health-only port, for Check (unary) and Watch (a stream
that grpc_health writes with context.write, a coroutine rather than an async
generator)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scaler.server import ScalerServer, Settings

LOOPBACK = "127.0.0.1"
HEALTH = "/grpc.health.v1.Health/"
GARBAGE = b"\xff\xff\xff\xff"
CALL_TIMEOUT = 10.0


@pytest.fixture
async def scaler() -> AsyncIterator[ScalerServer]:
    server = ScalerServer(Settings(host=LOOPBACK, port=0, metrics_port=None, health_port=0, grace_period=1.0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("port", ["main", "health"])
async def test_malformed_health_requests_are_invalid_argument_and_not_logged(
    scaler: ScalerServer, port: str, caplog: pytest.LogCaptureFixture
) -> None:
    number = scaler.port if port == "main" else scaler.health_port
    assert number not in (None, 0)
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{number}") as channel:
        with caplog.at_level(logging.ERROR):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await channel.unary_unary(HEALTH + "Check")(GARBAGE, timeout=CALL_TIMEOUT)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
            assert info.value.details() == (
                f"{HEALTH}Check: the request is not a valid protobuf message for this rpc"
            )
            watch = channel.unary_stream(HEALTH + "Watch")(GARBAGE, timeout=CALL_TIMEOUT)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await watch.read()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
            assert info.value.details() == (
                f"{HEALTH}Watch: the request is not a valid protobuf message for this rpc"
            )
        # Well-formed requests are still answered, Watch included.
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        reply = await stub.Check(request, timeout=CALL_TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stream = stub.Watch(request, timeout=CALL_TIMEOUT)
        assert (await stream.read()).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()
    # grpc's own answer to such bytes is UNKNOWN with a traceback logged at ERROR.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
