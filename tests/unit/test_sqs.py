"""SqsSource's reading of a GetQueueAttributes answer: which attributes it asks
for, a missing or nonsensical count as an error naming it (never a made-up
zero), what of SQS's error messages is shown, and the clients shared by queues
with the same endpoint, region and credentials."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.config import SqsConfig, parse_trigger
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.errors import MAX_SERVER_MESSAGE
from scaler.signals.sqs import ROLE_REFRESH_MARGIN_S, SHARED_CLIENTS, SqsClients, SqsSource

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


class FakeSqsClient:
    def __init__(
        self, attributes: dict[str, str] | None = None, *, answer: dict[str, Any] | None = None
    ) -> None:
        self.attributes = attributes or {}
        self.answer = answer  # the whole answer, when a test gives one
        self.error: ClientError | None = None
        self.url_error: ClientError | None = None  # GetQueueUrl's, when a test gives one
        self.asked: list[list[str]] = []
        self.closed = False

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.asked.append(AttributeNames)
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer
        return {"Attributes": {k: v for k, v in self.attributes.items() if k in AttributeNames}}

    def get_queue_url(self, QueueName: str) -> dict[str, Any]:
        if self.url_error is not None:
            raise self.url_error
        return {"QueueUrl": f"https://sqs.us-east-1.amazonaws.com/123456789012/{QueueName}"}

    def close(self) -> None:
        self.closed = True


class FakeSts:
    """STS answering AssumeRole with credentials that last `lifetime` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.assumed: list[str] = []
        self.closed = False

    def assume_role(self, RoleArn: str, RoleSessionName: str) -> dict[str, Any]:
        self.assumed.append(RoleArn)
        expiration = datetime.fromtimestamp(time.time() + self.lifetime, UTC)
        n = len(self.assumed)
        creds = {"AccessKeyId": f"ASIATEMP{n}", "SecretAccessKey": f"temp-{n}", "SessionToken": f"tok-{n}"}
        return {"Credentials": {**creds, "Expiration": expiration}}

    def close(self) -> None:
        self.closed = True


class FakeClients(SqsClients):
    """The process's client registry, making fakes instead of boto3 clients."""

    def __init__(self, sts_lifetime: float = 3600.0) -> None:
        super().__init__()
        self.made: list[tuple[str, dict[str, Any], Any]] = []  # (service, arguments, client)
        self.sts_lifetime = sts_lifetime
        self.attributes: dict[str, str] = {}

    def make_client(self, service: str, **kwargs: Any) -> Any:
        client = FakeSts(self.sts_lifetime) if service == "sts" else FakeSqsClient(self.attributes)
        self.made.append((service, kwargs, client))
        return client

    def sqs_clients(self) -> list[FakeSqsClient]:
        return [client for service, _, client in self.made if service == "sqs"]


def sqs_config(**metadata: str) -> SqsConfig:
    cfg = parse_trigger({"source": "sqs", "queueURL": URL, **metadata}).sqs
    assert cfg is not None
    return cfg


def source_with(attributes: dict[str, str], **metadata: str) -> tuple[SqsSource, FakeSqsClient]:
    clients = FakeClients()
    clients.attributes = attributes
    source = SqsSource(sqs_config(**metadata), clients=clients)
    client = source._sqs()  # the client the source reads through, answering from memory
    assert isinstance(client, FakeSqsClient)
    return source, client


ALL = {
    "ApproximateNumberOfMessages": "4",
    "ApproximateNumberOfMessagesNotVisible": "2",
    "ApproximateNumberOfMessagesDelayed": "1",
}


def test_reads_waiting_and_in_flight_and_delayed_only_when_it_counts() -> None:
    source, client = source_with(ALL)
    assert source.read() == QueueReading(waiting=4.0, in_flight=2.0, delayed=0.0)
    assert client.asked == [["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]]
    source, client = source_with(ALL, scaleOnDelayed="true")
    assert source.read() == QueueReading(waiting=4.0, in_flight=2.0, delayed=1.0)
    assert "ApproximateNumberOfMessagesDelayed" in client.asked[0]


@pytest.mark.parametrize(
    ("missing", "metadata"),
    [
        ("ApproximateNumberOfMessages", {}),
        ("ApproximateNumberOfMessagesNotVisible", {"scaleOnInFlight": "false"}),
        ("ApproximateNumberOfMessagesDelayed", {"scaleOnDelayed": "true"}),
    ],
)
def test_a_missing_attribute_is_an_error_naming_it(missing: str, metadata: dict[str, str]) -> None:
    source, _ = source_with({k: v for k, v in ALL.items() if k != missing}, **metadata)
    with pytest.raises(SourceError, match=f"sqs queue 'jobs' in us-east-1: the answer has no {missing}"):
        source.read()


def test_an_attribute_that_is_not_a_number_is_an_error() -> None:
    source, _ = source_with({**ALL, "ApproximateNumberOfMessages": "many"})
    with pytest.raises(SourceError, match="ApproximateNumberOfMessages is not a number"):
        source.read()


@pytest.mark.parametrize("count", ["NaN", "nan", "Infinity", "-inf", "-5", "-0.5"])
@pytest.mark.parametrize(
    "attribute", ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
)
def test_a_count_that_is_nan_infinite_or_negative_is_an_error_naming_it(attribute: str, count: str) -> None:
    # The engine read NaN waiting as an idle queue (inactive even with work in flight).
    source, _ = source_with({**ALL, attribute: count})
    with pytest.raises(
        SourceError, match=f"sqs queue 'jobs' in us-east-1: {attribute} is .*expected a count"
    ):
        source.read()


@pytest.mark.parametrize("answer", [{}, {"Attributes": None}, {"Attributes": ["x"]}])
def test_an_answer_without_attributes_names_the_first_missing_one(answer: dict[str, Any]) -> None:
    source, client = source_with({})
    client.answer = answer
    with pytest.raises(SourceError, match="the answer has no ApproximateNumberOfMessages;"):
        source.read()


def test_credentials_in_the_endpoints_user_info_are_never_shown() -> None:
    endpoint = "http://proxyuser:PROXY-SECRET@127.0.0.1:4566"
    source, _ = source_with({"ApproximateNumberOfMessages": "1"}, awsEndpoint=endpoint)
    with pytest.raises(SourceError) as failure:
        source.read()
    assert "the server at http://127.0.0.1:4566 reports it" in str(failure.value)
    assert "PROXY-SECRET" not in str(failure.value) and "proxyuser" not in str(failure.value)


# --- what of SQS's error messages is shown ---------------------------------------

TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-SESSION-TOKEN"
CANONICAL = (
    "The request signature we calculated does not match the signature you provided.\n\n"
    "The Canonical String for this request should have been\n'POST\n/\n\nhost:sqs.us-east-1.amazonaws.com\n"
    f"x-amz-security-token:{TOKEN}\n'"
)


def failing_with(code: str, message: str) -> SqsSource:
    source, client = source_with(ALL)
    client.error = ClientError({"Error": {"Code": code, "Message": message}}, "GetQueueAttributes")
    return source


def error_of(source: SqsSource) -> str:
    with pytest.raises(SourceError) as failure:
        source.read()
    return str(failure.value)


@pytest.mark.parametrize(
    ("code", "check"),
    [
        ("SignatureDoesNotMatch", "check the secret access key"),
        ("InvalidClientTokenId", "check the access key ID"),
        ("ExpiredToken", "check the session token (it has expired)"),
    ],
)
def test_a_credential_error_shows_the_code_and_what_to_check_never_the_message(code: str, check: str) -> None:
    text = error_of(failing_with(code, CANONICAL))
    assert text == f"sqs queue 'jobs' in us-east-1: {code}; {check}"


def test_another_error_shows_its_first_line_cut_with_signing_material_redacted() -> None:
    message = (
        f"Denied: x-amz-security-token:{TOKEN} Credential=ASIAABCDEFGHIJKLMNOP/20240101/us-east-1/sqs "
        f"Signature=abcdef0123 key AKIAABCDEFGHIJKLMNOP {'x' * 300}\nsecond line {TOKEN}"
    )
    text = error_of(failing_with("InternalFailure", message))
    assert text.startswith(
        "sqs queue 'jobs' in us-east-1: InternalFailure: Denied: x-amz-security-token:<redacted>"
    )
    assert "Credential=<redacted>" in text and "Signature=<redacted>" in text
    for secret in (TOKEN, "ASIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP", "abcdef0123", "second line"):
        assert secret not in text, text
    assert text.endswith("...") and len(text.split("InternalFailure: ", 1)[1]) == MAX_SERVER_MESSAGE


def test_access_denied_keeps_which_action_was_denied_and_what_to_check() -> None:
    message = (
        "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: sqs:GetQueueAttributes"
    )
    text = error_of(failing_with("AccessDenied", message))
    assert text == (
        f"sqs queue 'jobs' in us-east-1: AccessDenied: {message}; "
        "check the identity's sqs:GetQueueAttributes permission on the queue"
    )


def test_access_denied_on_get_queue_url_names_that_permission() -> None:
    # A queue given by its name is looked up with GetQueueUrl, which needs its own permission.
    clients = FakeClients()
    source = SqsSource(sqs_config(queueURL="jobs", awsRegion="us-east-1"), clients=clients)
    client = source._sqs()
    assert isinstance(client, FakeSqsClient)
    message = "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: sqs:GetQueueUrl"
    client.url_error = ClientError({"Error": {"Code": "AccessDenied", "Message": message}}, "GetQueueUrl")
    assert error_of(source) == (
        f"sqs queue 'jobs' in us-east-1: AccessDenied: {message}; "
        "check the identity's sqs:GetQueueUrl permission on the queue"
    )
    assert client.asked == []  # GetQueueAttributes was never reached


def test_waiting_for_another_reads_client_without_a_role_names_no_role() -> None:
    clients = FakeClients()
    cfg = sqs_config(**KEYS)
    source = SqsSource(cfg, timeout=0.05, clients=clients)
    shared = clients.acquire(cfg, source, 0.05)
    with shared._lock, pytest.raises(SourceError) as failure:  # another read is making the client
        shared.client(source.description)
    assert str(failure.value) == (
        "sqs queue 'jobs' in us-east-1: another read with the same credentials has been making "
        "the SQS client for over 0.05s"
    )
    clients.release(cfg, source, 0.05)


# --- clients shared per endpoint, region and credentials --------------------------

KEYS = {"awsAccessKeyID": "AKIDEXAMPLE", "awsSecretAccessKey": "secret-one"}


def queue_config(queue: str, **metadata: str) -> SqsConfig:
    return sqs_config(queueURL=f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue}", **metadata)


def test_queues_with_the_same_endpoint_region_and_credentials_share_one_boto3_client() -> None:
    clients = SqsClients()  # real boto3 clients (none sends a request here)
    first = SqsSource(queue_config("a", **KEYS), clients=clients)
    second = SqsSource(queue_config("b", **KEYS), clients=clients)
    other_secret = SqsSource(
        queue_config("c", **{**KEYS, "awsSecretAccessKey": "secret-two"}), clients=clients
    )
    other_region = SqsSource(queue_config("d", awsRegion="eu-west-1", **KEYS), clients=clients)
    other_endpoint = SqsSource(
        queue_config("e", awsEndpoint="http://127.0.0.1:4566", **KEYS), clients=clients
    )
    ambient = SqsSource(queue_config("f"), clients=clients)

    shared = first._sqs()
    assert second._sqs() is shared
    others = [s._sqs() for s in (other_secret, other_region, other_endpoint, ambient)]
    assert all(client is not shared for client in others)
    assert len({id(client) for client in others}) == 4
    assert len(clients) == 5
    for source in (first, second, other_secret, other_region, other_endpoint, ambient):
        source.close()
    assert len(clients) == 0


def test_sources_share_the_process_wide_clients_by_default() -> None:
    # What the engine's SourceFactory builds: SqsSource(cfg, timeout=...), one per queue.
    first = SqsSource(queue_config("a", **KEYS), timeout=3.0)
    second = SqsSource(queue_config("b", **KEYS), timeout=3.0)
    try:
        assert first._sqs() is second._sqs()
    finally:
        first.close()
        second.close()
    assert SqsClients.key(queue_config("a", **KEYS), 3.0) not in SHARED_CLIENTS._shared


def test_a_shared_client_closes_with_its_last_source_and_reopens_on_the_next_read() -> None:
    clients = FakeClients()
    clients.attributes = ALL
    first, second = (
        SqsSource(queue_config("a"), clients=clients),
        SqsSource(queue_config("b"), clients=clients),
    )
    first.read(), second.read()
    [client] = clients.sqs_clients()

    first.close()  # the cache evicted one idle queue: the other still reads through the client
    assert not client.closed
    second.read()
    second.close()
    assert client.closed and len(clients) == 0

    assert first.read() == QueueReading(waiting=4.0, in_flight=2.0)  # asked again after eviction
    assert len(clients.sqs_clients()) == 2 and not clients.sqs_clients()[1].closed
    first.close()


def test_the_registry_key_holds_no_credential() -> None:
    key = SqsClients.key(sqs_config(awsSessionToken="tok-secret", **KEYS), 5.0)
    assert "AKIDEXAMPLE" not in key and "secret-one" not in key and "tok-secret" not in key


ROLE = {"awsRoleArn": "arn:aws:iam::123456789012:role/reader", **KEYS}


def test_queues_with_the_same_role_share_one_assume_role_and_one_client() -> None:
    clients = FakeClients(sts_lifetime=3600.0)
    clients.attributes = ALL
    first = SqsSource(queue_config("a", **ROLE), clients=clients)
    second = SqsSource(queue_config("b", **ROLE), clients=clients)
    first.read(), second.read()

    (sts_service, sts_arguments, sts), (sqs_service, sqs_arguments, _) = clients.made
    assert (sts_service, sqs_service) == ("sts", "sqs")
    assert sts_arguments["aws_access_key_id"] == "AKIDEXAMPLE"  # STS with the trigger's keys...
    assert sts.closed  # ...used once, not kept
    assert (sqs_arguments["aws_access_key_id"], sqs_arguments["aws_session_token"]) == ("ASIATEMP1", "tok-1")
    first.close(), second.close()


def test_an_assumed_role_client_is_remade_before_its_credentials_expire_and_the_old_one_closed() -> None:
    # Credentials that last no longer than the refresh margin: every read remakes the client.
    clients = FakeClients(sts_lifetime=ROLE_REFRESH_MARGIN_S)
    clients.attributes = ALL
    source = SqsSource(queue_config("a", **ROLE), clients=clients)
    source.read()
    source.read()

    old, new = clients.sqs_clients()
    assert old.closed and not new.closed
    assert [client.assumed for service, _, client in clients.made if service == "sts"] == [
        [ROLE["awsRoleArn"]]
    ] * 2
    source.close()
    assert new.closed
