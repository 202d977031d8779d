"""Each real source names the server it reads (Source.endpoint), which the reading
cache uses to keep one slow server to its share of the read threads: host:port,
the scheme's port when none is written, never credentials."""

from __future__ import annotations

import pytest

from scaler.config import parse_trigger
from scaler.engine import SourceFactory

PROMETHEUS = {
    "prometheusServerAddress": "https://prom.monitoring.svc",
    "gpuSelector": 'namespace="ai"',
}


@pytest.mark.parametrize(
    ("metadata", "endpoint"),
    [
        ({"source": "sqs", "queueURL": "https://sqs.eu-west-1.amazonaws.com/1/q"}, "sqs.eu-west-1:443"),
        (
            {
                "source": "sqs",
                "queueURL": "http://127.0.0.1:4566/000000000000/q",
                "awsRegion": "us-east-1",
                "awsEndpoint": "http://127.0.0.1:4566",
            },
            "127.0.0.1:4566",
        ),
        ({"host": "amqp://user:secret@broker.mq:5673/vh", "queueName": "q"}, "broker.mq:5673"),
        ({"host": "amqps://user:secret@broker.mq/vh", "queueName": "q"}, "broker.mq:5671"),
        ({"host": "amqp://user:secret@[fd00::1]/vh", "queueName": "q"}, "[fd00::1]:5672"),
        ({"host": "http://user:secret@broker.mq:15672/vh", "queueName": "q"}, "broker.mq:15672"),
    ],
)
def test_a_queue_source_names_its_server(metadata: dict[str, str], endpoint: str) -> None:
    source = SourceFactory().queue_source(parse_trigger(metadata))
    assert source is not None
    assert source.endpoint == endpoint  # type: ignore[attr-defined]
    assert "secret" not in source.endpoint  # type: ignore[attr-defined]


def test_every_prometheus_query_of_one_server_shares_its_endpoint() -> None:
    cfg = parse_trigger(
        {
            "host": "amqp://user:secret@broker.mq/vh",
            "queueName": "q",
            "prometheusServerAddress": "https://user:secret@prom.monitoring.svc",
            "gpuSelector": 'namespace="ai"',
            "arrivalQuery": "sum(rate(requests_total[1m]))",
            "coldStartQuery": "max(cold_start_seconds)",
        }
    )
    factory = SourceFactory()
    sources = [factory.gpu_source(cfg), factory.arrival_source(cfg), factory.cold_start_source(cfg)]
    assert {s.endpoint for s in sources if s is not None} == {"prom.monitoring.svc:443"}  # type: ignore[attr-defined]
    assert len({s.key for s in sources if s is not None}) == 3  # still read and cached apart
