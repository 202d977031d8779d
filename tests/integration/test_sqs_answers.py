"""What an SQS endpoint answers, through the real scaler and botocore: a fake SQS
(JSON protocol) on loopback answers each test's case. Counts that are NaN,
infinite or negative, and an answer with no attributes, are UNAVAILABLE naming
the field, never a reading; an error message that quotes the signed request
(SignatureDoesNotMatch) never puts the session token in the answer or the logs;
credentials in awsEndpoint's user info are never shown."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import grpc
import pytest
from fake_http import Answer, FakeHttpServer, Request

pytestmark = pytest.mark.integration

REGION = "us-east-1"
KEY_ID = "ASIAFAKEKEYFORTESTS1"
SECRET = "fake-secret-access-key-for-tests"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-SESSION-TOKEN-SECRET"
COUNTS = {"ApproximateNumberOfMessages": "4", "ApproximateNumberOfMessagesNotVisible": "2"}


@pytest.fixture
async def scaler_server(start_scaler):
    # 5 s a read, as in test_sqs_backlog: the first read makes a boto3 client.
    return await start_scaler(source_timeout=5.0)


@pytest.fixture
def fake_sqs() -> Iterator[Callable[[Callable[[Request], Answer]], FakeHttpServer]]:
    started: list[FakeHttpServer] = []

    def start(answer: Callable[[Request], Answer]) -> FakeHttpServer:
        server = FakeHttpServer(answer)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def attributes(answer: dict[str, object]) -> Callable[[Request], Answer]:
    """GetQueueAttributes answering `answer` (the whole JSON document)."""
    return lambda request: (200, "application/x-amz-json-1.0", json.dumps(answer).encode())


def metadata(server: FakeHttpServer, *, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    meta = {
        "source": "sqs",
        "queueURL": f"{server.url}/000000000000/jobs",
        "awsRegion": REGION,
        "awsEndpoint": endpoint or server.url,
        "awsAccessKeyID": KEY_ID,
        "awsSecretAccessKey": SECRET,
        "queueLength": "1",
    }
    meta.update(extra)
    return meta


async def _unavailable(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    return str(failure.value.details())


@pytest.mark.parametrize("count", ["NaN", "Infinity", "-5"])
@pytest.mark.parametrize(
    "attribute", ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
)
async def test_a_count_that_is_not_a_count_is_unavailable_naming_it(
    scaler_server, fake_sqs, attribute, count
):
    server = fake_sqs(attributes({"Attributes": {**COUNTS, attribute: count}}))
    meta = metadata(server)

    for call in (scaler_server.metric(meta), scaler_server.active(meta)):  # never a made-up reading
        details = await _unavailable(call)
        assert details.startswith(f"sqs queue 'jobs' in {REGION}: {attribute} is "), details
        assert "expected a count of messages" in details, details


@pytest.mark.parametrize("answer", [{}, {"Attributes": None}], ids=["no-attributes", "null-attributes"])
async def test_an_answer_without_attributes_names_the_missing_one(scaler_server, fake_sqs, answer):
    server = fake_sqs(attributes(answer))

    details = await _unavailable(scaler_server.metric(metadata(server)))

    assert "the answer has no ApproximateNumberOfMessages" in details, details
    assert server.url in details


async def test_user_info_in_aws_endpoint_is_never_shown(scaler_server, fake_sqs):
    server = fake_sqs(attributes({"Attributes": {"ApproximateNumberOfMessages": "3"}}))
    meta = metadata(server, endpoint=f"http://proxyuser:PROXY-SECRET@127.0.0.1:{server.port}")

    details = await _unavailable(scaler_server.metric(meta))

    assert f"check that the server at {server.url} reports it" in details, details
    assert "PROXY-SECRET" not in details and "proxyuser" not in details
    assert "PROXY-SECRET" not in await scaler_server.scrape()


def signature_mismatch(request: Request) -> Answer:
    """What SQS answers a request signed with the wrong secret: its message quotes
    the canonical request it expected, signed headers (the session token) included."""
    signed = sorted(
        (name, value)
        for name, value in request.headers.items()
        if name in ("content-type", "host", "x-amz-date", "x-amz-security-token", "x-amz-target")
    )
    canonical = "POST\n/\n\n" + "".join(f"{name}:{value}\n" for name, value in signed)
    message = (
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
        f"The Canonical String for this request should have been\n'{canonical}\n"
        f"{';'.join(name for name, _ in signed)}'"
    )
    body = {"__type": "com.amazon.coral.service#SignatureDoesNotMatch", "message": message}
    return 403, "application/x-amz-json-1.0", json.dumps(body).encode()


async def test_signature_mismatch_never_shows_the_session_token(scaler_server, fake_sqs, caplog):
    server = fake_sqs(signature_mismatch)
    meta = metadata(server, awsSessionToken=TOKEN)

    with caplog.at_level(logging.DEBUG, logger="scaler"):
        answers = [
            await _unavailable(scaler_server.metric(meta)),
            await _unavailable(scaler_server.active(meta)),
        ]

    assert server.requests[0].headers["x-amz-security-token"] == TOKEN  # the server could quote it
    for details in answers:
        assert details == f"sqs queue 'jobs' in {REGION}: SignatureDoesNotMatch; check the secret access key"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SignatureDoesNotMatch" in logged  # the cache's "source failing" warning
    page = await scaler_server.scrape()
    for secret in (TOKEN, SECRET):
        assert secret not in logged and secret not in page


async def test_another_error_shows_the_first_line_of_its_message_redacted(scaler_server, fake_sqs):
    message = f"Service busy; x-amz-security-token:{TOKEN} Credential={KEY_ID}/20260101/{REGION}/sqs\nmore"

    def busy(request: Request) -> Answer:
        body = {"__type": "com.amazonaws.sqs#ServiceUnavailable", "message": message}
        return 400, "application/x-amz-json-1.0", json.dumps(body).encode()

    server = fake_sqs(busy)

    details = await _unavailable(scaler_server.metric(metadata(server)))

    assert details == (
        f"sqs queue 'jobs' in {REGION}: ServiceUnavailable: Service busy; "
        "x-amz-security-token:<redacted> Credential=<redacted>"
    )
