"""SQS clients are shared by every queue read with the same endpoint, region and
credentials (through the real scaler, against moto): a boto3 client per queue
cost about 8 MiB and 0.25 s of CPU each, and a cold start of a few dozen queues
timed out building them."""

from __future__ import annotations

import botocore.session
import pytest
from conftest import make_sqs_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs_clients_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which credentials each SQS client made from here on was given (its access key ID)."""
    made: list[str] = []
    create_client = botocore.session.Session.create_client

    def counting(self, service_name, *args, **kwargs):
        if service_name == "sqs":
            made.append(str(kwargs.get("aws_access_key_id")))
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    return made


async def test_queues_with_the_same_credentials_share_one_client(start_scaler, moto_sqs, sqs_clients_made):
    scaler = await start_scaler(source_timeout=5.0)  # a first read makes a client: not timed here
    queues = [make_sqs_queue(moto_sqs) for _ in range(4)]
    for count, queue in enumerate(queues, start=1):
        queue.send(count)

    for count, queue in enumerate(queues, start=1):
        assert (await scaler.metric(queue.metadata(queueLength="1"))).metricValueFloat == count
    assert len(sqs_clients_made) == 1

    # Other credentials (moto takes any): a client of their own, shared in turn.
    for count, queue in enumerate(queues[:2], start=1):
        other = queue.metadata(queueLength="1", awsAccessKeyID="AKIDOTHERPREWARM")
        assert (await scaler.metric(other)).metricValueFloat == count
    assert sorted(sqs_clients_made) == ["AKIDOTHERPREWARM", "AKIDTESTPREWARM"]
