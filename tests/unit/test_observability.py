"""JSON logs, the per-decision record (gauges + changed-decision logs) and series expiry."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import PurePosixPath

import pytest
from prometheus_client import generate_latest

from scaler.clock import ManualClock
from scaler.config import TriggerConfig, parse_trigger
from scaler.engine import Evaluation, ObjectRef
from scaler.observability import DecisionRecorder, JsonFormatter, Metrics, TextFormatter
from scaler.policy import Decision, Signals, Term
from scaler.signals.base import GpuReading, QueueReading, SourceError

CFG_META = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/jobs", "queueLength": "5"}
CFG = parse_trigger(CFG_META)
A = ObjectRef("ml", "a")
B = ObjectRef("ml", "b")


def evaluation(
    ref: ObjectRef,
    desired: float,
    *,
    active: bool = True,
    extra_terms: tuple[Term, ...] = (),
    cfg: TriggerConfig = CFG,
) -> Evaluation:
    queue = Term(name="queue", replicas=desired, active=active, reason=f"{desired * 5:g} waiting")
    terms = (queue, *extra_terms)
    winner = max(terms, key=lambda t: t.replicas)
    decision = Decision(desired=winner.replicas, active=active, winner=winner.name, terms=terms)
    signals = Signals(queue=QueueReading(waiting=desired * 5, in_flight=0))
    return Evaluation(ref=ref, config=cfg, signals=signals, ages={"queue": 0.0}, decision=decision)


def labels(ref: ObjectRef, **extra: str) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name, "metric": CFG.metric_name, **extra}


# --- JSON logs -----------------------------------------------------------------


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "scaler.decision", logging.INFO, __file__, 1, "decision %s", ("changed",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_formatter_emits_one_object_with_extras() -> None:
    record = _record(object="ml/a", replicas=3, active=True, reason="queue: 12 waiting")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["logger"] == "scaler.decision"
    assert entry["message"] == "decision changed"
    assert entry["object"] == "ml/a"
    assert entry["replicas"] == 3
    assert entry["active"] is True
    assert entry["reason"] == "queue: 12 waiting"
    # Only the fields and the extras: no LogRecord internals.
    assert set(entry) == {"time", "level", "logger", "message", "object", "replicas", "active", "reason"}


def test_json_formatter_time_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        record = _record()
        record.created, record.msecs = 0.005, 5.0
        assert json.loads(JsonFormatter().format(record))["time"] == "1970-01-01T00:00:00.005Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_json_formatter_keeps_odd_values_and_errors() -> None:
    try:
        raise SourceError("fake: down")
    except SourceError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.__dict__["ref"] = PurePosixPath("ml/a")  # not JSON-serialisable: written as its str()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["ref"] == "ml/a"
    assert entry["level"] == "error"
    assert "SourceError: fake: down" in entry["error"]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_a_logged_traceback_never_holds_a_urls_credentials(formatter: logging.Formatter) -> None:
    # A bug's traceback holds the exception's text, and a library may quote its URL.
    try:
        raise ValueError("cannot parse amqp://scaler:s3cret@rabbitmq:5672/%2F nor https://tok@h/x")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = formatter.format(record)
    assert "s3cret" not in line and "tok@" not in line, line
    assert "amqp://***@rabbitmq:5672/%2F" in line and "https://***@h/x" in line, line


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_a_password_with_a_raw_at_sign_is_redacted_whole(formatter: logging.Formatter) -> None:
    # urlsplit, and so the config parser, ends the user info at the authority's last '@'.
    url = "amqp://svc:s3cr@t-Pa55@rabbit.team-a.svc.cluster.local:5672/?x=a@b#c@d"
    try:
        raise ConnectionError(f"cannot connect to {url} (user@example in the text stays)")
    except ConnectionError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = formatter.format(record)
    assert "s3cr" not in line and "Pa55" not in line, line
    # Only the authority: a '@' in the query or fragment, or in plain text, is left alone.
    assert "amqp://***@rabbit.team-a.svc.cluster.local:5672/?x=a@b#c@d" in line, line
    assert "(user@example in the text stays)" in line, line


def test_text_formatter_appends_extras() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(_record(object="ml/a", replicas=2))
    assert line == "INFO decision changed object=ml/a replicas=2"


# --- DecisionRecorder ----------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def _decision_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "scaler.decision"]


def test_records_gauges(metrics: Metrics, clock: ManualClock) -> None:
    recorder = DecisionRecorder(metrics, clock)
    recorder(evaluation(A, 2.4))
    value = metrics.registry.get_sample_value
    assert value("prewarm_desired", labels(A)) == pytest.approx(2.4)
    assert value("prewarm_active", labels(A)) == 1.0
    assert value("prewarm_counted_work", labels(A)) == pytest.approx(12.0)
    assert value("prewarm_term_replicas", labels(A, term="queue")) == pytest.approx(2.4)
    assert value("prewarm_term_winner", labels(A, term="queue")) == 1.0
    recorder(evaluation(A, 0.0, active=False))
    assert value("prewarm_desired", labels(A)) == 0.0
    assert value("prewarm_active", labels(A)) == 0.0


def test_logs_only_when_the_decision_key_changes(
    metrics: Metrics, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = DecisionRecorder(metrics, clock)
    with caplog.at_level(logging.INFO, logger="scaler.decision"):
        recorder(evaluation(A, 1.2))  # first sight: logged (2 replicas)
        recorder(evaluation(A, 1.2))  # same
        recorder(evaluation(A, 1.9))  # still 2 replicas, active, queue: same key
        recorder(evaluation(B, 1.9))  # another object: its own first decision
        recorder(evaluation(A, 2.1))  # 3 replicas: logged
        recorder(evaluation(A, 2.1, active=False))  # activity changed: logged
    logs = _decision_logs(caplog)
    assert [(r.__dict__["object"], r.__dict__["replicas"], r.__dict__["active"]) for r in logs] == [
        ("ml/a", 2, True),
        ("ml/b", 2, True),
        ("ml/a", 3, True),
        ("ml/a", 3, False),
    ]
    assert [r.__dict__["previous_replicas"] for r in logs] == [None, None, 2, 3]
    first = logs[0].__dict__
    assert first["metric"] == CFG.metric_name
    assert first["winner"] == "queue"
    assert first["desired"] == 1.2
    assert first["reason"] == "queue: 6 waiting"
    assert all(r.getMessage() == "decision changed" for r in logs)


def test_logs_when_the_winner_changes(
    metrics: Metrics, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = DecisionRecorder(metrics, clock)
    gpu = Term(name="gpu", replicas=1.8, active=True, reason="busy")
    with caplog.at_level(logging.INFO, logger="scaler.decision"):
        recorder(evaluation(A, 1.5))
        recorder(evaluation(A, 1.5, extra_terms=(gpu,)))  # 2 replicas either way; winner is now gpu
    logs = _decision_logs(caplog)
    assert [r.__dict__["winner"] for r in logs] == ["queue", "gpu"]
    assert logs[1].__dict__["reason"] == "queue: 7.5 waiting; gpu: busy"


def test_expire_drops_series_of_objects_not_seen(metrics: Metrics, clock: ManualClock) -> None:
    recorder = DecisionRecorder(metrics, clock, object_ttl=60.0)
    value = metrics.registry.get_sample_value
    recorder(evaluation(A, 1.0))
    recorder(evaluation(B, 2.0))
    clock.advance(40.0)
    recorder(evaluation(B, 2.0))  # B is still asked about
    clock.advance(20.0)
    assert recorder.expire() == 0  # A: exactly 60 s, not yet more
    clock.advance(0.5)
    assert recorder.expire() == 1
    for name in ("prewarm_desired", "prewarm_active", "prewarm_counted_work"):
        assert value(name, labels(A)) is None
        assert value(name, labels(B)) is not None
    for name in ("prewarm_term_replicas", "prewarm_term_winner"):
        assert value(name, labels(A, term="queue")) is None
        assert value(name, labels(B, term="queue")) is not None
    clock.advance(61.0)
    assert recorder.expire() == 1
    assert value("prewarm_desired", labels(B)) is None
    assert recorder.expire() == 0


def test_past_its_object_limit_the_least_recently_seen_are_dropped(
    metrics: Metrics, clock: ManualClock
) -> None:
    # A client inventing names must not grow /metrics without bound within object_ttl.
    recorder = DecisionRecorder(metrics, clock, max_objects=200)
    value = metrics.registry.get_sample_value
    refs = [ObjectRef("ml", f"o{i}") for i in range(201)]
    for ref in refs[:200]:
        recorder(evaluation(ref, 1.0))
        clock.advance(1.0)
    recorder(evaluation(refs[0], 1.0))  # o0 seen again: now the most recent
    recorder(evaluation(refs[200], 1.0))  # one past the limit, and 1 % more: o1, o2, o3 go
    for dropped in refs[1:4]:
        assert value("prewarm_desired", labels(dropped)) is None
    for kept in (refs[0], refs[4], refs[200]):
        assert value("prewarm_desired", labels(kept)) is not None
    assert recorder.expire() == 0


def test_expired_object_seen_again_is_recorded_and_logged_afresh(
    metrics: Metrics, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = DecisionRecorder(metrics, clock, object_ttl=10.0)
    with caplog.at_level(logging.INFO, logger="scaler.decision"):
        recorder(evaluation(A, 1.0))
        clock.advance(11.0)
        recorder.expire()
        recorder(evaluation(A, 1.0))
    assert len(_decision_logs(caplog)) == 2
    assert metrics.registry.get_sample_value("prewarm_desired", labels(A)) == 1.0


def test_a_term_that_disappears_leaves_no_series(metrics: Metrics, clock: ManualClock) -> None:
    recorder = DecisionRecorder(metrics, clock, object_ttl=10.0)
    value = metrics.registry.get_sample_value
    gpu = Term(name="gpu", replicas=3.0, active=True, reason="busy")
    recorder(evaluation(A, 1.0, extra_terms=(gpu,)))
    assert value("prewarm_term_winner", labels(A, term="gpu")) == 1.0
    recorder(evaluation(A, 1.0))  # the trigger no longer has a GPU term
    assert value("prewarm_term_replicas", labels(A, term="gpu")) is None
    assert value("prewarm_term_winner", labels(A, term="gpu")) is None
    assert value("prewarm_term_winner", labels(A, term="queue")) == 1.0
    clock.advance(11.0)
    recorder.expire()
    assert value("prewarm_term_replicas", labels(A, term="queue")) is None


def test_counted_work_dropped_when_the_queue_term_goes(metrics: Metrics, clock: ManualClock) -> None:
    recorder = DecisionRecorder(metrics, clock)
    recorder(evaluation(A, 1.0))
    assert metrics.registry.get_sample_value("prewarm_counted_work", labels(A)) == 5.0
    gpu = Term(name="gpu", replicas=2.0, active=True, reason="busy")
    gpu_only = Evaluation(
        ref=A,
        config=CFG,
        signals=Signals(),
        ages={},
        decision=Decision(desired=2.0, active=True, winner="gpu", terms=(gpu,)),
    )
    recorder(gpu_only)
    assert metrics.registry.get_sample_value("prewarm_counted_work", labels(A)) is None
    assert metrics.registry.get_sample_value("prewarm_term_replicas", labels(A, term="queue")) is None
    assert metrics.registry.get_sample_value("prewarm_desired", labels(A)) == 2.0


def test_busy_gpus_kept_when_the_gpu_role_changes(metrics: Metrics, clock: ManualClock) -> None:
    """gpuRole demand → guard swaps one GPU term for another: busy GPUs, set for
    the new term in the same evaluation, must not be dropped with the old one."""
    recorder = DecisionRecorder(metrics, clock)

    def with_gpu_term(name: str, busy: float) -> Evaluation:
        base = evaluation(A, 1.0, extra_terms=(Term(name=name, replicas=2.0, active=True, reason="busy"),))
        signals = Signals(queue=base.signals.queue, gpu=GpuReading(busy_gpus=busy, series=1))
        return Evaluation(ref=A, config=CFG, signals=signals, ages={}, decision=base.decision)

    recorder(with_gpu_term("gpu", 1.5))
    assert metrics.registry.get_sample_value("prewarm_busy_gpus", labels(A)) == 1.5
    recorder(with_gpu_term("gpu-guard", 2.0))
    assert metrics.registry.get_sample_value("prewarm_busy_gpus", labels(A)) == 2.0
    assert metrics.registry.get_sample_value("prewarm_term_replicas", labels(A, term="gpu")) is None
    recorder(evaluation(A, 1.0))  # no GPU term left: the series goes
    assert metrics.registry.get_sample_value("prewarm_busy_gpus", labels(A)) is None


def test_observe_read_counts_by_source_kind(metrics: Metrics) -> None:
    class Src:
        key = "rabbitmq|amqp://127.0.0.1|q|abc"
        description = "rabbitmq queue 'q'"

    metrics.observe_read(Src(), 0.01, None)  # type: ignore[arg-type]
    metrics.observe_read(Src(), 0.02, SourceError("down"))  # type: ignore[arg-type]
    value = metrics.registry.get_sample_value
    assert value("prewarm_source_reads_total", {"source": "rabbitmq"}) == 2.0
    assert value("prewarm_source_errors_total", {"source": "rabbitmq"}) == 1.0
    assert value("prewarm_source_read_duration_seconds_count", {"source": "rabbitmq"}) == 2.0
    # Only the kind is a label: nothing of the key (URL, credential identity) leaks into metrics.
    exposition = "\n".join(
        f"{s.name} {s.labels}" for family in metrics.registry.collect() for s in family.samples
    )
    assert "127.0.0.1" not in exposition


def count_lookups(metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Counts the labels() lookups of prewarm_desired from now on (the hot path's cost)."""
    lookups = 0
    real_labels = metrics.desired.labels

    def counting_labels(*args: str) -> object:
        nonlocal lookups
        lookups += 1
        return real_labels(*args)

    monkeypatch.setattr(metrics.desired, "labels", counting_labels)
    return lambda: lookups


def test_unchanged_evaluations_leave_the_gauges_alone(
    metrics: Metrics, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path: the same answer again costs no labels() lookups; a change is published."""
    recorder = DecisionRecorder(metrics, clock)
    recorder(evaluation(A, 1.0))
    lookups = count_lookups(metrics, monkeypatch)
    for _ in range(5):
        recorder(evaluation(A, 1.0))
    assert lookups() == 0
    recorder(evaluation(A, 2.0))
    assert lookups() == 1
    assert metrics.registry.get_sample_value("prewarm_desired", labels(A)) == 2.0


def test_rpc_tally_exports_a_counter_and_a_histogram(metrics: Metrics) -> None:
    metrics.rpc_done("GetMetrics", "OK", 0.0004)
    metrics.rpc_done("GetMetrics", "OK", 0.0005)  # le is inclusive: still the 0.0005 bucket
    metrics.rpc_done("GetMetrics", "UNAVAILABLE", 0.3)
    metrics.rpc_done("IsActive", "OK", 20.0)  # past the last bound: +Inf only
    metrics.rpcs.count("StreamIsActive", "INVALID_ARGUMENT")  # counted, no latency
    value = metrics.registry.get_sample_value
    assert value("prewarm_rpc_total", {"method": "GetMetrics", "code": "OK"}) == 2
    assert value("prewarm_rpc_total", {"method": "GetMetrics", "code": "UNAVAILABLE"}) == 1
    assert value("prewarm_rpc_total", {"method": "StreamIsActive", "code": "INVALID_ARGUMENT"}) == 1
    histogram = "prewarm_rpc_duration_seconds"
    assert value(f"{histogram}_bucket", {"method": "GetMetrics", "le": "0.0005"}) == 2
    assert value(f"{histogram}_bucket", {"method": "GetMetrics", "le": "0.25"}) == 2
    assert value(f"{histogram}_bucket", {"method": "GetMetrics", "le": "0.5"}) == 3
    assert value(f"{histogram}_bucket", {"method": "GetMetrics", "le": "+Inf"}) == 3
    assert value(f"{histogram}_count", {"method": "GetMetrics"}) == 3
    assert value(f"{histogram}_sum", {"method": "GetMetrics"}) == pytest.approx(0.3009)
    assert value(f"{histogram}_bucket", {"method": "IsActive", "le": "10.0"}) == 0
    assert value(f"{histogram}_bucket", {"method": "IsActive", "le": "+Inf"}) == 1
    assert value(f"{histogram}_count", {"method": "StreamIsActive"}) is None
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE prewarm_rpc_total counter" in text
    assert "# TYPE prewarm_rpc_duration_seconds histogram" in text


def test_the_same_evaluation_again_only_marks_the_object_seen(
    metrics: Metrics, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Engine.answer hands the observer the evaluation it reused: nothing is published or
    logged again, but the object counts as asked about (its series do not expire)."""
    recorder = DecisionRecorder(metrics, clock, object_ttl=60.0)
    ev = evaluation(A, 1.0)
    with caplog.at_level(logging.INFO, logger="scaler.decision"):
        recorder(ev)
        for _ in range(3):
            clock.advance(40.0)
            recorder(ev)
            assert recorder.expire() == 0  # seen 40 s ago at most
    assert len(_decision_logs(caplog)) == 1
    clock.advance(61.0)
    assert recorder.expire() == 1
    assert metrics.registry.get_sample_value("prewarm_desired", labels(A)) is None
    recorder(ev)  # after expiry the same evaluation is published again
    assert metrics.registry.get_sample_value("prewarm_desired", labels(A)) == 1.0


def test_counted_work_is_messages_whatever_the_term_asks(metrics: Metrics, clock: ManualClock) -> None:
    # The capacity-aware term asks 7.52 replicas for 3 waiting + 2 in flight: the
    # gauge is the 5 messages, not 7.52 x queueLength.
    capacity = parse_trigger({**CFG_META, "replicaThroughput": "0.5"})
    term = Term(name="queue", replicas=7.52, active=True, reason="capacity: ...")
    decided = Decision(desired=7.52, active=True, winner="queue", terms=(term,))
    reading = QueueReading(waiting=3, in_flight=2)
    recorder = DecisionRecorder(metrics, clock)
    recorder(Evaluation(ref=A, config=capacity, signals=Signals(queue=reading), ages={}, decision=decided))
    assert metrics.registry.get_sample_value("prewarm_counted_work", labels(A)) == 5.0
    # Job mode counts the unclaimed backlog only (in-flight messages have their Jobs).
    job = parse_trigger({**CFG_META, "mode": "job"})
    recorder(Evaluation(ref=B, config=job, signals=Signals(queue=reading), ages={}, decision=decided))
    assert metrics.registry.get_sample_value("prewarm_counted_work", labels(B)) == 3.0


# --- the capacity term's rates ---------------------------------------------------


def with_rates(ref: ObjectRef, desired: float, arrival: float | None, held: float | None) -> Evaluation:
    ev = evaluation(ref, desired)
    signals = Signals(queue=ev.signals.queue, arrival_rate=arrival, held_rate=held, cold_start=300.0)
    return Evaluation(ref=ref, config=ev.config, signals=signals, ages=ev.ages, decision=ev.decision)


def test_the_capacity_terms_rates_are_published_and_dropped_with_them(
    metrics: Metrics, clock: ManualClock
) -> None:
    recorder = DecisionRecorder(metrics, clock)
    value = metrics.registry.get_sample_value
    recorder(with_rates(A, 2.0, arrival=1.5, held=4.0))
    assert value("prewarm_arrival_rate", labels(A)) == 1.5
    assert value("prewarm_held_rate", labels(A)) == 4.0
    # The hold turned off (holdSeconds 0): its series goes, the rate stays.
    recorder(with_rates(A, 2.0, arrival=1.25, held=None))
    assert value("prewarm_arrival_rate", labels(A)) == 1.25
    assert value("prewarm_held_rate", labels(A)) is None
    # replicaThroughput removed: neither is left standing.
    recorder(evaluation(A, 2.0))
    assert value("prewarm_arrival_rate", labels(A)) is None
    # An object without the capacity term never had them.
    recorder(evaluation(B, 1.0))
    assert value("prewarm_arrival_rate", labels(B)) is None


def test_a_new_rate_sets_only_the_rate_gauges(
    metrics: Metrics, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The averaged rate moves with nearly every reading; the decision's gauges are
    set again only when the decision changes."""
    recorder = DecisionRecorder(metrics, clock)
    recorder(with_rates(A, 2.0, arrival=1.5, held=0.0))
    lookups = count_lookups(metrics, monkeypatch)
    recorder(with_rates(A, 2.0, arrival=1.6, held=0.0))
    assert lookups() == 0
    assert metrics.registry.get_sample_value("prewarm_arrival_rate", labels(A)) == 1.6


def test_rate_series_expire_with_the_object(metrics: Metrics, clock: ManualClock) -> None:
    recorder = DecisionRecorder(metrics, clock, object_ttl=60)
    recorder(with_rates(A, 2.0, arrival=1.5, held=3.0))
    assert metrics.registry.get_sample_value("prewarm_held_rate", labels(A)) == 3.0
    clock.advance(61)
    assert recorder.expire() == 1
    assert metrics.registry.get_sample_value("prewarm_arrival_rate", labels(A)) is None
    assert metrics.registry.get_sample_value("prewarm_held_rate", labels(A)) is None
