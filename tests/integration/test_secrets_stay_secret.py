"""Credentials in trigger metadata (a RabbitMQ password in the host URL, AWS secret
keys) never show in logs, error details or /metrics: on success and on every kind
of failure. Logs are the project's JSON logs at DEBUG, captured."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import secrets
import sys

import grpc
import pytest
import requests

from scaler._proto import externalscaler_pb2 as pb
from scaler.access import AccessPolicy, Patterns
from scaler.observability import setup_logging

pytestmark = pytest.mark.integration

API = "http://127.0.0.1:15672/api"
ADMIN = ("guest", "guest")


@pytest.fixture
def rabbit_secret_user(rabbit):
    """A broker user of this test's own, with a random password (alphanumeric, so
    its URL-encoded form is itself)."""
    user = f"prewarm-it-{secrets.token_hex(4)}"
    password = "pw" + secrets.token_hex(12)
    put = requests.put(
        f"{API}/users/{user}", json={"password": password, "tags": "monitoring"}, auth=ADMIN, timeout=5
    )
    put.raise_for_status()
    grant = requests.put(
        f"{API}/permissions/%2F/{user}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=ADMIN,
        timeout=5,
    )
    grant.raise_for_status()
    yield user, password
    requests.delete(f"{API}/users/{user}", auth=ADMIN, timeout=5)


@pytest.fixture
def json_debug_logs(monkeypatch):
    """The project's logging (JSON, DEBUG) writing into a buffer; restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3", "pika")}
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    setup_logging("json", "debug")
    yield buffer
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


async def _outcome(scaler, metadata, name: str) -> dict[str, tuple[str, str]]:
    """Every rpc KEDA makes for one object: rpc -> (status code, what the client saw)."""
    ref = scaler.ref(metadata, name=name)
    request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName="")
    calls = {
        "GetMetricSpec": lambda: scaler.stub.GetMetricSpec(ref),
        "GetMetrics": lambda: scaler.stub.GetMetrics(request),
        "IsActive": lambda: scaler.stub.IsActive(ref),
    }
    seen = {}
    for rpc, call in calls.items():
        try:
            seen[rpc] = ("OK", str(await call()))
        except grpc.aio.AioRpcError as exc:
            seen[rpc] = (exc.code().name, f"{exc.details()} {exc.debug_error_string()}")
    # A stream on a failing source logs at debug and sends nothing: give it a few intervals.
    stream = scaler.stub.StreamIsActive(ref)
    first = asyncio.ensure_future(stream.read())
    await asyncio.wait({first}, timeout=1.0)
    stream.cancel()
    try:
        seen["StreamIsActive"] = ("OK", str(await first))
    except grpc.aio.AioRpcError as exc:
        seen["StreamIsActive"] = (exc.code().name, f"{exc.details()} {exc.debug_error_string()}")
    except asyncio.CancelledError:
        seen["StreamIsActive"] = ("SILENT", "")
    return seen


async def test_secrets_never_leak(
    start_scaler, json_debug_logs, rabbit, rabbit_secret_user, sqs_queue, free_port
):
    scaler = await start_scaler()
    user, password = rabbit_secret_user
    wrong_password = "pw" + secrets.token_hex(12)
    aws_secret = "aws" + secrets.token_hex(16)
    aws_token = "tok" + secrets.token_hex(16)
    closed_port = free_port()
    rabbit.publish(2)
    await rabbit.wait_management(ready=2, unacknowledged=0)

    def rabbit_meta(url: str, **extra: str) -> dict[str, str]:
        return {"source": "rabbitmq", "host": url, "queueName": rabbit.name, **extra}

    def sqs_meta(**extra: str) -> dict[str, str]:
        meta = sqs_queue.metadata(awsSecretAccessKey=aws_secret, awsSessionToken=aws_token)
        meta.update(extra)
        return meta

    amqp = f"amqp://{user}:{password}@127.0.0.1:5672/%2F"
    http = f"http://{user}:{password}@127.0.0.1:15672"
    cases = {
        # works
        "amqp-ok": rabbit_meta(amqp),
        "http-ok": rabbit_meta(http),
        "sqs-ok": sqs_meta(),
        # fails at the source: wrong password, nothing listening, no such queue
        "amqp-auth": rabbit_meta(f"amqp://{user}:{wrong_password}@127.0.0.1:5672/%2F"),
        "http-auth": rabbit_meta(f"http://{user}:{wrong_password}@127.0.0.1:15672"),
        "amqp-down": rabbit_meta(f"amqp://{user}:{password}@127.0.0.1:{closed_port}/%2F"),
        "http-down": rabbit_meta(f"http://{user}:{password}@127.0.0.1:{closed_port}"),
        "amqp-no-queue": rabbit_meta(amqp, queueName="no-such-queue"),
        "sqs-no-queue": sqs_meta(queueURL=sqs_queue.url + "-missing"),
        "sqs-down": sqs_meta(awsEndpoint=f"http://127.0.0.1:{closed_port}"),
        # fails validation, with the secret elsewhere in the same metadata
        "amqp-bad-protocol": rabbit_meta(amqp, protocol="http"),
        "bad-scheme": rabbit_meta(f"ftp://{user}:{password}@127.0.0.1/"),
        "amqp-bad-port": rabbit_meta(f"amqp://{user}:{password}@127.0.0.1:99999/"),
        "sqs-bad-length": sqs_meta(queueLength="-1"),
        "sqs-unknown-key": sqs_meta(awsSecretAcessKey=aws_secret),  # a typo'd key holding a secret
    }
    outcomes = await asyncio.gather(*(_outcome(scaler, meta, name) for name, meta in cases.items()))
    seen = dict(zip(cases, outcomes, strict=True))

    # The cases did what they say, so the checks below cover real failures too.
    def codes(name: str) -> list[str]:
        return [code for code, _ in seen[name].values()]

    for name in ("amqp-ok", "http-ok", "sqs-ok"):
        assert codes(name) == ["OK"] * 4, seen[name]
    for name in ("amqp-auth", "http-auth", "amqp-down", "http-down", "amqp-no-queue", "sqs-no-queue"):
        assert codes(name) == ["OK", "UNAVAILABLE", "UNAVAILABLE", "SILENT"], seen[name]
    assert codes("sqs-down") == ["OK", "UNAVAILABLE", "UNAVAILABLE", "SILENT"], seen["sqs-down"]
    for name in ("amqp-bad-protocol", "bad-scheme", "amqp-bad-port", "sqs-bad-length"):
        assert codes(name) == ["INVALID_ARGUMENT"] * 4, seen[name]
    assert codes("sqs-unknown-key") == ["OK"] * 4  # ignored, with a warning naming the key only

    metrics_page = await scaler.scrape()
    logs = json_debug_logs.getvalue()
    assert '"level": "debug"' in logs and "decision changed" in logs  # the capture works
    assert "awsSecretAcessKey" in logs  # the typo was warned about (by key, not value)

    basic_auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    for secret in (password, wrong_password, aws_secret, aws_token, basic_auth):
        for name, outcome in seen.items():
            assert secret not in repr(outcome), f"a secret in the answers for {name}: {outcome}"
        assert secret not in metrics_page
        leaked = [line for line in logs.splitlines() if secret in line]
        assert leaked == []


async def test_refused_hosts_leak_no_secret(
    start_scaler, json_debug_logs, rabbit, rabbit_secret_user, sqs_queue
):
    """A trigger the access policy refuses (host outside --allowed-hosts, the
    scaler's own identity from an unlisted namespace) is INVALID_ARGUMENT on every
    rpc, and its secrets show in no answer, log line or metric."""
    access = AccessPolicy(
        allowed_hosts=Patterns.parse("*.svc.cluster.local", what="host"),
        ambient_identity_namespaces=Patterns.parse("", what="namespace"),
    )
    scaler = await start_scaler(access=access)
    user, password = rabbit_secret_user
    aws_secret = "aws" + secrets.token_hex(16)
    prometheus_password = "pp" + secrets.token_hex(12)
    ambient = sqs_queue.metadata()
    del ambient["awsAccessKeyID"], ambient["awsSecretAccessKey"]
    cases = {
        "amqp": rabbit.metadata("amqp", host=f"amqp://{user}:{password}@127.0.0.1:5672/%2F"),
        "http": rabbit.metadata("http", host=f"http://{user}:{password}@127.0.0.1:15672"),
        "sqs": sqs_queue.metadata(awsSecretAccessKey=aws_secret),
        "prometheus": {
            "prometheusServerAddress": f"http://admin:{prometheus_password}@127.0.0.1:9",
            "gpuSelector": 'pod="x"',
        },
        "ambient": {
            **ambient,
            "queueURL": "https://sqs.svc.cluster.local/1/q",
            "awsEndpoint": "http://sqs.svc.cluster.local",
        },
    }
    outcomes = await asyncio.gather(*(_outcome(scaler, meta, name) for name, meta in cases.items()))
    seen = dict(zip(cases, outcomes, strict=True))
    for name, outcome in seen.items():
        assert [code for code, _ in outcome.values()] == ["INVALID_ARGUMENT"] * 4, (name, outcome)
    assert "--allowed-hosts" in seen["amqp"]["GetMetrics"][1]
    assert "--ambient-identity-namespaces" in seen["ambient"]["IsActive"][1]
    metrics_page = await scaler.scrape()
    logs = json_debug_logs.getvalue()
    for secret in (password, aws_secret, prometheus_password):
        assert secret not in repr(seen)
        assert secret not in metrics_page
        assert [line for line in logs.splitlines() if secret in line] == []
