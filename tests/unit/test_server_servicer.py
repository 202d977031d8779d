"""The servicer's error mapping: each outcome answered with its status and counted
once under it (the rpcs themselves are tested against real servers in
tests/integration)."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import types
from collections.abc import AsyncIterator
from types import SimpleNamespace

import grpc
import pytest

from scaler import server
from scaler._proto import externalscaler_pb2 as pb
from scaler.clock import ManualClock
from scaler.config import ConfigError
from scaler.engine import Engine, ObjectRef
from scaler.observability import Metrics
from scaler.server import ExternalScalerServicer, Shutdown
from scaler.signals.base import SourceError
from scaler.signals.cache import ReadingCache

METADATA = {"source": "rabbitmq", "host": "amqp://127.0.0.1:5672/%2F", "queueName": "jobs"}


class Aborted(Exception):
    pass


class Context:
    """What the servicer uses of grpc's context: set_code and set_details (a unary
    call refused), and abort, which raises (a stream ended)."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None
        self._code: grpc.StatusCode | None = None

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        assert self._code is not None, "set_code comes first"
        self.status = (self._code, details)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Aborted(details)


Fixture = tuple[ExternalScalerServicer, Engine, Metrics]


@pytest.fixture
async def servicer() -> AsyncIterator[Fixture]:
    clock = ManualClock()
    cache = ReadingCache(clock, ttl=2.0, timeout=1.0)
    engine, metrics = Engine(cache, clock), Metrics()
    yield ExternalScalerServicer(engine, metrics, 1.0, Shutdown()), engine, metrics
    cache.close()


def counted(metrics: Metrics) -> dict[tuple[str, str], float]:
    """prewarm_rpc_total by (method, code), as /metrics exports it."""
    return {
        (sample.labels["method"], sample.labels["code"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "prewarm_rpc_total"
    }


def ref(metadata: dict[str, str]) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="worker", namespace="ml", scalerMetadata=metadata)


async def test_bad_metadata_is_invalid_argument_naming_the_key(servicer: Fixture) -> None:
    svc, _, metrics = servicer
    context = Context()
    assert await svc.IsActive(ref({**METADATA, "queueLength": "lots"}), context) is None
    assert context.status is not None
    assert context.status[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert "queueLength" in context.status[1]
    assert counted(metrics) == {("IsActive", "INVALID_ARGUMENT"): 1.0}


@pytest.mark.parametrize(
    ("field", "namespace", "name", "limit"),
    [("namespace", "n" * 64, "worker", 63), ("name", "ml", "w" * 254, 253)],
)
async def test_a_name_longer_than_kubernetes_allows_is_invalid_argument(
    servicer: Fixture, field: str, namespace: str, name: str, limit: int
) -> None:
    # Every object's name is kept and labels its /metrics series: a client must not
    # make the scaler keep megabytes per object.
    svc, engine, _ = servicer
    request = pb.ScaledObjectRef(name=name, namespace=namespace, scalerMetadata=METADATA)
    for call in (svc.IsActive, svc.GetMetricSpec):
        context = Context()
        assert await call(request, context) is None  # type: ignore[operator]
        assert context.status is not None and context.status[0] is grpc.StatusCode.INVALID_ARGUMENT
        assert f"ScaledObjectRef {field}: expected at most {limit} characters" in context.status[1]
    context = Context()
    stream = svc.StreamIsActive(request, context)
    with pytest.raises(Aborted):
        await anext(stream)
    assert context.status is not None and context.status[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert not engine._reusable  # nothing kept
    # At the limits, accepted.
    ok = pb.ScaledObjectRef(name="w" * 253, namespace="n" * 63, scalerMetadata=METADATA)
    spec = await svc.GetMetricSpec(ok, Context())
    assert spec.metricSpecs[0].metricName


async def test_metric_name_not_ours_is_invalid_argument(servicer: Fixture) -> None:
    svc, _, metrics = servicer
    context = Context()
    request = pb.GetMetricsRequest(scaledObjectRef=ref(METADATA), metricName="someone-else")
    assert await svc.GetMetrics(request, context) is None
    assert context.status is not None and context.status[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert "metricName" in context.status[1]
    assert counted(metrics) == {("GetMetrics", "INVALID_ARGUMENT"): 1.0}


async def test_source_error_is_unavailable(servicer: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, engine, metrics = servicer

    async def down(*args: object, **kwargs: object) -> None:
        raise SourceError("rabbitmq 127.0.0.1:5672: connection refused")

    monkeypatch.setattr(engine, "answer_anew", down)
    context = Context()
    assert await svc.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(METADATA)), context) is None
    assert context.status == (grpc.StatusCode.UNAVAILABLE, "rabbitmq 127.0.0.1:5672: connection refused")
    assert counted(metrics) == {("GetMetrics", "UNAVAILABLE"): 1.0}


async def test_a_refused_call_leaves_no_cycle(servicer: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # During an outage every call is refused from the cached error. Refused with
    # abort, grpc kept the AbortError, whose traceback held the handler's frame,
    # which held the context (about 28 cyclic objects per call, measured against a
    # real grpc.aio server), and inside the handler's `except` it also chained the
    # error with its traceback and every frame (engine, cache) it passed through
    # (about 40). set_code/set_details and a None answer leave the collector
    # nothing of the servicer's.
    svc, engine, _ = servicer

    async def down(*args: object, **kwargs: object) -> None:
        raise SourceError("rabbitmq 127.0.0.1:5672: connection refused")

    monkeypatch.setattr(engine, "answer_anew", down)
    bad = ref({**METADATA, "queueLength": "lots"})

    async def refuse_each() -> None:
        for call, request in (
            (svc.IsActive, ref(METADATA)),
            (svc.GetMetrics, pb.GetMetricsRequest(scaledObjectRef=ref(METADATA))),
            (svc.GetMetricSpec, bad),
        ):
            context = Context()
            assert await call(request, context) is None  # type: ignore[operator]
            assert context.status is not None

    await refuse_each()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            await refuse_each()
        gc.collect()
        cyclic = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not [o for o in cyclic if isinstance(o, SourceError | ConfigError)]
    frames = {o.f_code.co_name for o in cyclic if isinstance(o, types.FrameType)}
    assert not frames & {"IsActive", "GetMetrics", "GetMetricSpec", "_refuse"}, frames


async def test_a_bug_is_counted_logged_and_answered_internal_without_its_text(
    servicer: Fixture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    svc, engine, metrics = servicer

    def broken(*args: object) -> None:
        raise KeyError("amqp://user:secret@rabbitmq/")  # a library's message may hold credentials

    monkeypatch.setattr(engine, "answer_again", broken)
    context = Context()
    with caplog.at_level(logging.ERROR, logger="scaler.server"):
        assert await svc.IsActive(ref(METADATA), context) is None
    # INTERNAL, as counted, with the exception's kind and never its text (left to grpc,
    # UNKNOWN with the text).
    assert context.status == (
        grpc.StatusCode.INTERNAL,
        "IsActive: internal error (KeyError), logged by the scaler",
    )
    assert counted(metrics) == {("IsActive", "INTERNAL"): 1.0}
    assert "IsActive failed unexpectedly" in caplog.text and "KeyError" in caplog.text


async def test_cancelled_is_counted_and_raised(servicer: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, engine, metrics = servicer

    async def hangs(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(engine, "answer_anew", hangs)
    call = asyncio.ensure_future(svc.IsActive(ref(METADATA), Context()))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert counted(metrics) == {("IsActive", "CANCELLED"): 1.0}


async def test_metric_spec_answers_from_the_metadata_alone(servicer: Fixture) -> None:
    svc, _, metrics = servicer
    reply = await svc.GetMetricSpec(ref(METADATA), Context())
    assert [s.targetSizeFloat for s in reply.metricSpecs] == [1.0]
    assert reply.metricSpecs[0].metricName  # the trigger's metric name
    assert counted(metrics) == {("GetMetricSpec", "OK"): 1.0}


async def test_a_known_request_is_answered_without_parsing_or_checking_it_again(
    servicer: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building the object and checking its config again were two thirds of finding the
    # config: a request the engine accepted before is found by its bytes alone.
    svc, engine, _ = servicer
    configs: list[ObjectRef] = []
    config = engine.config

    def counting(ref: ObjectRef, *args: object, **kwargs: object) -> object:
        configs.append(ref)
        return config(ref, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "config", counting)
    request = ref(METADATA)
    first = await svc.GetMetricSpec(request, Context())
    again = await svc.GetMetricSpec(request, Context())
    assert configs == [ObjectRef(namespace="ml", name="worker")]  # the second found by its bytes
    assert again == first
    # Another object, or other metadata, is other bytes: config() runs for it.
    other = pb.ScaledObjectRef(name="other", namespace="ml", scalerMetadata=METADATA)
    await svc.GetMetricSpec(other, Context())
    changed = ref({**METADATA, "queueLength": "7"})
    await svc.GetMetricSpec(changed, Context())
    assert configs[1:] == [ObjectRef(namespace="ml", name="other"), ObjectRef(namespace="ml", name="worker")]
    # A refused request is refused every time, with its status.
    bad = ref({**METADATA, "queueLength": "lots"})
    for _ in range(2):
        context = Context()
        assert await svc.GetMetricSpec(bad, context) is None
        assert context.status is not None and context.status[0] is grpc.StatusCode.INVALID_ARGUMENT


async def test_get_metrics_answers_a_reused_evaluation_with_the_message_built_for_it(
    servicer: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building the answer took a third of the handler's time: while the engine answers
    # with the same evaluation (Engine.answer_again), so does the servicer, with the same
    # message; a new evaluation gets a new one.
    svc, engine, metrics = servicer
    answering: list[object] = []
    monkeypatch.setattr(engine, "answer_again", lambda *args, **kwargs: answering[-1])

    async def anew(*args: object, **kwargs: object) -> object:
        return answering[-1]

    monkeypatch.setattr(engine, "answer_anew", anew)

    def evaluation(desired: float) -> object:
        cfg = engine.config(ObjectRef(namespace="ml", name="worker"), METADATA)
        return SimpleNamespace(
            config=cfg, decision=SimpleNamespace(desired=desired, metric_value=math.ceil(desired))
        )

    request = pb.GetMetricsRequest(scaledObjectRef=ref(METADATA))
    # An evaluation the engine does not reuse (answer_again: None) is answered, not
    # kept: it would be held for nothing.
    answering.append(evaluation(1.5))
    monkeypatch.setattr(engine, "answer_again", lambda *args, **kwargs: None)
    fresh = await svc.GetMetrics(request, Context())
    assert fresh.metricValues[0].metricValueFloat == 1.5
    assert not svc._metric_answers
    monkeypatch.setattr(engine, "answer_again", lambda *args, **kwargs: answering[-1])

    answering.append(evaluation(2.5))
    first = await svc.GetMetrics(request, Context())
    assert await svc.GetMetrics(request, Context()) is first
    assert (first.metricValues[0].metricValueFloat, first.metricValues[0].metricValue) == (2.5, 3)
    answering.append(evaluation(4.0))
    second = await svc.GetMetrics(request, Context())
    assert second is not first
    assert (second.metricValues[0].metricValueFloat, second.metricValues[0].metricValue) == (4.0, 4)
    assert first.metricValues[0].metricValueFloat == 2.5  # the message answered before is untouched
    assert counted(metrics) == {("GetMetrics", "OK"): 4.0}

    # Bounded as the engine's kept evaluations are: a client inventing names cannot make
    # it keep one message per name.
    monkeypatch.setattr(server, "REUSABLE_LIMIT", 2)
    for name in ("a", "b", "c"):
        other = pb.ScaledObjectRef(name=name, namespace="ml", scalerMetadata=METADATA)
        await svc.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=other), Context())
    assert len(svc._metric_answers) <= 2


async def test_streams_opened_together_tick_apart(servicer: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, engine, _ = servicer
    active = SimpleNamespace(decision=SimpleNamespace(active=True), reads=())

    async def answer(*args: object, **kwargs: object) -> SimpleNamespace:
        return active

    pauses: dict[int, list[float]] = {}

    async def pause(self: Shutdown, seconds: float) -> None:
        pauses.setdefault(id(asyncio.current_task()), []).append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(engine, "answer", answer)
    monkeypatch.setattr(Shutdown, "pause", pause)

    async def three_ticks() -> list[bool]:
        replies = []
        async for reply in svc.StreamIsActive(ref(METADATA), Context()):
            replies.append(reply.result)
        return replies

    streams = [asyncio.ensure_future(three_ticks()) for _ in range(20)]
    while min((len(p) for p in pauses.values()), default=0) < 3 or len(pauses) < 20:
        await asyncio.sleep(0)
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    firsts = [p[0] for p in pauses.values()]
    # Each stream's first pause is its own share of the 1 s interval; then the interval.
    assert all(0 <= first < 1.0 for first in firsts)
    assert len(set(firsts)) == len(firsts)
    assert max(firsts) - min(firsts) > 0.5  # spread over the interval (20 draws: fails ~1e-5)
    assert all(p[1:3] == [1.0, 1.0] for p in pauses.values())


async def test_a_bug_in_a_stream_is_counted_and_answered_internal_without_its_text(
    servicer: Fixture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    svc, engine, metrics = servicer

    async def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("https://user:secret@prometheus/")

    monkeypatch.setattr(engine, "answer", broken)
    context = Context()
    with caplog.at_level(logging.ERROR, logger="scaler.server"), pytest.raises(Aborted):
        async for _ in svc.StreamIsActive(ref(METADATA), context):
            pass
    assert context.status == (
        grpc.StatusCode.INTERNAL,
        "StreamIsActive: internal error (ValueError), logged by the scaler",
    )
    assert counted(metrics) == {("StreamIsActive", "INTERNAL"): 1.0}
    assert "StreamIsActive failed unexpectedly" in caplog.text
