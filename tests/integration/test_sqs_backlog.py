"""SQS backlog against moto's server mode: visible, in-flight and delayed
messages, counted per scaleOnInFlight / scaleOnDelayed, in both modes.

The test itself plays the worker (it receives messages with a visibility
timeout); the scaler only ever reads queue attributes. Credentials (static keys,
a session token, an assumed role) are checked against a moto server with IAM
authentication on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import grpc
import pytest
import requests

pytestmark = pytest.mark.integration

VISIBLE, IN_FLIGHT, DELAYED = 7, 3, 2
QUEUE_LENGTH = 4.0


@pytest.fixture
async def scaler_server(start_scaler):
    """This module's scaler allows the production default of 5 s a read, not the
    suite's 1 s: the first read of each trigger builds a boto3 client (and with a
    role an STS client and AssumeRole too, against a moto that checks every
    request's policy), which on a loaded machine took past 1 s and failed as a
    timeout. Nothing here tests timeouts (test_connection_errors does)."""
    return await start_scaler(source_timeout=5.0)


@pytest.fixture
def sqs_backlog(sqs_queue):
    """7 visible, 3 in flight (received by the test), 2 delayed."""
    sqs_queue.send(VISIBLE + IN_FLIGHT)
    sqs_queue.receive(IN_FLIGHT, visibility_timeout=300)
    sqs_queue.send(DELAYED, delay_seconds=300)
    assert sqs_queue.counts() == {"visible": VISIBLE, "in_flight": IN_FLIGHT, "delayed": DELAYED}
    return sqs_queue


@pytest.mark.parametrize(
    ("extra", "counted"),
    [
        ({}, VISIBLE + IN_FLIGHT),  # defaults: in flight counted, delayed not
        ({"scaleOnInFlight": "false"}, VISIBLE),
        ({"scaleOnDelayed": "true"}, VISIBLE + IN_FLIGHT + DELAYED),
        ({"scaleOnInFlight": "false", "scaleOnDelayed": "true"}, VISIBLE + DELAYED),
        ({"scaleOnInFlightFromEnv": "false"}, VISIBLE),  # KEDA's resolved FromEnv form
    ],
    ids=["default", "no-in-flight", "with-delayed", "visible-and-delayed", "from-env"],
)
async def test_deployment_mode_counts_per_settings(scaler_server, sqs_backlog, extra, counted):
    meta = sqs_backlog.metadata(queueLength=f"{QUEUE_LENGTH:g}", **extra)

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == pytest.approx(counted / QUEUE_LENGTH)
    assert value.metricValue == math.ceil(counted / QUEUE_LENGTH)
    assert await scaler_server.active(meta) is True


async def test_kedas_own_metadata_with_the_queues_short_name(scaler_server, sqs_backlog):
    # As KEDA's documented examples write it: no `source`, `queueURL: <name>`, the
    # region; the queue's URL is looked up once (GetQueueUrl) and then read.
    meta = sqs_backlog.metadata(
        queueURL=sqs_backlog.name, queueLength=f"{QUEUE_LENGTH:g}", identityOwner="pod"
    )
    del meta["source"]

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == pytest.approx((VISIBLE + IN_FLIGHT) / QUEUE_LENGTH)
    assert await scaler_server.active(meta) is True
    # a name that does not exist is UNAVAILABLE, saying so
    missing = {**meta, "queueURL": "prewarm-it-no-such-queue"}
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await scaler_server.metric(missing)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "queue does not exist" in (failure.value.details() or "")


async def test_job_mode_counts_only_waiting(scaler_server, sqs_backlog):
    # Even with delayed counting on: a Job per unclaimed message, never in flight.
    meta = sqs_backlog.metadata(mode="job", queueLength=f"{QUEUE_LENGTH:g}", scaleOnDelayed="true")

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == pytest.approx(VISIBLE / QUEUE_LENGTH)
    assert value.metricValue == math.ceil(VISIBLE / QUEUE_LENGTH)


@pytest.mark.parametrize(
    ("extra", "active"),
    [
        ({"activationQueueLength": str(VISIBLE + IN_FLIGHT - 1)}, True),
        # Below the threshold, messages in flight keep a deployment active (busy
        # pods must not be cooled down to zero), counted in the metric or not.
        ({"activationQueueLength": "100"}, True),
        ({"activationQueueLength": "100", "scaleOnInFlight": "false"}, True),
        # Job mode: the unclaimed backlog only.
        ({"mode": "job", "activationQueueLength": str(VISIBLE - 1)}, True),
        ({"mode": "job", "activationQueueLength": str(VISIBLE)}, False),  # must exceed, not equal
    ],
    ids=["above", "kept-by-in-flight", "kept-by-uncounted-in-flight", "job-above", "job-equal"],
)
async def test_activation_threshold(scaler_server, sqs_backlog, extra, active):
    meta = sqs_backlog.metadata(**extra)

    assert await scaler_server.active(meta) is active


async def test_activation_threshold_without_in_flight(scaler_server, sqs_queue):
    sqs_queue.send(5)
    sqs_queue.send(2, delay_seconds=300)

    assert await scaler_server.active(sqs_queue.metadata(activationQueueLength="4")) is True
    assert await scaler_server.active(sqs_queue.metadata(activationQueueLength="5")) is False  # not equal
    both = sqs_queue.metadata(activationQueueLength="6", scaleOnDelayed="true")
    assert await scaler_server.active(both) is True


async def test_empty_queue_is_zero_and_inactive(scaler_server, sqs_queue):
    meta = sqs_queue.metadata()

    value = await scaler_server.metric(meta)

    assert (value.metricValueFloat, value.metricValue) == (0.0, 0)
    assert await scaler_server.active(meta) is False


class AttributeDroppingProxy:
    """An SQS-compatible server that does not report one attribute: moto behind a
    loopback proxy that deletes it from GetQueueAttributes answers."""

    def __init__(self, upstream: str, drop: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                skip = ("host", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                answer = requests.post(upstream + self.path, data=body, headers=headers, timeout=5)
                content = answer.content
                if self.headers.get("X-Amz-Target", "").endswith("GetQueueAttributes"):
                    document = json.loads(content)
                    document.get("Attributes", {}).pop(drop, None)
                    content = json.dumps(document).encode()
                    proxy.dropped += 1
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self.dropped = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize(
    ("attribute", "extra"),
    [
        ("ApproximateNumberOfMessagesNotVisible", {}),
        ("ApproximateNumberOfMessagesDelayed", {"scaleOnDelayed": "true"}),
    ],
)
async def test_a_missing_attribute_is_unavailable_naming_it(scaler_server, sqs_queue, attribute, extra):
    sqs_queue.send(2)
    proxy = AttributeDroppingProxy(sqs_queue.moto.endpoint, attribute)
    try:
        meta = sqs_queue.metadata(awsEndpoint=proxy.url, **extra)
        for call in (scaler_server.metric(meta), scaler_server.active(meta)):  # never a made-up zero
            details = await _unavailable(call)
            assert f"the answer has no {attribute}" in details, details
            assert proxy.url in details
        assert proxy.dropped >= 1
    finally:
        proxy.stop()


async def test_delayed_is_not_asked_for_unless_it_counts(scaler_server, sqs_queue):
    """As KEDA's own scaler: a server that lacks the delayed count still serves a
    trigger that does not scale on it."""
    sqs_queue.send(2)
    proxy = AttributeDroppingProxy(sqs_queue.moto.endpoint, "ApproximateNumberOfMessagesDelayed")
    try:
        value = await scaler_server.metric(sqs_queue.metadata(awsEndpoint=proxy.url, queueLength="1"))
        assert value.metricValueFloat == 2.0
    finally:
        proxy.stop()


# --- credentials: static keys, session token, an assumed role ----------------------
#
# moto accepts any keys unless IAM authentication is on; with it on, every request
# must be signed by a key moto issued, with a policy allowing the action, and STS
# checks the caller's policy and the role's trust policy on AssumeRole. So these
# tests run their own moto server (a subprocess: the switch is process-wide) with
# IAM on, and a key that may not read the queue shows which credentials a read used.

IAM_QUEUED = 6
IAM_REGION = "us-east-1"
OTHER_ACCOUNT = "210987654321"


@dataclass(frozen=True)
class IamMoto:
    endpoint: str
    queue_url: str
    reader_key: tuple[str, str]  # a user whose policy allows sqs:GetQueueAttributes
    assumer_key: tuple[str, str]  # a user who may only call sts:AssumeRole on this account's roles
    role_arn: str  # trusts the assumer, may read queues
    untrusting_role_arn: str  # may read queues, trusts only the reader

    def client(self, service: str, key: tuple[str, str], token: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=IAM_REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            aws_session_token=token,
        )

    def metadata(self, **extra: str) -> dict[str, str]:
        meta = {
            "source": "sqs",
            "queueURL": self.queue_url,
            "awsRegion": IAM_REGION,
            "awsEndpoint": self.endpoint,
            "queueLength": "1",
        }
        meta.update(extra)
        return meta


def _policy(statement: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]})


@pytest.fixture(scope="module")
def moto_iam() -> Iterator[IamMoto]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        # Set up while authentication is still off (moto's default).
        setup_key = ("AKIDPREWARMSETUP", "setup")
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=IAM_REGION,
            aws_access_key_id=setup_key[0],
            aws_secret_access_key=setup_key[1],
        )

        def user(name: str, statement: dict[str, Any]) -> tuple[str, tuple[str, str]]:
            arn = iam.create_user(UserName=name)["User"]["Arn"]
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=_policy(statement))
            key = iam.create_access_key(UserName=name)["AccessKey"]
            return arn, (key["AccessKeyId"], key["SecretAccessKey"])

        reader_arn, reader_key = user("reader", {"Action": "sqs:GetQueueAttributes", "Resource": "*"})
        account = reader_arn.split(":")[4]
        assumer_arn, assumer_key = user(
            "assumer", {"Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{account}:role/*"}
        )

        def role(name: str, trusted: str) -> str:
            trust = _policy({"Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"})
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            read = _policy({"Action": "sqs:GetQueueAttributes", "Resource": "*"})
            iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=read)
            return str(arn)

        moto = IamMoto(
            endpoint=endpoint,
            queue_url="",
            reader_key=reader_key,
            assumer_key=assumer_key,
            role_arn=role("queue-reader", trusted=assumer_arn),
            untrusting_role_arn=role("reader-only", trusted=reader_arn),
        )
        sqs = moto.client("sqs", setup_key)
        queue_url = sqs.create_queue(QueueName="prewarm-it-iam")["QueueUrl"]
        for i in range(IAM_QUEUED):
            sqs.send_message(QueueUrl=queue_url, MessageBody=f"job {i}")
        # From here on every request is authenticated and authorized.
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
        yield dataclasses.replace(moto, queue_url=queue_url)
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _unavailable(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    return str(failure.value.details())


async def _assert_no_secret(scaler, answers: list[str], *secrets: str) -> None:
    page = await scaler.scrape()
    for secret in secrets:
        for answer in answers:
            assert secret not in answer, answer
        assert secret not in page


async def test_static_keys_from_env_read_the_queue(scaler_server, moto_iam):
    key_id, secret = moto_iam.reader_key
    meta = moto_iam.metadata(awsAccessKeyIDFromEnv=key_id, awsSecretAccessKeyFromEnv=secret)

    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == IAM_QUEUED
    assert await scaler_server.active(meta) is True
    # The keys given are the keys used: a wrong secret fails the signature check,
    # and another user's keys (which may not read queues) are refused.
    wrong = moto_iam.metadata(awsAccessKeyIDFromEnv=key_id, awsSecretAccessKeyFromEnv=secret + "x")
    signature = await _unavailable(scaler_server.metric(wrong))
    assert "SignatureDoesNotMatch" in signature and "prewarm-it-iam" in signature, signature
    assert "check the secret access key" in signature, signature  # what to check, in words
    other = moto_iam.metadata(
        awsAccessKeyIDFromEnv=moto_iam.assumer_key[0], awsSecretAccessKeyFromEnv=moto_iam.assumer_key[1]
    )
    denied = await _unavailable(scaler_server.metric(other))
    assert "not authorized to perform: sqs:GetQueueAttributes" in denied, denied
    assert "check the identity's sqs:GetQueueAttributes permission" in denied, denied
    await _assert_no_secret(scaler_server, [signature, denied], secret, moto_iam.assumer_key[1])


async def test_session_token_from_env_reads_the_queue(scaler_server, moto_iam):
    # Temporary credentials, as a user would paste from `aws sts assume-role`.
    sts = moto_iam.client("sts", moto_iam.assumer_key)
    creds = sts.assume_role(RoleArn=moto_iam.role_arn, RoleSessionName="pasted")["Credentials"]
    keys = {
        "awsAccessKeyIDFromEnv": creds["AccessKeyId"],
        "awsSecretAccessKeyFromEnv": creds["SecretAccessKey"],
    }

    value = await scaler_server.metric(
        moto_iam.metadata(awsSessionTokenFromEnv=creds["SessionToken"], **keys)
    )

    assert value.metricValueFloat == IAM_QUEUED
    # Without its token the temporary key is refused: the token was sent.
    refused = await _unavailable(scaler_server.metric(moto_iam.metadata(**keys)))
    await _assert_no_secret(scaler_server, [refused], creds["SecretAccessKey"], creds["SessionToken"])


@pytest.fixture
def sts_at_moto(moto_iam: IamMoto, monkeypatch: pytest.MonkeyPatch) -> None:
    # awsEndpoint is for SQS only; STS is found the AWS SDK's way, here through the
    # standard service-specific variable (the in-process server reads it per session).
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_iam.endpoint)


async def test_role_arn_reads_through_assume_role(scaler_server, moto_iam, sts_at_moto):
    key_id, secret = moto_iam.assumer_key
    keys = {"awsAccessKeyID": key_id, "awsSecretAccessKey": secret}
    # The assumer's own key may not read queues...
    denied = await _unavailable(scaler_server.metric(moto_iam.metadata(**keys)))
    assert "not authorized" in denied, denied

    # ...so a read that works went through STS AssumeRole (at AWS_ENDPOINT_URL_STS,
    # moto) and the role's temporary credentials.
    meta = moto_iam.metadata(awsRoleArn=moto_iam.role_arn, **keys)
    value = await scaler_server.metric(meta)

    assert value.metricValueFloat == IAM_QUEUED
    assert await scaler_server.active(meta) is True
    await _assert_no_secret(scaler_server, [denied], secret)


@pytest.mark.parametrize(
    "which",
    ["untrusting", "other-account"],
    ids=["role-does-not-trust-caller", "caller-may-not-assume"],
)
async def test_role_sts_rejects_is_unavailable_naming_the_role(scaler_server, moto_iam, sts_at_moto, which):
    role_arn = (
        moto_iam.untrusting_role_arn
        if which == "untrusting"
        else f"arn:aws:iam::{OTHER_ACCOUNT}:role/queue-reader"  # outside the assumer's policy
    )
    key_id, secret = moto_iam.assumer_key
    meta = moto_iam.metadata(awsRoleArn=role_arn, awsAccessKeyID=key_id, awsSecretAccessKey=secret)

    answers = [await _unavailable(scaler_server.metric(meta)), await _unavailable(scaler_server.active(meta))]

    for details in answers:
        assert f"cannot assume role {role_arn}: AccessDenied" in details, details
        assert "prewarm-it-iam" in details, details  # and the source
    await _assert_no_secret(scaler_server, answers, secret)


async def test_sts_does_not_use_the_sqs_endpoint(scaler_server, moto_iam, monkeypatch):
    # awsEndpoint names an SQS endpoint (a VPC endpoint serves SQS only): AssumeRole
    # must not be sent there. With STS pointed at a closed loopback port, the read
    # fails on STS even though awsEndpoint (moto) would have answered AssumeRole.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed}")
    key_id, secret = moto_iam.assumer_key
    meta = moto_iam.metadata(awsRoleArn=moto_iam.role_arn, awsAccessKeyID=key_id, awsSecretAccessKey=secret)
    details = await _unavailable(scaler_server.metric(meta))
    assert f"cannot assume role {moto_iam.role_arn}" in details, details
