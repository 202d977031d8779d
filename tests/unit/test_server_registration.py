"""register_leniently: generated registrations with request bytes parsed leniently."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import _MALFORMED, register_leniently


class RecordingServer:
    """What a grpc server is given at registration."""

    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.registered[service] = handlers


class AsyncServicer(pb_grpc.ExternalScalerServicer):
    """The servicer's shape under grpc.aio: coroutines and async generators."""

    async def IsActive(self, request: Any, context: Any) -> Any:
        return None

    async def GetMetricSpec(self, request: Any, context: Any) -> Any:
        return None

    async def GetMetrics(self, request: Any, context: Any) -> Any:
        return None

    async def StreamIsActive(self, request: Any, context: Any) -> AsyncIterator[Any]:
        yield None

    async def StreamMetricSpec(self, request: Any, context: Any) -> AsyncIterator[Any]:
        yield None


def test_every_method_is_registered_both_ways_with_a_lenient_parser() -> None:
    server = RecordingServer()
    register_leniently(pb_grpc.add_ExternalScalerServicer_to_server, AsyncServicer(), server)  # type: ignore[arg-type]
    handlers = server.registered["externalscaler.ExternalScaler"]
    assert set(handlers) == {"IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics", "StreamMetricSpec"}
    assert len(server.generic) == 1  # one generic handler for the service, the same wrapped handlers
    for handler in handlers.values():
        assert handler.request_deserializer is not None
        assert handler.request_deserializer(b"\xff\xff\xff") is _MALFORMED


def test_stubs_that_register_no_service_by_name_are_refused() -> None:
    def old_style_add(servicer: object, server: Any) -> None:
        server.add_generic_rpc_handlers(())

    with pytest.raises(RuntimeError, match="old_style_add registered no service by name"):
        register_leniently(old_style_add, object(), RecordingServer())  # type: ignore[arg-type]


def test_the_health_service_is_wrapped_too_watch_included() -> None:
    # grpc_health's aio Watch is a coroutine writing with context.write, not an async
    # generator: it was registered unwrapped, so its malformed requests were UNKNOWN.
    server = RecordingServer()
    servicer = health.aio.HealthServicer()
    register_leniently(health_pb2_grpc.add_HealthServicer_to_server, servicer, server)  # type: ignore[arg-type]
    handlers = server.registered["grpc.health.v1.Health"]
    assert {"Check", "Watch"} <= set(handlers)
    for name in ("Check", "Watch"):
        handler = handlers[name]
        assert handler.request_deserializer is not None
        assert handler.request_deserializer(b"\xff\xff\xff") is _MALFORMED
    assert handlers["Watch"].unary_stream is not servicer.Watch
