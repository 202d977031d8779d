"""Bad input against the real gRPC server: random metadata maps (hypothesis) get
only OK, INVALID_ARGUMENT or UNAVAILABLE, promptly, never INTERNAL or UNKNOWN (a
bug), a hang or a crash; random request bytes get an error status at once and the
server keeps serving; an oversized map or value gets a short INVALID_ARGUMENT that
fits in gRPC's header limit.

The server limits triggers to loopback hosts (--allowed-hosts) and lends its own AWS
identity to no namespace, so whatever the fuzzer writes, the scaler reaches only
loopback: the real RabbitMQ (random queues: not found), a closed port, or the
refusal itself. Bounded examples, no deadline: about ten seconds in all."""

from __future__ import annotations

import asyncio
import string
import time

import grpc
import pytest
from conftest import CALL_TIMEOUT, RABBIT_AMQP_URL, find_free_port
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaler._proto import externalscaler_pb2 as pb
from scaler.access import AccessPolicy, Patterns
from scaler.config import MAX_QUOTED

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, UNAVAILABLE}
SOURCE_TIMEOUT = 1.0
# An answer arrives within the source timeout, plus scheduling slack on a busy machine.
PROMPT_S = SOURCE_TIMEOUT + 4.0
CLOSED_PORT = find_free_port()
SERVICE = "/externalscaler.ExternalScaler/"
EXISTING = "<the test's queue>"  # replaced by a real queue's name: some examples are valid

HOSTS = st.sampled_from(
    ["127.0.0.1:5672", "127.0.0.1:15672", f"127.0.0.1:{CLOSED_PORT}", "localhost:5672", "[::1]:1",
     "10.0.0.1:5672", "example.com", ""]
)  # fmt: skip
URLS = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["amqp", "amqps", "http", "https", "ftp"]),
    st.sampled_from(["", "guest:guest@", "u:p%2F@"]),
    HOSTS,
    st.text(alphabet=string.ascii_letters + "%/", max_size=6),
)
TEXT = st.text(max_size=20)
VALUES = st.one_of(
    URLS,
    TEXT,
    st.sampled_from(["sqs", "rabbitmq", "job", "deployment", "true", "0", "1", "-1", "1e300", "nan",
                     "http", "amqp", "guard", "demand", 'namespace="ai"', "up", "us-east-1"]),
    st.builds(lambda n: "v" * n, st.integers(1, 40_000)),
)  # fmt: skip
KEYS = st.one_of(
    st.sampled_from(
        ["source", "queueLength", "activationQueueLength", "mode", "metricName", "queueURL", "awsRegion",
         "awsEndpoint", "awsAccessKeyID", "awsSecretAccessKey", "awsRoleArn", "host", "hostFromEnv",
         "queueName", "vhostName", "protocol", "excludeUnacknowledged", "prometheusServerAddress",
         "gpuQuery", "gpuSelector", "gpuRole", "scaleOnInFlight", "value", "unsafeSsl", "forecast",
         "arrivalQuery", "coldStartSeconds", "coldStartQuery", "maxPrewarmJobs", "replicaThroughput"]
    ),
    TEXT,
)  # fmt: skip
BASES = st.sampled_from(
    [
        {"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": EXISTING},
        {"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": "fuzz-missing"},
        {"source": "rabbitmq", "host": "http://guest:guest@127.0.0.1:15672/", "queueName": "fuzz-missing"},
        {"source": "rabbitmq", "host": f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}/", "queueName": "q"},
        {"source": "sqs", "queueURL": f"http://127.0.0.1:{CLOSED_PORT}/1/q", "awsRegion": "us-east-1",
         "awsEndpoint": f"http://127.0.0.1:{CLOSED_PORT}", "awsAccessKeyID": "AKID",
         "awsSecretAccessKey": "secret"},
        {"prometheusServerAddress": f"http://127.0.0.1:{CLOSED_PORT}", "gpuSelector": 'namespace="ai"'},
    ]
)  # fmt: skip
METADATA = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=10),
    st.builds(lambda base, extra: {**base, **extra}, BASES, st.dictionaries(KEYS, VALUES, max_size=3)),
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def fuzz_server(start_scaler, monkeypatch):
    # Where an AWS client would look beyond the trigger: nowhere but loopback.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{CLOSED_PORT}")
    policy = AccessPolicy(
        allowed_hosts=Patterns.parse("127.0.0.1,localhost,::1", what="host"),
        ambient_identity_namespaces=Patterns.parse("", what="namespace"),
    )
    return await start_scaler(access=policy, source_timeout=SOURCE_TIMEOUT, cache_ttl=0.5)


async def _status(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in ALLOWED, f"{exc.code()}: {exc.details()}"
        assert len(exc.details() or "") < 1_000, exc.details()
        return exc.code()
    return grpc.StatusCode.OK


async def _still_serving(server) -> None:
    reply = await server.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@FUZZ
@given(metadata=METADATA, metric_name=st.one_of(st.just(""), TEXT, st.just("s0-x" * 5000)))
async def test_random_metadata_gets_only_known_statuses_promptly(fuzz_server, rabbit, metadata, metric_name):
    ref = fuzz_server.ref({k: rabbit.name if v == EXISTING else v for k, v in metadata.items()})
    started = time.monotonic()
    await _status(fuzz_server.stub.GetMetricSpec(ref, timeout=PROMPT_S))
    await _status(
        fuzz_server.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=ref, metricName=metric_name), timeout=PROMPT_S
        )
    )
    event(f"IsActive: {(await _status(fuzz_server.stub.IsActive(ref, timeout=PROMPT_S))).name}")
    assert time.monotonic() - started < 3 * PROMPT_S


@settings(FUZZ, max_examples=40)
@given(metadata=METADATA)
async def test_random_metadata_on_a_stream_never_gets_a_false_answer(fuzz_server, rabbit, metadata):
    """StreamIsActive agrees with IsActive: bad metadata ends the stream with
    INVALID_ARGUMENT at once, a readable source sends the same state at once, and a
    failing source sends nothing (never a made-up "inactive")."""
    ref = fuzz_server.ref({k: rabbit.name if v == EXISTING else v for k, v in metadata.items()})
    try:
        expected: bool | grpc.StatusCode = (await fuzz_server.stub.IsActive(ref, timeout=PROMPT_S)).result
    except grpc.aio.AioRpcError as exc:
        expected = exc.code()
    stream = fuzz_server.stub.StreamIsActive(ref)
    try:
        first = await asyncio.wait_for(stream.read(), PROMPT_S if expected is not UNAVAILABLE else 0.3)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == expected == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
    except TimeoutError:
        assert expected is UNAVAILABLE, f"no answer on the stream where IsActive said {expected}"
    else:
        assert first.result == expected, (first, expected)
    finally:
        stream.cancel()


METHODS = st.sampled_from(
    [SERVICE + m for m in ("GetMetricSpec", "GetMetrics", "IsActive")] + ["/grpc.health.v1.Health/Check"]
)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=2_000), st.sampled_from([b"\x00", b"\xff" * 10])), method=METHODS)
async def test_random_request_bytes_get_an_error_at_once_and_the_server_keeps_serving(
    fuzz_server, body, method
):
    raw = fuzz_server.channel.unary_unary(method)  # bytes in, bytes out: no (de)serialiser
    started = time.monotonic()
    try:
        await raw(body, timeout=PROMPT_S)
    except grpc.aio.AioRpcError as exc:
        # Bytes that are not the message: INVALID_ARGUMENT, never UNKNOWN (grpc's own answer).
        assert exc.code() in ALLOWED, f"{exc.code()}: {exc.details()}"
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "protobuf" in (exc.details() or ""):
            assert exc.details() == f"{method}: the request is not a valid protobuf message for this rpc"
    assert time.monotonic() - started < PROMPT_S
    await _still_serving(fuzz_server)


async def test_a_malformed_request_is_invalid_argument_and_a_stream_too(fuzz_server):
    for method in ("GetMetricSpec", "IsActive"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fuzz_server.channel.unary_unary(SERVICE + method)(b"\x00", timeout=CALL_TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    stream = fuzz_server.channel.unary_stream(SERVICE + "StreamIsActive")(b"\xff" * 10, timeout=CALL_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    await _still_serving(fuzz_server)


async def test_oversized_metadata_gets_a_short_invalid_argument(fuzz_server):
    """A 70 kB value used to be echoed whole: past clients' 16 kB header limit, so
    the client saw RESOURCE_EXHAUSTED instead of the message."""
    cases = {
        "queueName": {"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": "q" * 70_000},
        "metricName": {
            "source": "rabbitmq",
            "host": RABBIT_AMQP_URL,
            "queueName": "q",
            "metricName": "m" * 70_000,
        },
        "key": {"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": "q", "k" * 70_000: "v"},
        "keys": {"source": "rabbitmq", "host": RABBIT_AMQP_URL, **{f"k{i}": "v" for i in range(5_000)}},
        "number": {"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": "q", "queueLength": "9" * 400},
    }
    for name, metadata in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fuzz_server.stub.GetMetricSpec(fuzz_server.ref(metadata), timeout=CALL_TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, info.value.details())
        details = info.value.details() or ""
        assert len(details) < 400 and "x" * (MAX_QUOTED + 1) not in details, (name, details)
    # Long names within the limits: a source's errors quote them cut as well.
    unreachable = {
        "rabbitmq": {"source": "rabbitmq", "host": f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}/",
                     "queueName": "q" * 10_000},
        "sqs": {"source": "sqs", "queueURL": f"http://127.0.0.1:{CLOSED_PORT}/1/{'q' * 10_000}",
                "awsRegion": "us-east-1", "awsEndpoint": f"http://127.0.0.1:{CLOSED_PORT}",
                "awsAccessKeyID": "AKID", "awsSecretAccessKey": "secret"},
    }  # fmt: skip
    for name, metadata in unreachable.items():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fuzz_server.stub.IsActive(fuzz_server.ref(metadata), timeout=CALL_TIMEOUT)
        details = info.value.details() or ""
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, (name, details)
        assert "(10000 characters)" in details and len(details) < 600, (name, details)
    # A metric name KEDA asks for, oversized, is quoted cut too.
    request = pb.GetMetricsRequest(
        scaledObjectRef=fuzz_server.ref({"source": "rabbitmq", "host": RABBIT_AMQP_URL, "queueName": "q"}),
        metricName="n" * 70_000,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await fuzz_server.stub.GetMetrics(request, timeout=CALL_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "(70000 characters)" in (info.value.details() or "") and len(info.value.details() or "") < 400
    await _still_serving(fuzz_server)
