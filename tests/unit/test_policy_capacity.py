"""The capacity-aware queue term (replicaThroughput known): hand-computed cases,
when it applies and when the plain term stays, activation unchanged."""

from __future__ import annotations

import pytest

from scaler.config import TriggerConfig, parse_trigger
from scaler.policy import Signals, capacity_queue_term, decide, queue_term
from scaler.signals.base import QueueReading

SQS = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "queueLength": "4"}


def cfg(**extra: str) -> TriggerConfig:
    return parse_trigger({**SQS, "replicaThroughput": "1.5", **extra})


@pytest.mark.parametrize(
    ("waiting", "in_flight", "rate", "cold_start", "replicas"),
    [
        # steady load, no backlog: 30 req/s at 1.5 req/s per replica = 20 replicas
        # (the plain term asks for the 60 in flight / 4 = 15 busy ones: no headroom)
        (0, 60, 30.0, 300, 20.0),
        # a burst: 4500 waiting during a 300 s cold start. Plain: (4500 + 20) / 4 = 1130
        # replicas. Capacity: serving max(20 / 4, 27 / 1.5) = 18; the 5 busy replicas
        # serve 7.5/s, so 19.5/s pile up for 300 s: backlog 4500 + 5850 = 10350,
        # drained over 300 s at 1.5/s per replica = 23 -> 41
        (4500, 20, 27.0, 300, 41.0),
        # waking from zero: 225 waiting, 3/s, nothing in flight: serving 2; backlog at
        # Ready 225 + 3 * 300 = 1125, / (1.5 * 300) = 2.5 -> 4.5
        (225, 0, 3.0, 300, 4.5),
        # in flight beyond what the rate needs (a rate just dropped): the busy replicas
        # 40 / 4 = 10 stay (they serve 15/s > 3/s: nothing piles up); + 300 / (1.5 * 100) = 2 -> 12
        (300, 40, 3.0, 100, 12.0),
        # nothing at all: scale to zero
        (0, 0, 0.0, 300, 0.0),
        # no rate reading yet and a backlog: 90 / (1.5 * 60) = 1
        (90, 0, 0.0, 60, 1.0),
    ],
)
def test_capacity_term_hand_computed(
    waiting: float, in_flight: float, rate: float, cold_start: float, replicas: float
) -> None:
    term = capacity_queue_term(QueueReading(waiting=waiting, in_flight=in_flight), cfg(), rate, cold_start)
    assert term.name == "queue"
    assert term.replicas == pytest.approx(replicas)
    assert "capacity" in term.reason and "plain" in term.reason


def test_decide_uses_it_only_with_a_rate_and_a_cold_start() -> None:
    reading = QueueReading(waiting=4500, in_flight=20)
    plain = queue_term(reading, cfg()).replicas
    assert plain == pytest.approx(1130)
    # no measured rate (e.g. SQS without arrivalQuery): the plain term
    assert decide(Signals(queue=reading), cfg(), 0.0).desired == pytest.approx(plain)
    fused = decide(Signals(queue=reading, arrival_rate=27.0, cold_start=300.0), cfg(), 0.0)
    assert fused.winner == "queue" and fused.desired == pytest.approx(41.0) and fused.replicas == 41


def test_without_replica_throughput_or_in_job_mode_the_plain_term_stays() -> None:
    reading = QueueReading(waiting=4500, in_flight=20)
    signals = Signals(queue=reading, arrival_rate=27.0, cold_start=300.0)
    no_throughput = parse_trigger(SQS)
    assert decide(signals, no_throughput, 0.0).desired == pytest.approx(1130)
    job = cfg(mode="job")
    assert decide(signals, job, 0.0).desired == pytest.approx(4500 / 4)


def test_activation_and_keep_alive_are_the_plain_terms() -> None:
    # an empty queue with a rate reading is not woken by the queue term
    idle = decide(
        Signals(queue=QueueReading(waiting=0, in_flight=0), arrival_rate=0.2, cold_start=300.0), cfg(), 0
    )
    assert idle.active is False
    # in-flight work keeps the pool active even at activationQueueLength
    busy = decide(
        Signals(queue=QueueReading(waiting=0, in_flight=3), arrival_rate=0.0, cold_start=300.0),
        cfg(activationQueueLength="5"),
        0.0,
    )
    assert busy.active is True and busy.desired == pytest.approx(3 / 4)
