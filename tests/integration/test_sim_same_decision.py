"""The simulator's Prewarm is the production path: for the same readings, the
engine it drives (synchronously, on simulated sources) answers exactly what the
real gRPC server answers KEDA."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np
import pytest

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.clock import ManualClock
from scaler.server import ScalerServer
from scaler.sim.policies import PrewarmTrigger, SimSourceFactory, prewarm_metadata
from scaler.sim.traces import Trace
from scaler.sim.world import World, WorldConfig
from tests.integration.conftest import FAST_SETTINGS, LOOPBACK

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("gpu_guard", [False, True])
async def test_simulated_engine_answers_as_the_grpc_server(gpu_guard: bool) -> None:
    world = World(Trace("t", counts=np.zeros(600), bin_s=1.0), WorldConfig(concurrency=4))
    clock = ManualClock(start=0.0, wall_offset=0.0)
    metadata = prewarm_metadata(4.0, gpu_guard=gpu_guard)
    server = ScalerServer(
        dataclasses.replace(FAST_SETTINGS, cache_ttl=0.0), clock=clock, sources=SimSourceFactory(world, clock)
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"{LOOPBACK}:{server.port}")
    stub = pb_grpc.ExternalScalerStub(channel)
    trigger = PrewarmTrigger(world, clock, metadata)
    ref = pb.ScaledObjectRef(name="workers", namespace="sim", scalerMetadata=metadata)
    try:
        spec = await stub.GetMetricSpec(ref, timeout=10)
        name = spec.metricSpecs[0].metricName
        seen = set()
        # Queue and GPU states, including in-flight-only work and an idle pool.
        for t, waiting, in_flight, ready in [
            (20, 0, 0, 0),
            (40, 13, 0, 0),
            (60, 3, 9, 3),
            (80, 0, 5, 4),
            (100, 40, 16, 4),
            (120, 0, 0, 2),
        ]:
            world.waiting, world.in_flight, world.ready = float(waiting), float(in_flight), ready
            world.rec_in_flight[:t] = in_flight
            world.rec_ready[:t] = ready
            world.rec_pods[:t] = ready
            world.rec_billed[:t] = ready
            world.rec_busy_gpus[:t] = in_flight / 4
            clock.now = float(t)
            desired, target, active = trigger.read(t)
            request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName="s0-" + name)
            metrics = await stub.GetMetrics(request, timeout=10)
            served_active = (await stub.IsActive(ref, timeout=10)).result
            assert target == 1.0
            assert metrics.metricValues[0].metricValueFloat == pytest.approx(desired, abs=1e-9), t
            assert served_active == active, t
            seen.add((round(desired, 3), active))
        assert len(seen) >= 4  # the cases really differ
    finally:
        await channel.close()
        await server.stop()
