"""An assumed-role SQS client's refresh: when AssumeRole fails before the current
credentials expire (an STS outage, throttling), reads keep the current client and
the refresh is tried again ROLE_REFRESH_RETRY_S later, not on every read; once the
credentials really expire, the failure is the read's error."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scaler.config import SqsConfig, parse_trigger
from scaler.signals import sqs
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.sqs import ROLE_REFRESH_MARGIN_S, ROLE_REFRESH_RETRY_S, SqsClients, SqsSource

ROLE_ARN = "arn:aws:iam::123456789012:role/reader"
LIFETIME = 3600.0  # AssumeRole's default session length
TIMEOUT = 5.0
ATTRIBUTES = {"ApproximateNumberOfMessages": "4", "ApproximateNumberOfMessagesNotVisible": "2"}


class FakeTime:
    """time.monotonic and time.time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_900_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


class FakeSqsClient:
    def __init__(self, name: str) -> None:
        self.name = name
        self.reads = 0
        self.closed = False

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.reads += 1
        return {"Attributes": dict(ATTRIBUTES)}

    def close(self) -> None:
        self.closed = True


class FakeSts:
    def __init__(self, clients: FakeClients) -> None:
        self.clients = clients

    def assume_role(self, RoleArn: str, RoleSessionName: str) -> dict[str, Any]:
        self.clients.assume_calls += 1
        if self.clients.sts_down:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "AssumeRole")
        n = self.clients.assume_calls
        expiration = datetime.fromtimestamp(self.clients.clock.wall + LIFETIME, UTC)
        creds = {"AccessKeyId": f"ASIATEMP{n}", "SecretAccessKey": f"temp-{n}", "SessionToken": f"tok-{n}"}
        return {"Credentials": {**creds, "Expiration": expiration}}

    def close(self) -> None:
        pass


class FakeClients(SqsClients):
    def __init__(self, clock: FakeTime) -> None:
        super().__init__()
        self.clock = clock
        self.sts_down = False
        self.assume_calls = 0
        self.sqs: list[FakeSqsClient] = []

    def make_client(self, service: str, **kwargs: Any) -> Any:
        if service == "sts":
            return FakeSts(self)
        client = FakeSqsClient(kwargs["aws_access_key_id"])
        self.sqs.append(client)
        return client


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(sqs, "time", fake)
    return fake


def role_config() -> SqsConfig:
    cfg = parse_trigger(
        {
            "source": "sqs",
            "queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "awsAccessKeyID": "AKIDEXAMPLE",
            "awsSecretAccessKey": "secret-one",
            "awsRoleArn": ROLE_ARN,
        }
    ).sqs
    assert cfg is not None
    return cfg


def reading_source(clock: FakeTime) -> tuple[SqsSource, FakeClients]:
    clients = FakeClients(clock)
    source = SqsSource(role_config(), timeout=TIMEOUT, clients=clients)
    assert source.read() == QueueReading(waiting=4.0, in_flight=2.0)
    assert clients.assume_calls == 1 and len(clients.sqs) == 1
    return source, clients


def test_a_failed_refresh_keeps_reading_with_the_valid_client_and_retries_later(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    source, clients = reading_source(clock)
    [first] = clients.sqs
    clients.sts_down = True
    clock.advance(LIFETIME - ROLE_REFRESH_MARGIN_S)  # the refresh is due; 300 s of validity left

    with caplog.at_level("WARNING", logger="scaler.signals.sqs"):
        assert source.read() == QueueReading(waiting=4.0, in_flight=2.0)  # not UNAVAILABLE
    assert clients.assume_calls == 2 and first.reads == 2 and not first.closed
    [warning] = caplog.records
    assert warning.getMessage() == (
        f"sqs queue 'jobs' in us-east-1: cannot assume role {ROLE_ARN}: Throttling; the current "
        "credentials expire in 300s: reading with them, refreshing again in 30s"
    )

    # Not retried on every read: only once ROLE_REFRESH_RETRY_S has passed.
    for _ in range(5):
        clock.advance(ROLE_REFRESH_RETRY_S / 10)
        source.read()
    assert clients.assume_calls == 2 and first.reads == 7
    clock.advance(ROLE_REFRESH_RETRY_S / 2)
    source.read()
    assert clients.assume_calls == 3 and first.reads == 8

    # STS answers again: the next due refresh makes a new client and closes the old one.
    clients.sts_down = False
    clock.advance(ROLE_REFRESH_RETRY_S)
    source.read()
    assert clients.assume_calls == 4
    old, new = clients.sqs
    assert old is first and old.closed and new.reads == 1 and not new.closed
    source.close()


def test_once_the_credentials_really_expire_the_refresh_failure_is_the_reads_error(clock: FakeTime) -> None:
    source, clients = reading_source(clock)
    clients.sts_down = True
    clock.advance(LIFETIME - ROLE_REFRESH_MARGIN_S)
    calls = 0
    # Until expiry (less a read's timeout) every read is served; STS is asked every retry interval.
    while clock.now + TIMEOUT < 1000.0 + LIFETIME:
        source.read()
        calls += 1
        clock.advance(1.0)
    assert calls == ROLE_REFRESH_MARGIN_S - TIMEOUT
    assert clients.assume_calls <= 2 + (ROLE_REFRESH_MARGIN_S - TIMEOUT) / ROLE_REFRESH_RETRY_S

    with pytest.raises(SourceError) as failure:
        source.read()
    assert str(failure.value) == f"sqs queue 'jobs' in us-east-1: cannot assume role {ROLE_ARN}: Throttling"
    assert len(clients.sqs) == 1
    source.close()


def test_a_read_does_not_wait_for_another_reads_refresh_while_the_credentials_are_valid(
    clock: FakeTime,
) -> None:
    source, clients = reading_source(clock)
    clock.advance(LIFETIME - ROLE_REFRESH_MARGIN_S)
    assert source._shared is not None
    lock: threading.Lock = source._shared._lock
    assert lock.acquire()  # another read is in AssumeRole
    try:
        # Before, this read waited the source timeout for the lock, then failed.
        assert source.read() == QueueReading(waiting=4.0, in_flight=2.0)
    finally:
        lock.release()
    assert clients.assume_calls == 1
    source.close()


def test_without_valid_credentials_a_read_waits_for_the_refresh_and_names_the_role() -> None:
    clients = FakeClients(FakeTime())
    source = SqsSource(role_config(), timeout=0.05, clients=clients)
    shared = clients.acquire(role_config(), source, 0.05)
    waited = pytest.raises(SourceError, match=f"has been assuming role {ROLE_ARN} for over 0.05s")
    with shared._lock, waited:  # another read is making the first client
        shared.client("sqs queue 'jobs' in us-east-1")
    clients.release(role_config(), source, 0.05)
