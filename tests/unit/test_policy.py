"""The answer math: counted work, the queue term, and the fused decision."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaler.config import TriggerConfig, parse_trigger
from scaler.policy import Decision, Signals, Term, counted_work, decide, keda_milli, queue_term
from scaler.signals.base import QueueReading

SQS_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


def sqs_cfg(**extra: str) -> TriggerConfig:
    return parse_trigger({"source": "sqs", "queueURL": SQS_URL, **extra})


def rabbit_cfg(host: str = "amqp://u:p@127.0.0.1:5672/", **extra: str) -> TriggerConfig:
    return parse_trigger({"source": "rabbitmq", "host": host, "queueName": "q", **extra})


HTTP = "http://u:p@127.0.0.1:15672/"


@pytest.mark.parametrize(
    ("cfg", "reading", "work"),
    [
        # SQS deployment mode: waiting + in-flight by default, delayed only when enabled
        (sqs_cfg(), QueueReading(waiting=7, in_flight=3, delayed=11), 10),
        (sqs_cfg(scaleOnInFlight="false"), QueueReading(waiting=7, in_flight=3, delayed=11), 7),
        (sqs_cfg(scaleOnDelayed="true"), QueueReading(waiting=7, in_flight=3, delayed=11), 21),
        (
            sqs_cfg(scaleOnInFlight="false", scaleOnDelayed="true"),
            QueueReading(waiting=7, in_flight=3, delayed=11),
            18,
        ),
        (sqs_cfg(), QueueReading(waiting=0, in_flight=0, delayed=0), 0),
        # RabbitMQ over HTTP: unacknowledged counts unless excluded; delayed never does
        (rabbit_cfg(HTTP), QueueReading(waiting=4, in_flight=2, delayed=9), 6),
        (rabbit_cfg(HTTP, excludeUnacknowledged="true"), QueueReading(waiting=4, in_flight=2), 4),
        # RabbitMQ over AMQP: the protocol cannot see in-flight messages
        (rabbit_cfg(), QueueReading(waiting=4, in_flight=None), 4),
        (sqs_cfg(), QueueReading(waiting=4, in_flight=None), 4),
    ],
    ids=[
        "sqs default",
        "sqs no in-flight",
        "sqs delayed",
        "sqs delayed no in-flight",
        "sqs empty",
        "rabbit http",
        "rabbit http exclude unacked",
        "rabbit amqp in_flight None",
        "sqs in_flight None",
    ],
)
def test_counted_work_in_deployment_mode(cfg: TriggerConfig, reading: QueueReading, work: float) -> None:
    assert counted_work(reading, cfg) == work
    term = queue_term(reading, cfg)
    assert term.name == "queue"
    assert term.replicas == pytest.approx(work / cfg.queue_length)
    assert term.active is (work > 0)


def test_deployment_reason_names_what_was_counted() -> None:
    term = queue_term(QueueReading(waiting=7, in_flight=3, delayed=2), sqs_cfg(scaleOnDelayed="true"))
    assert term.reason == "(7 waiting + 3 in flight + 2 delayed) / queueLength 5"
    amqp = queue_term(QueueReading(waiting=7, in_flight=None), rabbit_cfg())
    assert amqp.reason == "(7 waiting) / queueLength 20"  # RabbitMQ's default is KEDA's, 20


@pytest.mark.parametrize(
    "cfg",
    [
        sqs_cfg(mode="job"),
        sqs_cfg(mode="job", scaleOnDelayed="true"),
        rabbit_cfg(HTTP, mode="job"),
        rabbit_cfg(mode="job"),
    ],
    ids=["sqs", "sqs delayed enabled", "rabbit http", "rabbit amqp"],
)
def test_job_mode_counts_only_waiting_never_in_flight(cfg: TriggerConfig) -> None:
    reading = QueueReading(waiting=12, in_flight=40, delayed=30)
    term = queue_term(reading, cfg)
    assert term.replicas == pytest.approx(12 / cfg.queue_length)  # 5 for SQS, 20 for RabbitMQ
    assert term.active
    assert "12 unclaimed" in term.reason
    # In-flight messages already have a Job: with nothing waiting, no new Job is asked for.
    idle = decide(Signals(queue=QueueReading(waiting=0, in_flight=40, delayed=30)), cfg, now=0.0)
    assert idle.desired == 0.0
    assert idle.metric_value == 0
    assert idle.active is False


@pytest.mark.parametrize(
    ("work", "queue_length", "desired", "metric_value"),
    [
        (0, 5, 0.0, 0),
        (1, 5, 0.2, 1),
        (5, 5, 1.0, 1),
        (6, 5, 1.2, 2),
        (10, 5, 2.0, 2),
        (11, 5, 2.2, 3),
        (1, 0.5, 2.0, 2),
        (7, 2.5, 2.8, 3),
        (1000, 1, 1000.0, 1000),
    ],
)
def test_desired_is_unrounded_and_metric_value_is_its_ceiling(
    work: float, queue_length: float, desired: float, metric_value: int
) -> None:
    cfg = sqs_cfg(queueLength=str(queue_length))
    decision = decide(Signals(queue=QueueReading(waiting=work, in_flight=0)), cfg, now=0.0)
    assert decision.desired == pytest.approx(desired)
    assert decision.metric_value == metric_value
    assert decision.replicas == metric_value
    assert decision.winner == "queue"
    assert [t.name for t in decision.terms] == ["queue"]


@pytest.mark.parametrize(
    ("mode", "activation", "waiting", "in_flight", "active"),
    [
        ("deployment", "0", 0, 0, False),
        ("deployment", "0", 1, 0, True),
        ("deployment", "0", 0, 1, True),  # in-flight work alone keeps it active
        ("deployment", "10", 10, 0, False),  # equal to the threshold: inactive
        ("deployment", "10", 6, 4, True),  # in flight keeps it active below the threshold
        ("deployment", "10", 6, 0, False),
        ("deployment", "10", 11, 0, True),  # above: active
        ("deployment", "10", 6, 5, True),
        ("deployment", "2.5", 2.5, 0, False),
        ("deployment", "2.5", 3, 0, True),
        ("job", "0", 0, 5, False),  # job mode: in-flight does not activate
        ("job", "3", 3, 100, False),
        ("job", "3", 4, 0, True),
    ],
)
def test_activation_edges(mode: str, activation: str, waiting: float, in_flight: float, active: bool) -> None:
    cfg = sqs_cfg(mode=mode, activationQueueLength=activation)
    decision = decide(Signals(queue=QueueReading(waiting=waiting, in_flight=in_flight)), cfg, now=0.0)
    assert decision.active is active


def test_inactive_but_nonzero_desired_below_activation() -> None:
    # Below the activation threshold the metric is still reported (the HPA may use
    # it while KEDA holds the workload at zero).
    cfg = sqs_cfg(activationQueueLength="10")
    decision = decide(Signals(queue=QueueReading(waiting=8, in_flight=0)), cfg, now=0.0)
    assert decision.active is False
    assert decision.desired == pytest.approx(1.6)
    assert decision.metric_value == 2


def test_no_signals_is_zero_and_inactive() -> None:
    decision = decide(Signals(), sqs_cfg(), now=123.0)
    assert decision == Decision(desired=0.0, active=False, winner="none", terms=())
    assert decision.metric_value == 0


def test_decision_key_changes_with_replicas_activity_and_winner() -> None:
    term = Term(name="queue", replicas=1.2, active=True, reason="")
    base = Decision(desired=1.2, active=True, winner="queue", terms=(term,))
    assert base.key() == (2, True, "queue")
    assert Decision(desired=1.9, active=True, winner="queue", terms=(term,)).key() == base.key()
    assert Decision(desired=2.1, active=True, winner="queue", terms=(term,)).key() != base.key()
    assert Decision(desired=1.2, active=False, winner="queue", terms=(term,)).key() != base.key()


def test_decide_does_not_depend_on_now() -> None:
    cfg = sqs_cfg()
    signals = Signals(queue=QueueReading(waiting=3, in_flight=2))
    assert decide(signals, cfg, now=0.0) == decide(signals, cfg, now=1e9)


@given(
    waiting=st.integers(min_value=0, max_value=10**6),
    in_flight=st.integers(min_value=0, max_value=10**6),
    queue_length=st.sampled_from(["0.5", "1", "3", "5", "7.5", "100"]),
)
def test_metric_value_agrees_with_the_hpa_ceiling(waiting: int, in_flight: int, queue_length: str) -> None:
    cfg = sqs_cfg(queueLength=queue_length)
    decision = decide(Signals(queue=QueueReading(waiting=waiting, in_flight=in_flight)), cfg, now=0.0)
    # KEDA sends metricValueFloat against targetSizeFloat = 1: the HPA asks for ceil(desired / 1),
    # computed here exactly (no float noise) from the counted work.
    exact = Fraction(waiting + in_flight) / Fraction(queue_length)
    assert decision.metric_value == math.ceil(exact)
    assert decision.desired >= 0
    assert decision.active is (waiting + in_flight > 0)


@pytest.mark.parametrize(
    ("desired", "replicas"),
    [
        (0.0, 0),
        (-1.0, 0),
        (0.001, 1),
        (0.0004, 0),
        (2.0, 2),
        (2.0000000000000004, 2),
        (2.001, 3),
        (7 / 3, 3),
        # KEDA rounds to the nearest thousandth (%.3f), it does not truncate:
        (1.0007, 2),  # the HPA sees 1.001
        (1.0004, 1),  # 1.000
        (1.0005, 1),  # 1.000499999... in binary: 1.000
        (2.0005, 3),  # 2.000500000...1 in binary: 2.001
        (0.0005, 1),  # 0.001: a wake-up-sized value is not lost
        (0.00049, 0),
        (4.9996, 5),
        (5.0004, 5),
        (float("nan"), 0),  # KEDA sends NaN, infinities and negatives as 0
        (float("inf"), 0),
        (float("-inf"), 0),
    ],
)
def test_metric_value_is_what_the_hpa_sees_in_thousandths(desired: float, replicas: int) -> None:
    decision = Decision(desired=desired, active=True, winner="queue", terms=())
    assert decision.metric_value == replicas
    assert decision.replicas == replicas


@pytest.mark.parametrize(
    ("value", "milli"),
    [(1.0007, 1001), (1.0005, 1000), (0.0625, 62), (0.0635, 64), (123.4565, 123457), (1e6, 10**9)],
)
def test_keda_milli_is_the_value_formatted_as_keda_formats_it(value: float, milli: int) -> None:
    # Go's fmt.Sprintf("%.3f", v), as in pkg/scalers/scaler.go: correctly rounded
    # from the binary value, exact ties (0.0625) to even.
    assert keda_milli(value) == milli


def test_in_flight_keeps_alive_even_when_not_counted() -> None:
    cfg = sqs_cfg(scaleOnInFlight="false")
    decision = decide(Signals(queue=QueueReading(waiting=0, in_flight=3)), cfg, now=0.0)
    assert decision.desired == 0
    assert decision.active is True
    assert "kept active: 3 in flight" in decision.terms[0].reason


@pytest.mark.parametrize(
    ("reading", "activation", "replicas", "active"),
    [
        # KEDA's rabbitmq mode MessageRate: replicas = publish rate / value
        (QueueReading(waiting=0, in_flight=0, publish_rate=25.0), "0", 2.5, True),
        (QueueReading(waiting=3, in_flight=0, publish_rate=0.0), "0", 0.0, True),  # messages activate
        # active when the rate or the messages exceed activationValue, as KEDA decides
        (QueueReading(waiting=2, in_flight=0, publish_rate=4.0), "5", 0.4, False),
        (QueueReading(waiting=6, in_flight=0, publish_rate=4.0), "5", 0.4, True),
        (QueueReading(waiting=0, in_flight=0, publish_rate=6.0), "5", 0.6, True),
        # in-flight work keeps it alive whatever the threshold (our guard)
        (QueueReading(waiting=0, in_flight=2, publish_rate=0.0), "5", 0.0, True),
        # no publish recorded yet: the management API has no publish_details; KEDA reads 0
        (QueueReading(waiting=0, in_flight=0, publish_rate=None), "0", 0.0, False),
    ],
)
def test_message_rate_scales_on_the_publish_rate(
    reading: QueueReading, activation: str, replicas: float, active: bool
) -> None:
    cfg = rabbit_cfg(HTTP, mode="MessageRate", value="10", activationValue=activation)
    term = queue_term(reading, cfg)
    assert term.replicas == pytest.approx(replicas)
    assert term.active is active
    assert term.reason.startswith(f"publish {reading.publish_rate or 0:g}/s / value 10")
    assert ("no publish recorded" in term.reason) is (reading.publish_rate is None)


def test_kedas_queue_length_mode_is_deployment_mode_with_value_as_the_target() -> None:
    keda = rabbit_cfg(HTTP, mode="QueueLength", value="4")
    ours = rabbit_cfg(HTTP, queueLength="4")
    reading = QueueReading(waiting=9, in_flight=3)
    assert queue_term(reading, keda) == queue_term(reading, ours)
    assert queue_term(reading, keda).replicas == pytest.approx(3.0)
