"""SqsSource's reading of a GetQueueAttributes answer: which attributes it asks
for, and a missing attribute as an error naming it, never a made-up zero."""

from __future__ import annotations

from typing import Any

import pytest

from scaler.config import parse_trigger
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.sqs import SqsSource

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


class FakeSqsClient:
    def __init__(self, attributes: dict[str, str]) -> None:
        self.attributes = attributes
        self.asked: list[list[str]] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.asked.append(AttributeNames)
        return {"Attributes": {k: v for k, v in self.attributes.items() if k in AttributeNames}}


def source_with(attributes: dict[str, str], **metadata: str) -> tuple[SqsSource, FakeSqsClient]:
    cfg = parse_trigger({"source": "sqs", "queueURL": URL, **metadata}).sqs
    assert cfg is not None
    source = SqsSource(cfg)
    client = FakeSqsClient(attributes)
    source._client = client  # the client the source would build, answering from memory
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
