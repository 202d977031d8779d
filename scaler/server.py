"""The gRPC server: a thin servicer over the engine, health, reflection, metrics.

Each rpc turns the request into an engine call and the Evaluation into KEDA's
answer; errors map to status codes (bad metadata → INVALID_ARGUMENT, a source
that cannot be read → UNAVAILABLE), never to a made-up zero or "inactive".
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from scaler import __version__, tls
from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc
from scaler.access import AccessPolicy
from scaler.clock import Clock, SystemClock
from scaler.config import ConfigError, ObjectRefError, TriggerConfig
from scaler.engine import REUSABLE_LIMIT, Engine, Evaluation, ObjectRef, SourceFactory
from scaler.observability import DecisionRecorder, Metrics
from scaler.signals.base import SourceError, SourceRejectedQuery, without_frames
from scaler.signals.cache import DEFAULT_TTL, POLLED_READING_AGE, ReadingCache

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExternalScaler"].full_name
TARGET_SIZE = 1.0  # the metric is already in replicas: the HPA's ceil(value / 1)
# A reading past the cache TTL by less than this share of it is still answered
# while its refresh is in flight (ReadingCache.stale_grace): the callers that find
# it expired do not wait for the read. Small, so a source that stops answering is
# UNAVAILABLE at most this much later than without it.
STALE_GRACE_SHARE = 0.2
# With mutual TLS, a connection's client certificate is checked once, at the handshake:
# a client CA rotated to revoke a key, or a certificate that expires, would never reach
# a connection KEDA keeps open. So the server closes each connection after this long
# (GOAWAY; grpc adds up to 10 % jitter), unless Settings.max_connection_age says
# otherwise, and calls in flight get the grace to finish. A StreamIsActive cut at the
# end of the grace is reopened by KEDA (after a 2 s backoff) on a new connection.
MTLS_MAX_CONNECTION_AGE = 3600.0
MAX_CONNECTION_AGE_GRACE = 30.0


@dataclass(frozen=True)
class Settings:
    host: str = "[::]"
    port: int = 6000
    metrics_port: int | None = 8080  # None: no /metrics endpoint; 0: any free port
    cache_ttl: float = DEFAULT_TTL
    # GetMetrics and IsActive answer from a queue reading at most this old (Engine).
    polled_reading_age: float = POLLED_READING_AGE
    source_timeout: float = 5.0
    stream_interval: float = 1.0
    grace_period: float = 10.0
    # Server keepalive: after this much silence on a connection the server pings,
    # and closes it when no answer comes within the timeout. A stream whose client
    # vanished without a FIN (a node lost, a partition) then ends instead of being
    # evaluated forever.
    keepalive_time: float = 30.0
    keepalive_timeout: float = 10.0
    read_threads: int = 64
    # Calls the transport has accepted that no handler has picked up yet, past which
    # grpc refuses new ones (CANCELLED): at random up to twice this, then all. grpc's
    # own default (1,000, and all past 3,000) cancelled a tenth of the streams when
    # 2,000 objects opened theirs at once, as KEDA does when it starts.
    max_pending_calls: int = 20_000
    housekeeping_interval: float = 30.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    # Seconds a client connection may stay open (see MTLS_MAX_CONNECTION_AGE). None:
    # MTLS_MAX_CONNECTION_AGE with a client CA, no limit without; 0: no limit.
    max_connection_age: float | None = None
    # A plaintext port serving only the gRPC health service, for the kubelet's
    # grpc probes, which cannot speak TLS. None: no such port.
    health_port: int | None = None
    # Which hosts triggers may name and which namespaces may use the scaler's own
    # cloud identity (docs/deploy.md, "Multi-tenant safety"). Open by default.
    access: AccessPolicy = field(default_factory=AccessPolicy)


def _queue_read_at(ev: Evaluation) -> float | None:
    """When the evaluation's queue reading was taken (None: no queue signal)."""
    return next((r.read_at for r in ev.reads if r.name == "queue"), None)


# Kubernetes' limits: a namespace is a DNS label, an object's name a DNS subdomain.
# Every object's name is kept (the engine, the recorder) and becomes a label of about
# fifteen /metrics series, so a client must not make the scaler keep megabytes each.
MAX_NAMESPACE_LENGTH = 63
MAX_NAME_LENGTH = 253


def start_metrics_http(
    port: int, host: str, registry: CollectorRegistry, start: Callable[..., Any] = start_http_server
) -> Any:
    """The /metrics HTTP server on the gRPC server's host ("[::]": every address)."""
    addr = "::" if host in ("[::]", "::") else host.strip("[]")
    try:
        server, _thread = start(port, addr=addr, registry=registry)
    except OSError:
        if addr != "::":
            raise
        # A node with IPv6 turned off has no "::" to bind; gRPC falls back to IPv4 by
        # itself, the HTTP server does not.
        server, _thread = start(port, addr="0.0.0.0", registry=registry)
    return server


def _ref(request: pb.ScaledObjectRef) -> ObjectRef:
    """Raises ConfigError for a name longer than Kubernetes allows."""
    for field_name, value, limit in (
        ("namespace", request.namespace, MAX_NAMESPACE_LENGTH),
        ("name", request.name, MAX_NAME_LENGTH),
    ):
        if len(value) > limit:
            raise ObjectRefError(field_name, limit, len(value))
    return ObjectRef(namespace=request.namespace, name=request.name)


def _metric_answer(ev: Evaluation) -> pb.GetMetricsResponse:
    return pb.GetMetricsResponse(
        metricValues=[
            pb.MetricValue(
                metricName=ev.config.metric_name,
                metricValue=ev.decision.metric_value,
                metricValueFloat=ev.decision.desired,
            )
        ]
    )


def _matches(requested: str, ours: str) -> bool:
    """KEDA strips its `s<index>-` prefix before asking; accept it either way,
    case-insensitively (older KEDA lower-cased names)."""
    requested = requested.lower()
    if requested in ("", ours):
        return True
    head, _, rest = requested.partition("-")
    return head[:1] == "s" and head[1:].isdigit() and rest == ours


_MALFORMED = object()  # what a request that did not parse becomes (see LenientRegistration)


class LenientRegistration:
    """Stands in for the server while a generated `add_*_to_server` registers a
    service, and registers it on the server with `_lenient` handlers: request
    bytes that are not the rpc's message are INVALID_ARGUMENT at once. Left to
    grpc they are UNKNOWN, with a traceback logged at ERROR for each, so a client
    sending garbage could fill the logs. (A server interceptor did this before,
    at the cost of one more coroutine per call.)"""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.services: list[str] = []

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """Ignored: the generated code passes the same handlers again, by name,
        to add_registered_method_handlers (see `register_leniently`)."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        wrapped = {name: _lenient(handler, f"/{service}/{name}") for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)
        self.services.append(service)


def register_leniently(
    add_to_server: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server
) -> None:
    """`add_to_server(servicer, server)` (generated code) with `_lenient` handlers."""
    registration = LenientRegistration(server)
    add_to_server(servicer, registration)
    if not registration.services:
        # Stubs generated before grpcio-tools 1.63 only call add_generic_rpc_handlers.
        raise RuntimeError(f"{add_to_server.__name__} registered no service by name: regenerate the stubs")


def _lenient(handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
    """The handler, its request parsed leniently and a bad one refused (unary
    requests; streamed requests are left as they are)."""
    if handler is None or handler.request_deserializer is None:
        return handler
    parse = handler.request_deserializer
    message = f"{method}: the request is not a valid protobuf message for this rpc"

    def lenient_parse(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # DecodeError, or any failure to read the bytes
            return _MALFORMED

    unary, stream = handler.unary_unary, handler.unary_stream
    if unary is not None and inspect.iscoroutinefunction(unary):

        async def checked_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked_unary, request_deserializer=lenient_parse, response_serializer=handler.response_serializer
        )
    if stream is not None and inspect.isasyncgenfunction(stream):

        async def checked_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            async for reply in stream(request, context):
                yield reply

        return grpc.unary_stream_rpc_method_handler(
            checked_stream,
            request_deserializer=lenient_parse,
            response_serializer=handler.response_serializer,
        )
    if stream is not None and inspect.iscoroutinefunction(stream):
        # A stream written with context.write (grpc_health's Watch).

        async def checked_writer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            return await stream(request, context)

        return grpc.unary_stream_rpc_method_handler(
            checked_writer,
            request_deserializer=lenient_parse,
            response_serializer=handler.response_serializer,
        )
    return handler


class Shutdown:
    """Set once, when the server stops; `pause` sleeps for an interval or until
    then. Every open stream pauses between its ticks, so a pause should cost
    little: a timer and a future, where asyncio.wait_for on an Event made a task
    and raised a TimeoutError each time (about 50 against 19 us of CPU per pause
    here; with 1,000 streams, 3 % of a core spent on the event loop)."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: set[asyncio.Future[None]] = set()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            _finish(waiter)

    async def pause(self, seconds: float) -> None:
        if self._set:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _finish, waiter)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)


def _finish(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ExternalScalerServicer(pb_grpc.ExternalScalerServicer):
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        stream_interval: float,
        shutting_down: Shutdown,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._stream_interval = stream_interval
        self._shutting_down = shutting_down
        # GetMetrics' answer per object and metric, with the reused evaluation it was
        # built from: while the engine answers with that evaluation again
        # (Engine.answer_again), so does this, with the same message (building it and
        # its int64 value took a third of the handler's time). Only reused ones: an
        # evaluation the engine does not keep would be held here for nothing.
        self._metric_answers: dict[tuple[ObjectRef, str], tuple[Evaluation, pb.GetMetricsResponse]] = {}

    def _reused_metric_answer(self, ref: ObjectRef, ev: Evaluation) -> pb.GetMetricsResponse:
        key = (ref, ev.config.metric_name)
        kept = self._metric_answers.get(key)
        if kept is not None and kept[0] is ev:
            return kept[1]
        answer = _metric_answer(ev)
        if len(self._metric_answers) >= REUSABLE_LIMIT:
            self._metric_answers.clear()  # refilled by the next calls
        self._metric_answers[key] = (ev, answer)
        return answer

    def _config(self, request: pb.ScaledObjectRef) -> tuple[ObjectRef, TriggerConfig]:
        """The object and its parsed config (memoised by the request's bytes).
        Raises ConfigError."""
        memo_key = request.SerializeToString(deterministic=True)
        accepted = self._engine.accepted_config(memo_key)
        if accepted is not None:
            return accepted
        ref = _ref(request)
        return ref, self._engine.config(ref, request.scalerMetadata, memo_key=memo_key)

    def _refuse(
        self, method: str, context: grpc.aio.ServicerContext, exc: BaseException, started: float
    ) -> bool:
        """Count a call that raised `exc` and set the status the error maps to on
        `context`; the handler then returns None, which grpc discards for a non-OK
        status. False on cancellation: the caller re-raises. Call it after leaving
        the `except` block that caught `exc`."""
        if isinstance(exc, (ConfigError, SourceRejectedQuery)):
            # SourceRejectedQuery: the source says the configured query is invalid.
            code = grpc.StatusCode.INVALID_ARGUMENT
        elif isinstance(exc, SourceError):
            code = grpc.StatusCode.UNAVAILABLE
        elif isinstance(exc, asyncio.CancelledError):
            code = grpc.StatusCode.CANCELLED
        else:
            # A bug: count it as what it is, not as OK.
            code = grpc.StatusCode.INTERNAL
        self._metrics.rpc_done(method, code.name, time.perf_counter() - started)
        if code is grpc.StatusCode.CANCELLED:
            return False
        details = _log_bug(method, exc) if code is grpc.StatusCode.INTERNAL else str(exc)
        # Answered with set_code, not abort: grpc keeps abort's exception, whose
        # traceback holds the handler's frame, which holds the context (a cycle of
        # about 28 objects per refused call, for the cyclic collector, which stops
        # the event loop, during an outage; 5 this way). The error's own traceback
        # and context are dropped too: it would otherwise hold every frame (engine,
        # cache) it passed through.
        without_frames(exc)
        context.set_code(code)
        context.set_details(details)
        return True

    # The unary rpcs answer without awaiting while the object's last evaluation
    # still holds (Engine.answer_again), and build no coroutine or closure beyond
    # their own: under load every microsecond of a handler cost two to three of
    # process CPU per call (docs/benchmarks.md, throughput).

    async def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricSpecResponse | None:
        started = time.perf_counter()
        try:
            # From the metadata alone: a source outage must surface in
            # GetMetrics/IsActive, where KEDA's fallback can act on it.
            _, cfg = self._config(request)
            spec = pb.MetricSpec(
                metricName=cfg.metric_name, targetSize=int(TARGET_SIZE), targetSizeFloat=TARGET_SIZE
            )
        except BaseException as exc:
            refused = exc
        else:
            self._metrics.rpc_done("GetMetricSpec", "OK", time.perf_counter() - started)
            return pb.GetMetricSpecResponse(metricSpecs=[spec])
        if self._refuse("GetMetricSpec", context, refused, started):
            return None
        raise refused

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMetricsResponse | None:
        started = time.perf_counter()
        try:
            ref, cfg = self._config(request.scaledObjectRef)
            if not _matches(request.metricName, cfg.metric_name):
                raise ConfigError("metricName", f"{cfg.metric_name!r}", request.metricName)
            reused = self._engine.answer_again(ref, cfg)
            if reused is not None:
                answer = self._reused_metric_answer(ref, reused)
            else:
                answer = _metric_answer(await self._engine.answer_anew(ref, cfg))
        except BaseException as exc:
            refused = exc
        else:
            self._metrics.rpc_done("GetMetrics", "OK", time.perf_counter() - started)
            return answer
        if self._refuse("GetMetrics", context, refused, started):
            return None
        raise refused

    async def IsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> pb.IsActiveResponse | None:
        started = time.perf_counter()
        try:
            ref, cfg = self._config(request)
            ev = self._engine.answer_again(ref, cfg) or await self._engine.answer_anew(ref, cfg)
        except BaseException as exc:
            refused = exc
        else:
            self._metrics.rpc_done("IsActive", "OK", time.perf_counter() - started)
            return pb.IsActiveResponse(result=ev.decision.active)
        if self._refuse("IsActive", context, refused, started):
            return None
        raise refused

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IsActiveResponse]:
        """The current state at once, then every change. While a source fails,
        nothing is sent (a failure is never reported as "inactive"); a query the
        source rejects ends the stream with INVALID_ARGUMENT. Ends with status OK
        when the server shuts down, so KEDA reconnects quickly."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            ref, _ = self._config(request)
        except ConfigError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT
            self._metrics.rpcs.count("StreamIsActive", code.name)
            await context.abort(code, str(exc))
        last: bool | None = None
        # While the answer is "inactive", each tick asks for a queue reading taken
        # after the one it last answered from, instead of reusing it for the TTL:
        # a wake from zero is seen within one stream interval (one read per
        # interval per idle queue, shared by its streams). Active streams use the
        # cache as every other call does.
        newer_than: float | None = None
        # The first pause is a random share of the interval, so that streams opened
        # together (KEDA opens every object's at its start) do not tick together:
        # 1,000 ticks in one burst held every other call up for up to 50 ms each
        # second. Later pauses are the interval, so the phases stay spread.
        pause = self._stream_interval * random.random()
        try:
            while not self._shutting_down.is_set():
                try:
                    ref, cfg = self._config(request)
                    # polled=False: KEDA ignores this answer for a ScaledJob, so it
                    # must not start a job-mode pre-warm pulse between polls.
                    ev = await self._engine.answer(ref, cfg, queue_newer_than=newer_than, polled=False)
                except (ConfigError, SourceRejectedQuery) as exc:
                    # The query itself is invalid: no later tick can succeed. End the
                    # stream with the same status IsActive answers.
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(code, str(exc))
                except SourceError as exc:
                    log.debug("stream %s: source failing, sending nothing: %s", ref, exc)
                except Exception as exc:  # a bug: counted and answered as the unary rpcs do
                    code = grpc.StatusCode.INTERNAL
                    await context.abort(code, _log_bug("StreamIsActive", exc))
                else:
                    newer_than = None if ev.decision.active else _queue_read_at(ev)
                    if ev.decision.active != last:
                        last = ev.decision.active
                        yield pb.IsActiveResponse(result=last)
                await self._shutting_down.pause(pause)
                pause = self._stream_interval
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._metrics.rpc_done("StreamIsActive", code.name, time.perf_counter() - started)


def _log_bug(method: str, exc: BaseException) -> str:
    """Log a bug with its traceback; returns the answer's message. Left to grpc, a
    bug answers UNKNOWN with the exception's text, which KEDA shows in the tenant's
    events, and a library's message may hold a URL with its credentials: its kind only."""
    log.error("%s failed unexpectedly", method, exc_info=exc)
    return f"{method}: internal error ({type(exc).__name__}), logged by the scaler"


class ScalerServer:
    """The whole service: gRPC (scaler, health, reflection), /metrics, housekeeping."""

    def __init__(
        self, settings: Settings, clock: Clock | None = None, sources: SourceFactory | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.cache = ReadingCache(
            self.clock,
            ttl=settings.cache_ttl,
            timeout=settings.source_timeout,
            max_workers=settings.read_threads,
            on_read=self.metrics.observe_read,
            stale_grace=STALE_GRACE_SHARE * settings.cache_ttl,
        )
        self.recorder = DecisionRecorder(self.metrics, self.clock)
        self.engine = Engine(
            self.cache,
            self.clock,
            sources,  # None: the engine's own, from the cache's timeout, TTL and endpoint limit
            observer=self.recorder,
            access=settings.access,
            polled_reading_age=settings.polled_reading_age,
        )
        self.shutting_down = Shutdown()
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._metrics_http: Any = None
        self._housekeeping: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self.tls_files: tls.CertificateFiles | None = None

    @property
    def max_connection_age(self) -> float | None:
        """Seconds a client connection may stay open; None: no limit."""
        age = self.settings.max_connection_age
        if age is None:
            return MTLS_MAX_CONNECTION_AGE if self.settings.tls_client_ca is not None else None
        return age or None

    def _grpc_options(self) -> list[tuple[str, int]]:
        options = [
            # KEDA keeps its connection open between polls; let its keepalive
            # pings through instead of answering them with GOAWAY (grpc-go
            # clients ping at most every 10 s, their floor).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Our own pings, to find clients that vanished. A stream sends data
            # only on a change, so pings must go on without data in between
            # (grpc's default stops after two).
            ("grpc.keepalive_time_ms", int(self.settings.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.settings.keepalive_timeout * 1000)),
            ("grpc.http2.ping_timeout_ms", int(self.settings.keepalive_timeout * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
            # KEDA opens every object's stream at once when it starts (and on every
            # reconnect): a burst of calls the event loop takes a second or two to
            # pick up, each then answered in microseconds. grpc sheds calls waiting
            # past its pending limits as overload; here that burst is the normal
            # start, and a cancelled stream waits KEDA's back-off (2 s, doubling).
            ("grpc.server.max_pending_requests", self.settings.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", 2 * self.settings.max_pending_calls),
        ]
        age = self.max_connection_age
        if age is not None:
            options += [
                ("grpc.max_connection_age_ms", max(int(age * 1000), 1)),
                ("grpc.max_connection_age_grace_ms", int(MAX_CONNECTION_AGE_GRACE * 1000)),
            ]
        return options

    async def start(self) -> None:
        server = grpc.aio.server(options=self._grpc_options())
        servicer = ExternalScalerServicer(
            self.engine, self.metrics, self.settings.stream_interval, self.shutting_down
        )
        register_leniently(pb_grpc.add_ExternalScalerServicer_to_server, servicer, server)
        register_leniently(health_pb2_grpc.add_HealthServicer_to_server, self.health, server)
        # Reflection's requests are a stream, which `_lenient` leaves as it is.
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = self._server_credentials()
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        self._server = server
        if self.settings.health_port is not None:
            await self._start_health_server()
        if self.settings.metrics_port is not None:
            http_server = start_metrics_http(
                self.settings.metrics_port, self.settings.host, self.metrics.registry
            )
            self._metrics_http = http_server
            self.metrics_port = http_server.server_port
        self._housekeeping = asyncio.create_task(self._housekeep())
        # Ready only now: KEDA must not be pointed at a scaler that cannot answer.
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra={
                "version": __version__,
                "grpc_port": self.port,
                "metrics_port": self.metrics_port,
                "tls": credentials is not None,
                "mtls": self.tls_files is not None and self.tls_files.require_client_auth,
                "max_connection_age_s": self.max_connection_age,
                # The limits in effect, so a misspelled variable that left one off shows.
                **self.settings.access.describe(),
            },
        )

    async def _start_health_server(self) -> None:
        health_server = grpc.aio.server()
        # Leniently, as on the main port: malformed bytes are INVALID_ARGUMENT, not
        # UNKNOWN with a traceback logged at ERROR (this port is unauthenticated).
        register_leniently(health_pb2_grpc.add_HealthServicer_to_server, self.health, health_server)
        address = f"{self.settings.host}:{self.settings.health_port}"
        self.health_port = health_server.add_insecure_port(address)
        if self.health_port == 0:
            raise OSError(f"cannot listen on {address}")
        await health_server.start()
        self._health_server = health_server

    def _server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS when a certificate and key are set (mTLS with a client CA); the files
        are re-read when they change, so a rotated certificate needs no restart."""
        s = self.settings
        if s.tls_cert is None and s.tls_key is None and s.tls_client_ca is None:
            return None
        if s.tls_cert is None or s.tls_key is None:
            raise ValueError("TLS needs both tls_cert and tls_key (tls_client_ca alone is not enough)")
        self.tls_files = tls.CertificateFiles(s.tls_cert, s.tls_key, s.tls_client_ca)
        return tls.server_credentials(self.tls_files)

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval)
            await self.cache.evict_idle()
            self.recorder.expire()
            # Demand series no trigger has asked about for an hour (their objects are gone).
            self.engine.demand.evict_idle(self.clock.monotonic())

    async def stop(self) -> bool:
        """Graceful: NOT_SERVING first, streams end with OK, calls in flight get
        the grace period to finish, and closing the sources gets what is left of
        it. Returns False when a source's client is still stuck at the end (its
        thread cannot be interrupted): the process should exit without it."""
        if self._server is None:
            return True
        log.info("shutting down", extra={"grace_period_s": self.settings.grace_period})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.grace_period
        await self.health.enter_graceful_shutdown()
        self.shutting_down.set()
        await self._server.stop(self.settings.grace_period)
        if self._health_server is not None:
            await self._health_server.stop(None)
            self._health_server = None
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self.engine.close()  # optional reads refreshing in the background
        if self._metrics_http is not None:
            # shutdown() waits for the serving thread's next poll (up to 0.5 s):
            # not on the event loop.
            await asyncio.to_thread(self._metrics_http.shutdown)
            self._metrics_http.server_close()
            self._metrics_http = None
        closed = await asyncio.to_thread(self.cache.close, max(deadline - loop.time(), 0.0))
        self.engine.sources.close()  # the shared HTTP pools' connections, once no source uses them
        if not closed:
            log.warning("a source read or close is still blocked in its client library; not waiting for it")
        self._server = None
        log.info("stopped")
        return closed


# The cyclic garbage collector's thresholds (CPython's defaults: 700, 10, 10). Every
# collection stops the event loop, and so every answer: with 1,000 open streams, a
# full collection walks about 45 MB of live objects (70-120 ms), and at the defaults
# objects that live a few seconds (a reading's evaluation, a call's state) reach the
# old generation and bring one on about every 30 s. Rarer young and middle
# collections let reference counting free those first (they hold no cycles).
GC_THRESHOLDS = (10_000, 50, 10)


def tune_gc() -> None:
    """For a long-running server, after start-up: what exists then (imported
    modules, the gRPC server) lives as long as the process, so no collection
    needs to walk it again (gc.freeze); and the thresholds above."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: Settings) -> bool:
    """Run until SIGTERM or SIGINT, then shut down gracefully. Returns whether
    every source closed (see ScalerServer.stop)."""
    server = ScalerServer(settings)
    await server.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    return await server.stop()


def run(settings: Settings) -> None:
    if not asyncio.run(serve(settings)):
        # Python waits for every pool thread at exit, and a thread stuck in a
        # client library may not return for minutes: past the pod's grace period.
        # Everything else is closed and logged, so leave now.
        logging.shutdown()
        os._exit(0)


__all__ = ["ScalerServer", "Settings", "run", "serve"]
