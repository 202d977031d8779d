"""The server around the scaler: health (not SERVING before it is ready nor while it
drains), reflection, and graceful shutdown of the real command (`python -m scaler
serve`) on SIGTERM, calls in flight included."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import scaler
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.server import ScalerServer

pytestmark = pytest.mark.integration

SCALER_SERVICE = "externalscaler.ExternalScaler"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRACE_PERIOD = 5.0
CALL_TIMEOUT = 30.0


async def test_health_not_serving_until_start_completes(start_scaler, monkeypatch):
    """The gRPC port listens before start() has finished (health port, /metrics,
    housekeeping still to come): a probe arriving then must not see SERVING.
    grpc's health servicer answers SERVING for "" by default, so this needs the
    explicit NOT_SERVING that start() sets before the port opens."""
    seen: dict[str, object] = {}
    start_health_server = ScalerServer._start_health_server

    async def probe_then_start(self: ScalerServer) -> None:
        # Called by start() after the main gRPC server listens, before it declares
        # readiness: ask over a real connection, as the kubelet or KEDA would.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SCALER_SERVICE):
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                    seen[service] = reply.status
                except grpc.aio.AioRpcError as exc:
                    seen[service] = exc.code()
        await start_health_server(self)

    monkeypatch.setattr(ScalerServer, "_start_health_server", probe_then_start)
    scaler = await start_scaler(health_port=0)

    assert seen[""] == NOT_SERVING
    # Not registered yet is just as good: anything but SERVING.
    assert seen[SCALER_SERVICE] in (NOT_SERVING, grpc.StatusCode.NOT_FOUND)
    for service in ("", SCALER_SERVICE):  # and once start() returned, ready
        reply = await scaler.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == SERVING, service


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


class ServeProcess:
    """The real command, `python -m scaler serve`, on an OS-chosen port (--port 0)
    read from its JSON "serving" log line, so no port is picked and then raced for."""

    def __init__(self, flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scaler", "serve", "--host", "127.0.0.1", "--port", "0", *flags.split()],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PREWARM_LOG_FORMAT": "json"},
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def _serving_port(self) -> int | None:
        for line in list(self.lines):
            with_fields = json.loads(line) if line.startswith("{") else {}
            if with_fields.get("message") == "serving":
                assert with_fields["version"] == scaler.__version__, line  # which version started
                return int(with_fields["grpc_port"])
        return None

    async def port(self, wait_until) -> int:
        async def logged() -> int | None:
            assert self.process.poll() is None, f"the scaler exited:\n{self.output()}"
            return self._serving_port()

        port: int = await wait_until(logged, timeout=20, interval=0.05, what="the 'serving' log line")
        assert port != 0
        return port

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> str:
        """Kill it if still running; its whole output."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        return self.output()


async def test_graceful_shutdown_on_sigterm(rabbit, wait_until):
    server = ServeProcess(
        f"--metrics-port 0 --grace-period {GRACE_PERIOD:g} --stream-interval 0.2 --cache-ttl 0.2 "
        "--source-timeout 1"
    )
    try:
        port = await server.port(wait_until)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT)
            assert reply.status == SERVING  # logged "serving" only once ready

            watch = health.Watch(health_pb2.HealthCheckRequest(service=SCALER_SERVICE))
            assert (await watch.read()).status == SERVING
            stream = pb_grpc.ExternalScalerStub(channel).StreamIsActive(
                pb.ScaledObjectRef(name="worker", namespace="default", scalerMetadata=rabbit.metadata())
            )
            assert (await asyncio.wait_for(stream.read(), 5)).result is False  # the current state first

            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            assert (await asyncio.wait_for(watch.read(), GRACE_PERIOD)).status == NOT_SERVING
            watch.cancel()
            # The stream ends cleanly (KEDA reconnects at once), not with an error.
            assert await asyncio.wait_for(stream.read(), GRACE_PERIOD) is grpc.aio.EOF
            assert await stream.code() == grpc.StatusCode.OK
            exit_code = await asyncio.to_thread(server.process.wait, GRACE_PERIOD)
            assert exit_code == 0
            assert time.monotonic() - signalled < GRACE_PERIOD
    finally:
        output = server.stop()
    assert '"message": "stopped"' in output, output


SLOW_SOURCE_TIMEOUT = 2.0


async def test_sigterm_lets_a_call_in_flight_finish(silent_server, wait_until):
    """A GetMetrics waiting on a source that does not answer when SIGTERM arrives
    gets its real answer (UNAVAILABLE naming the source, at the source timeout),
    not CANCELLED: the grace period covers it. Meanwhile health says NOT_SERVING."""
    server = ServeProcess(
        f"--metrics-port 0 --grace-period {GRACE_PERIOD:g} --source-timeout {SLOW_SOURCE_TIMEOUT:g}"
    )
    try:
        port = await server.port(wait_until)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            scaler = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(
                name="worker", namespace="default", scalerMetadata=silent_server.rabbit_http_metadata()
            )
            spec = await scaler.GetMetricSpec(ref, timeout=CALL_TIMEOUT)  # from metadata only: no read
            request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=spec.metricSpecs[0].metricName)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=SCALER_SERVICE))
            assert (await watch.read()).status == SERVING

            started = time.monotonic()
            in_flight = asyncio.ensure_future(scaler.GetMetrics(request, timeout=CALL_TIMEOUT))
            # In flight for sure: the server's source read has reached the silent host.
            await wait_until(lambda: silent_server.connections > 0, timeout=5, what="the source read")
            assert not in_flight.done()

            server.process.send_signal(signal.SIGTERM)

            assert (await asyncio.wait_for(watch.read(), GRACE_PERIOD)).status == NOT_SERVING
            watch.cancel()
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await in_flight
            elapsed = time.monotonic() - started
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
            assert "'slow-queue'" in (failure.value.details() or ""), failure.value.details()
            assert elapsed >= SLOW_SOURCE_TIMEOUT - 0.5, f"answered after {elapsed:.2f}s, before the timeout"
            assert elapsed < SLOW_SOURCE_TIMEOUT + 2.0, f"answered after {elapsed:.2f}s"
            assert await asyncio.to_thread(server.process.wait, GRACE_PERIOD) == 0
    finally:
        output = server.stop()
    assert '"message": "stopped"' in output, output


async def test_sigterm_exits_within_the_grace_period_with_a_frozen_broker(rabbit, wait_until):
    """A broker connection that freezes (the peer gone without a FIN) while a read
    is in flight: the process still exits within the grace period, not when pika
    would notice (minutes, by the broker's heartbeat)."""
    from faults import TcpProxy

    grace = 3.0
    proxy = TcpProxy(5672)
    server = ServeProcess(f"--metrics-port 0 --grace-period {grace:g} --source-timeout 2 --cache-ttl 0.2")
    try:
        port = await server.port(wait_until)
        meta = {"source": "rabbitmq", "host": proxy.url("amqp"), "queueName": rabbit.name}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            scaler = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(name="worker", namespace="default", scalerMetadata=meta)
            assert (await scaler.IsActive(ref, timeout=CALL_TIMEOUT)).result is False  # connection open
            proxy.freeze()
            await asyncio.sleep(0.3)  # past the cache TTL
            in_flight = asyncio.ensure_future(scaler.IsActive(ref, timeout=CALL_TIMEOUT))
            await asyncio.sleep(0.2)
            assert not in_flight.done()

            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            exit_code = await asyncio.to_thread(server.process.wait, grace + 2)
            assert exit_code == 0
            assert time.monotonic() - signalled < grace
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await in_flight
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
    finally:
        output = server.stop()
        proxy.close()
    assert '"message": "stopped"' in output, output
