"""Each way a connection fails, for each source, answers UNAVAILABLE with a plain
cause that names the endpoint (host:port, never a credential) and what to check,
through the real server, against a real local endpoint:

- a name that cannot resolve (`nonexistent.invalid`, reserved never to resolve);
- an unused loopback port (connection refused);
- a loopback server that accepts and never answers (timeout);
- a loopback TLS server with a self-signed certificate (TLS verification);
- the real RabbitMQ with a wrong password (authentication) and a missing queue,
  and HTTP statuses from real servers.

Also: a failing source is logged once at WARNING, and once when it recovers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
import pytest
from conftest import AWS_REGION, LOOPBACK, RABBIT_HTTP_PORT, find_free_port

pytest_plugins = ["faults"]
pytestmark = pytest.mark.integration

SECRET = "pw-conn-7c1e-very-secret"
UNRESOLVABLE = "nonexistent.invalid"
TIMEOUT = 1.0
# For failures that come at once (DNS, refused, TLS): room for the first read's client
# set-up (boto3 loads its models) on a loaded machine, so the scaler's own "no answer
# within" never beats the cause under test. The production default.
ROOMY = 5.0

Metadata = Callable[[str, str, int], dict[str, str]]


def amqp(scheme: str, host: str, port: int) -> dict[str, str]:
    return {"source": "rabbitmq", "host": f"{scheme}://guest:{SECRET}@{host}:{port}/%2F", "queueName": "jobs"}


def management(scheme: str, host: str, port: int) -> dict[str, str]:
    return {"source": "rabbitmq", "host": f"{scheme}://guest:{SECRET}@{host}:{port}", "queueName": "jobs"}


def sqs(scheme: str, host: str, port: int) -> dict[str, str]:
    return {
        "source": "sqs",
        "queueURL": f"https://sqs.{AWS_REGION}.amazonaws.com/123456789012/jobs",
        "awsRegion": AWS_REGION,
        "awsEndpoint": f"{scheme}://{host}:{port}",
        "awsAccessKeyID": "AKIDCONNTEST",
        "awsSecretAccessKey": SECRET,
    }


def prometheus(scheme: str, host: str, port: int) -> dict[str, str]:
    return {
        "prometheusServerAddress": f"{scheme}://guest:{SECRET}@{host}:{port}",
        "gpuQuery": "vector(1)",
    }


# (name, metadata builder, plain scheme, TLS scheme)
SOURCES = [
    ("rabbitmq-amqp", amqp, "amqp", "amqps"),
    ("rabbitmq-management", management, "http", "https"),
    ("sqs", sqs, "http", "https"),
    ("prometheus", prometheus, "http", "https"),
]
ids = [s[0] for s in SOURCES]


async def _unavailable(scaler, meta: dict[str, str]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await scaler.metric(meta)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE, failure.value
    details = failure.value.details() or ""
    assert SECRET not in details
    for bare in ("gaierror", "ConnectionRefusedError", "AMQPConnectorStackTimeout", "SSLError", "Exception"):
        assert bare not in details, details  # words, not class names
    return details


@pytest.mark.parametrize(("name", "meta", "plain", "tls"), SOURCES, ids=ids)
async def test_a_name_that_does_not_resolve(start_scaler, name, meta: Metadata, plain, tls):
    scaler = await start_scaler(source_timeout=ROOMY)
    details = await _unavailable(scaler, meta(plain, UNRESOLVABLE, 5999))
    assert f"cannot connect to {UNRESOLVABLE}:5999" in details, details
    assert f"the host name '{UNRESOLVABLE}' does not resolve (DNS); check the host in" in details, details


@pytest.mark.parametrize(("name", "meta", "plain", "tls"), SOURCES, ids=ids)
async def test_an_unused_port_is_connection_refused(start_scaler, name, meta: Metadata, plain, tls):
    scaler = await start_scaler(source_timeout=ROOMY)
    port = find_free_port()
    details = await _unavailable(scaler, meta(plain, LOOPBACK, port))
    assert f"cannot connect to {LOOPBACK}:{port}: connection refused; check the port in" in details, details


@pytest.mark.parametrize(("name", "meta", "plain", "tls"), SOURCES, ids=ids)
async def test_a_server_that_never_answers_is_a_timeout(
    start_scaler, silent_server, name, meta: Metadata, plain, tls
):
    scaler = await start_scaler(source_timeout=TIMEOUT)
    trigger = meta(plain, LOOPBACK, silent_server.port)
    # The first read also builds the client (boto3 loads its models: a few hundred
    # ms, more on a loaded machine), which the scaler's own backstop may then beat
    # with its plainer "no answer within 1s"; once that read has returned, the
    # source's own timeout says it all. Until then the scaler says the previous read
    # has not returned (and starts no second one).
    first = await _unavailable(scaler, trigger)
    assert "no answer" in first and "within 1s" in first, first
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        await asyncio.sleep(0.3)  # past the cache TTL
        details = await _unavailable(scaler, trigger)
        if "the previous read has still not returned" not in details or loop.time() > deadline:
            break
    if name == "rabbitmq-amqp":  # stuck in the AMQP handshake: pika's stack timeout
        expected = f"cannot connect to {LOOPBACK}:{silent_server.port}: no answer within 1s while connecting"
    else:  # connected; the HTTP answer never came
        expected = f"no answer from {LOOPBACK}:{silent_server.port} within 1s"
    assert f"{expected}; check that" in details, details


@pytest.mark.parametrize(("name", "meta", "plain", "tls"), SOURCES, ids=ids)
async def test_a_self_signed_certificate_fails_tls(
    start_scaler, tls_server, name, meta: Metadata, plain, tls
):
    scaler = await start_scaler(source_timeout=ROOMY)
    details = await _unavailable(scaler, meta(tls, LOOPBACK, tls_server.port))
    assert f"cannot connect to {LOOPBACK}:{tls_server.port}: TLS failed" in details, details
    assert "certificate verify failed: self-signed certificate" in details, details


async def test_plain_amqp_to_a_tls_port_says_to_check_the_scheme(start_scaler, tls_server):
    scaler = await start_scaler(source_timeout=ROOMY)
    details = await _unavailable(scaler, amqp("amqp", LOOPBACK, tls_server.port))
    assert f"cannot connect to {LOOPBACK}:{tls_server.port}" in details, details
    assert "scheme" in details, details


async def test_wrong_rabbitmq_password_is_authentication_failed(start_scaler, rabbit):
    scaler = await start_scaler(source_timeout=TIMEOUT)
    for protocol, port in (("amqp", 5672), ("http", RABBIT_HTTP_PORT)):
        meta = rabbit.metadata(protocol)
        meta["host"] = meta["host"].replace("guest:guest@", f"guest:{SECRET}@")
        details = await _unavailable(scaler, meta)
        assert "authentication failed" in details, details
        assert "check the user name and password" in details, details
        if protocol == "amqp":
            assert f"{LOOPBACK}:{port}" in details


async def test_http_statuses_say_what_to_check(start_scaler, rabbit):
    scaler = await start_scaler(source_timeout=TIMEOUT)
    missing = rabbit.metadata("http")
    missing["queueName"] = "prewarm-it-no-such-queue"
    assert "queue or vhost does not exist (HTTP 404)" in await _unavailable(scaler, missing)
    # Prometheus's address pointing at something that is not Prometheus (the
    # management API answers its own 404 for /api/v1/query).
    not_prometheus = prometheus("http", LOOPBACK, RABBIT_HTTP_PORT)
    details = await _unavailable(scaler, not_prometheus)
    assert "HTTP 404" in details and "check that prometheusServerAddress" in details, details


async def test_a_failing_source_is_logged_once_and_its_recovery_once(start_scaler, rabbit, caplog):
    caplog.set_level(logging.INFO, logger="scaler.signals.cache")
    scaler = await start_scaler(source_timeout=TIMEOUT, cache_ttl=0.05)
    meta = rabbit.metadata("amqp")
    meta["queueName"] = rabbit.name + "-later"
    for _ in range(4):  # four reads (past the TTL each time), one warning
        await _unavailable(scaler, meta)
        await asyncio.sleep(0.06)
    failing = [r for r in caplog.records if r.getMessage().startswith("source failing")]
    assert len(failing) == 1, [r.getMessage() for r in failing]
    assert failing[0].levelno == logging.WARNING
    assert "queue does not exist" in failing[0].getMessage()
    assert "guest" not in failing[0].getMessage()  # the URL's user info never appears

    rabbit.channel().queue_declare(queue=meta["queueName"], durable=False, auto_delete=True)
    for _ in range(3):
        await scaler.metric(meta)
        await asyncio.sleep(0.06)
    recovered = [r for r in caplog.records if r.getMessage().startswith("source recovered")]
    assert len(recovered) == 1, [r.getMessage() for r in recovered]
    assert recovered[0].levelno == logging.INFO
    assert f"'{meta['queueName']}'" in recovered[0].getMessage()
