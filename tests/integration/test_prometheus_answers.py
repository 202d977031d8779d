"""What a Prometheus API answers, against a fake Prometheus on loopback that reads
its parameters as Prometheus does: the source timeout (any positive number of
seconds) is sent in a form Prometheus accepts, a 200 answer that is not JSON
says what to check, and a malformed range-query answer is a SourceError saying
so, never a raw TypeError."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fake_http import Answer, FakeHttpServer, Request

from scaler.config import PrometheusConfig, PrometheusQuery
from scaler.signals.base import ArrivalReading, SourceError
from scaler.signals.prometheus import PrometheusSource

pytestmark = pytest.mark.integration

# prometheus/common model.ParseDuration: whole numbers with units, largest first.
_DURATION = re.compile(r"((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?")


def prometheus_duration(text: str) -> bool:
    """Whether Prometheus's API (web/api/v1 parseDuration) accepts `text`: a plain
    number of seconds (strconv.ParseFloat), or model.ParseDuration's form."""
    if text.strip() == text and "_" not in text:
        try:
            float(text)
            return True
        except ValueError:
            pass
    return text == "0" or (text != "" and _DURATION.fullmatch(text) is not None)


def bad_data(message: str) -> Answer:
    body = {"status": "error", "errorType": "bad_data", "error": message}
    return 400, "application/json", json.dumps(body).encode()


def success(result_type: str, result: Any) -> Answer:
    body = {"status": "success", "data": {"resultType": result_type, "result": result}}
    return 200, "application/json", json.dumps(body).encode()


class FakePrometheus:
    """Answers /api/v1/query with one sample and /api/v1/query_range with
    `range_result`, after checking timeout (and step) as Prometheus does."""

    def __init__(self) -> None:
        self.range_result: Any = [{"metric": {}, "values": [[1700000000, "2"], [1700000060, "3"]]}]
        self.body: Answer | None = None  # a whole answer, when a test gives one
        self.server = FakeHttpServer(self._answer)
        self.url = self.server.url

    def _answer(self, request: Request) -> Answer:
        if self.body is not None:
            return self.body
        for name in ("timeout", "step"):
            value = request.query.get(name)
            if value is not None and not prometheus_duration(value):
                return bad_data(f'invalid parameter "{name}": cannot parse "{value}" to a valid duration')
        if request.path == "/api/v1/query":
            return success("vector", [{"metric": {}, "value": [1700000000, "1.5"]}])
        return success("matrix", self.range_result)

    def sent(self, name: str) -> list[str]:
        return [r.query[name] for r in self.server.requests if name in r.query]


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    prometheus = FakePrometheus()
    yield prometheus
    prometheus.server.stop()


def arrival_source(prometheus: FakePrometheus, timeout: float) -> PrometheusSource:
    query = PrometheusQuery(PrometheusConfig(prometheus.url), "sum(rate(requests_total[1m]))")
    return PrometheusSource(query, timeout=timeout, reads="arrival")


@pytest.mark.parametrize("timeout", [5.0, 2.5, 0.25, 1.001, 90.0])
def test_any_positive_source_timeout_is_sent_as_prometheus_reads_it(fake_prometheus, timeout):
    source = arrival_source(fake_prometheus, timeout)

    assert source.read() == ArrivalReading(rate=1.5)
    assert source.history(1700000000, 1700000060, 60.0) == [(1700000000.0, 2.0), (1700000060.0, 3.0)]
    assert source.history(1700000000, 1700000060, 0.5)  # a step that is not whole seconds too

    sent = fake_prometheus.sent("timeout")
    assert len(sent) == 3 and all(prometheus_duration(value) for value in sent), sent
    assert fake_prometheus.sent("step") == ["60s", "500ms"]


async def test_a_fractional_source_timeout_reads_busy_gpus_through_the_scaler(start_scaler, fake_prometheus):
    # --source-timeout 2.5: every GPU read was refused as a bad query (INVALID_ARGUMENT).
    scaler = await start_scaler(source_timeout=2.5)
    meta = {
        "prometheusServerAddress": fake_prometheus.url,
        "gpuSelector": 'pod="w"',
        "gpuTargetUtilization": "50",
    }

    value = await scaler.metric(meta)

    assert value.metricValueFloat == pytest.approx(1.5 / 0.5)
    assert fake_prometheus.sent("timeout")[-1] == "2500ms"


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Grafana</body></html>", "{ caf\xe9".encode("latin-1")],
    ids=["html", "latin1"],
)
def test_a_200_answer_that_is_not_json_says_to_check_the_address(fake_prometheus, body):
    fake_prometheus.body = (200, "text/html", body)
    source = arrival_source(fake_prometheus, 5.0)

    for read in (source.read, lambda: source.history(1700000000, 1700000060, 60.0)):
        with pytest.raises(SourceError) as failure:
            read()
        assert "the answer is not Prometheus's API JSON; check that prometheusServerAddress" in str(
            failure.value
        )


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (None, "not a list of series"),
        ([1700000000, "2"], "not a list of series"),  # a scalar's shape
        ([{"metric": {}, "values": None}], "no list of values"),
        ([{"metric": {}}], "no list of values"),
        ([{"metric": {}, "values": [[1700000000, "2", "3"]]}], "a point that is not [time, value]"),
        ([{"metric": {}, "values": [7]}], "a point that is not [time, value]"),
        ([{"metric": {}, "values": [["abc", "2"]]}], "a time that is not a number"),
        ([{"metric": {}, "values": [[None, "2"]]}], "a time that is not a number"),
        ([{"metric": {}, "values": [["NaN", "2"]]}], "a time that is not a number"),
    ],
    ids=[
        "null",
        "scalar",
        "values-null",
        "no-values",
        "triple",
        "not-a-pair",
        "bad-time",
        "null-time",
        "nan-time",
    ],
)
def test_a_malformed_range_answer_is_a_source_error_saying_so(fake_prometheus, result, why):
    fake_prometheus.range_result = result
    source = arrival_source(fake_prometheus, 5.0)

    with pytest.raises(SourceError) as failure:
        source.history(1700000000, 1700000060, 60.0)

    assert str(failure.value) == (
        f"prometheus at {fake_prometheus.url}, query 'sum(rate(requests_total[1m]))': "
        f"unexpected answer to the range query ({why})"
    )
