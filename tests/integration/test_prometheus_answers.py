"""What a Prometheus API answers, against a fake Prometheus on loopback that reads
its parameters as Prometheus does: the source timeout (any positive number of
seconds) is sent in a form Prometheus accepts, a 200 answer that is not JSON
says what to check, and a malformed range-query answer is a SourceError saying
so, never a raw TypeError. A redirect is not followed (it named where it points),
basic-auth credentials go UTF-8 encoded, and an error body is shown as its first
line, capped, with credential-like text redacted."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import requests
from fake_http import Answer, FakeHttpServer, Redirector, Request

from scaler.access import AccessPolicy, Patterns
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


# --- redirects, credentials and error bodies (a review of the signal sources) ---------------


@pytest.fixture
def target() -> Iterator[FakeHttpServer]:
    """Where a redirect points: a host --allowed-hosts refuses (as `localhost`)."""
    server = FakeHttpServer(lambda request: (500, "text/plain", b"INTERNAL-ONLY: db_password=hunter2"))
    yield server
    server.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_names_where_it_points(start_scaler, target, status):
    # --allowed-hosts checks the configured address only: a redirect followed sent the read
    # to any host the scaler reaches, and the target's answer came back in the error.
    location = f"http://admin:pw-redirect-secret@localhost:{target.port}/internal/admin?token=tok-in-query#x"
    redirector = Redirector(status, location)
    try:
        scaler = await start_scaler(
            access=AccessPolicy(allowed_hosts=Patterns.parse("127.0.0.1", what="host"))
        )
        meta = {
            "prometheusServerAddress": redirector.url,
            "gpuSelector": 'pod="w"',
            "gpuTargetUtilization": "50",
        }

        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await scaler.metric(meta)

        details = str(failure.value.details())
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, details
        assert details.startswith(f"prometheus at {redirector.url}, query "), details
        assert (
            f": the server redirects (HTTP {status}) to 'http://localhost:{target.port}/internal/admin'; the "
            "scaler does not follow redirects; set 'prometheusServerAddress' to the final address (its base "
            "URL, without /api/v1)"
        ) in details, details
        for secret in ("pw-redirect-secret", "tok-in-query", "admin:", "hunter2"):
            assert secret not in details, details
        assert target.requests == []
    finally:
        redirector.stop()


def test_a_relative_redirect_names_the_path_on_the_same_server(fake_prometheus):
    fake_prometheus.body = (302, "text/html", b"")  # no Location: not followed by requests either
    source = arrival_source(fake_prometheus, 5.0)
    with pytest.raises(SourceError) as failure:
        source.read()
    assert "the server redirects (HTTP 302) without saying where; the scaler does not follow" in str(
        failure.value
    )

    redirector = Redirector(302, "/prometheus/api/v1/query?query=up")
    try:
        query = PrometheusQuery(PrometheusConfig(redirector.url), "up")
        with pytest.raises(SourceError) as failure:
            PrometheusSource(query, timeout=5.0, reads="arrival").read()
        assert f"redirects (HTTP 302) to '{redirector.url}/prometheus/api/v1/query'; " in str(failure.value)
    finally:
        redirector.stop()


def basic_auth_checker(user: str, password: str, token: str | None = None) -> Callable[[Request], Answer]:
    """A Prometheus that answers only the credentials sent UTF-8 encoded (as KEDA's
    Go client and Prometheus read them)."""

    def answer(request: Request) -> Answer:
        sent = request.headers.get("authorization", "").encode("latin-1")
        if token is not None:
            expected = b"Bearer " + token.encode()
        else:
            expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        if sent != expected:
            return 401, "text/plain", b"Unauthorized"
        return success("vector", [{"metric": {}, "value": [1700000000, "2"]}])

    return answer


@pytest.mark.parametrize(
    ("user", "password"),
    [("admin", "päss"), ("admin", "pä€ss"), ("ädmin", "密码"), ("admin", "plain")],
    ids=["latin-1", "euro", "cjk", "ascii"],
)
def test_basic_auth_credentials_are_sent_utf8_encoded(user, password):
    # requests encodes str credentials as latin-1: 'päss' was refused (401, "access
    # denied") and '€' raised before any request, reported as a non-Prometheus answer.
    server = FakeHttpServer(basic_auth_checker(user, password))
    try:
        config = PrometheusConfig(server.url, username=user, password=password)
        source = PrometheusSource(PrometheusQuery(config, "up"), timeout=5.0, reads="arrival")
        assert source.read() == ArrivalReading(rate=2.0)
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_a_bearer_token_is_sent_utf8_encoded():
    server = FakeHttpServer(basic_auth_checker("", "", token="tök€n"))
    try:
        config = PrometheusConfig(server.url, bearer_token="tök€n")
        source = PrometheusSource(PrometheusQuery(config, "up"), timeout=5.0, reads="arrival")
        assert source.read() == ArrivalReading(rate=2.0)
    finally:
        server.stop()


def test_an_error_before_any_answer_is_not_blamed_on_the_answer(fake_prometheus, monkeypatch):
    # The catch for a malformed answer wrapped the whole request: a ValueError raised
    # before anything was sent read "the answer is not Prometheus's API JSON".
    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot encode a header holding pw-value-error-secret")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
    source = arrival_source(fake_prometheus, 5.0)

    for read in (source.read, lambda: source.history(1700000000, 1700000060, 60.0)):
        with pytest.raises(SourceError) as failure:
            read()
        message = str(failure.value)
        assert message == (
            f"prometheus at {fake_prometheus.url}, query 'sum(rate(requests_total[1m]))': unexpected error "
            "while reading (ValueError); the scaler's debug log has the details"
        ), message
    assert fake_prometheus.server.requests == []


TOKEN = "eyJhbGciOiJSUzI1NiJ9.pw-bearer-secret"


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (
            (502, "text/plain", f"upstream rejected request\nAuthorization: Bearer {TOKEN}\n{'x' * 1000}"),
            "HTTP 502: upstream rejected request",
        ),
        ((502, "text/plain", f"rejected Authorization: Bearer {TOKEN} at the gateway"), "HTTP 502: rejected"),
        ((401, "text/plain", "x"), "access denied (HTTP 401)"),
        ((503, "text/plain", f"no route for token {TOKEN}"), "HTTP 503: no route for token <redacted>"),
        (
            (
                503,
                "application/json",
                json.dumps({"status": "error", "errorType": "execution", "error": "E" * 20000}),
            ),
            "HTTP 503: " + "E" * 997 + "...",
        ),
        (
            (
                503,
                "application/json",
                json.dumps({"status": "error", "errorType": "execution", "error": f"bad\n{TOKEN}"}),
            ),
            "HTTP 503: bad",
        ),
        (
            (
                400,
                "application/json",
                json.dumps({"status": "error", "errorType": "bad_data", "error": "x" * 1500}),
            ),
            "Prometheus rejected the query: " + "x" * 997 + "...",
        ),
    ],
    ids=[
        "text-bearer-line",
        "text-bearer-inline",
        "denied",
        "text-token",
        "json-long",
        "json-lines",
        "bad-data",
    ],
)
def test_an_error_body_is_shown_first_line_capped_and_redacted(fake_prometheus, answer, shown):
    # The body was copied raw (300 characters, newlines and all) or, as JSON, whole: a
    # proxy quoting the request put the bearer token into the error KEDA shows.
    status, content_type, body = answer
    fake_prometheus.body = (status, content_type, body.encode())
    config = PrometheusConfig(fake_prometheus.url, bearer_token=TOKEN)
    source = PrometheusSource(PrometheusQuery(config, "up"), timeout=5.0, reads="arrival")

    with pytest.raises(SourceError) as failure:
        source.read()

    message = str(failure.value)
    assert "pw-bearer-secret" not in message and "\n" not in message, message
    assert shown in message, message
    assert len(message) < 1200, len(message)


def test_an_error_body_quoting_the_password_has_it_redacted(fake_prometheus):
    fake_prometheus.body = (502, "text/plain", b"login pw-basic-literal-secret refused for admin")
    config = PrometheusConfig(fake_prometheus.url, username="admin", password="pw-basic-literal-secret")
    source = PrometheusSource(PrometheusQuery(config, "up"), timeout=5.0, reads="arrival")

    with pytest.raises(SourceError) as failure:
        source.read()

    assert str(failure.value).endswith("HTTP 502: login <redacted> refused for admin"), str(failure.value)
