"""What RabbitMQ's management API answers, through the real scaler, against a fake
management API on loopback (no broker needed): a count that is missing, null,
NaN, infinite or negative is UNAVAILABLE naming the field, never a reading (a
made-up 0 fed the counted work and the in-flight keep-alive guard), and so is a
publish or deliver rate that is there but not a rate (only an absent one means
none). A redirect is not followed (it names where it points), basic-auth
credentials go UTF-8 encoded, and the AMQP URL given to pika keeps no
ssl_options or tcp_options."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from urllib.parse import quote

import grpc
import pytest
from conftest import find_free_port
from fake_http import FakeHttpServer, Redirector, Request

from scaler.access import AccessPolicy, Patterns
from scaler.config import RabbitConfig, RabbitProtocol, parse_trigger
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.rabbitmq import AmqpConnections, RabbitAmqpSource, RabbitHttpSource, amqp_url_for_pika

pytestmark = pytest.mark.integration

QUEUE = "jobs"
NO_COUNTS_YET = "the management API has no message counts for the queue yet"


class FakeManagementApi:
    """GET /api/queues/<vhost>/<queue> answering `body` (raw JSON text: Python's
    json, as the scaler's, reads a NaN literal)."""

    def __init__(self) -> None:
        self.body = '{"messages_ready": 4, "messages_unacknowledged": 2}'
        self.server = FakeHttpServer(self._answer)
        self.url = self.server.url

    def _answer(self, request: Request) -> tuple[int, str, bytes]:
        return 200, "application/json", self.body.encode()

    def metadata(self) -> dict[str, str]:
        host = self.url.replace("http://", "http://guest:guest@")
        return {"source": "rabbitmq", "host": host, "queueName": QUEUE, "queueLength": "1"}


@pytest.fixture
def management_api() -> Iterator[FakeManagementApi]:
    api = FakeManagementApi()
    yield api
    api.server.stop()


async def _unavailable(call) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value.details()
    return str(failure.value.details())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"messages_ready": NaN, "messages_unacknowledged": 2}', "messages_ready = nan; expected a count"),
        (
            '{"messages_ready": 4, "messages_unacknowledged": Infinity}',
            "messages_unacknowledged = inf; expected",
        ),
        ('{"messages_ready": -3, "messages_unacknowledged": 2}', "messages_ready = -3; expected a count"),
        ('{"messages_ready": 4, "messages_unacknowledged": -1}', "messages_unacknowledged = -1; expected"),
        ('{"messages_ready": 4}', NO_COUNTS_YET),
        ('{"messages_ready": null, "messages_unacknowledged": 7}', NO_COUNTS_YET),
        ('{"messages_ready": 4, "messages_unacknowledged": null}', NO_COUNTS_YET),
        ('{"messages_ready": true, "messages_unacknowledged": 2}', "messages_ready is not a number"),
        ('{"messages_ready": "4", "messages_unacknowledged": 2}', "messages_ready is not a number"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "negative-unacked",
        "no-unacked",
        "ready-null",
        "unacked-null",
        "bool",
        "string",
    ],
)
async def test_a_count_that_is_missing_or_not_a_count_is_unavailable(
    start_scaler, management_api, body, expected
):
    scaler = await start_scaler()
    management_api.body = body
    meta = management_api.metadata()

    for call in (scaler.metric(meta), scaler.active(meta)):  # never a made-up reading
        details = await _unavailable(call)
        assert details.startswith(f"rabbitmq queue '{QUEUE}' (vhost '/') at {management_api.url}"), details
        assert expected in details, details
        assert "guest:guest" not in details


def _with_stats(stats: str) -> str:
    return f'{{"messages_ready": 4, "messages_unacknowledged": 2, "message_stats": {stats}}}'


@pytest.mark.parametrize(
    ("field", "rate", "shown"),
    [
        ("publish_details", "NaN", "NaN"),
        ("publish_details", "Infinity", "Infinity"),
        ("publish_details", "-1.5", "-1.5"),
        ("publish_details", '"40.0"', '"40.0"'),
        ("publish_details", "null", "null"),
        ("publish_details", "true", "true"),
        ("deliver_get_details", "-40", "-40"),
        ("deliver_get_details", f'"{"9" * 300}"', f'"{"9" * 96}... (302 characters)'),
    ],
    ids=["nan", "inf", "negative", "string", "null", "bool", "deliver-negative", "long"],
)
def test_a_rate_that_is_not_a_rate_is_an_error_naming_it(management_api, field, rate, shown):
    # It read as "no rate", which MessageRate takes for "no publish recorded": 0 replicas, inactive.
    management_api.body = _with_stats(f'{{"{field}": {{"rate": {rate}}}}}')
    cfg = parse_trigger(management_api.metadata()).rabbitmq
    assert cfg is not None
    source = RabbitHttpSource(cfg, timeout=5.0)
    try:
        with pytest.raises(SourceError) as failure:
            source.read()
    finally:
        source.close()
    assert str(failure.value) == (
        f"rabbitmq queue '{QUEUE}' (vhost '/') at {management_api.url}: the management API reports "
        f"message_stats.{field}.rate = {shown}; expected a rate of messages per second (a finite number, "
        "not negative)"
    )


@pytest.mark.parametrize("details", ["{}", "null", "[]", "7"])
def test_rate_details_without_a_rate_are_an_error(management_api, details):
    management_api.body = _with_stats(f'{{"publish_details": {details}}}')
    cfg = parse_trigger(management_api.metadata()).rabbitmq
    assert cfg is not None
    source = RabbitHttpSource(cfg, timeout=5.0)
    try:
        with pytest.raises(SourceError) as failure:
            source.read()
    finally:
        source.close()
    assert f"(message_stats.publish_details has no rate: {details})" in str(failure.value)


@pytest.mark.parametrize(
    ("stats", "reading"),
    [
        (None, QueueReading(waiting=4.0, in_flight=2.0)),
        ("{}", QueueReading(waiting=4.0, in_flight=2.0)),
        ("[]", QueueReading(waiting=4.0, in_flight=2.0)),
        ('{"publish": 12}', QueueReading(waiting=4.0, in_flight=2.0)),  # rates_mode none
        (
            '{"publish_details": {"rate": 2.5}, "deliver_get_details": {"rate": 0}}',
            QueueReading(waiting=4.0, in_flight=2.0, publish_rate=2.5, deliver_rate=0.0),
        ),
    ],
    ids=["no-stats", "empty", "empty-list", "no-details", "rates"],
)
def test_only_an_absent_rate_reads_as_not_reported(management_api, stats, reading):
    # RabbitMQ leaves publish_details out until a message is published: no rate, not an error.
    management_api.body = (
        '{"messages_ready": 4, "messages_unacknowledged": 2}' if stats is None else _with_stats(stats)
    )
    cfg = parse_trigger(management_api.metadata()).rabbitmq
    assert cfg is not None
    source = RabbitHttpSource(cfg, timeout=5.0)
    try:
        assert source.read() == reading
    finally:
        source.close()


async def test_a_message_rate_trigger_with_a_nonsense_rate_is_unavailable(start_scaler, management_api):
    scaler = await start_scaler()
    management_api.body = _with_stats('{"publish_details": {"rate": -40.0}}')
    meta = dict(management_api.metadata(), mode="MessageRate", value="10")
    del meta["queueLength"]

    for call in (scaler.metric(meta), scaler.active(meta)):  # was 0 replicas, inactive
        details = await _unavailable(call)
        assert "message_stats.publish_details.rate = -40.0; expected a rate" in details, details


# --- redirects and credentials (a review of the signal sources) ----------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_names_where_it_points(start_scaler, management_api, status):
    # --allowed-hosts checks the configured address only: a redirect followed sent the
    # read to any host the scaler reaches (here `localhost`, which the list refuses).
    location = f"http://admin:pw-redirect-secret@localhost:{management_api.server.port}/internal?token=tok-q"
    redirector = Redirector(status, location)
    try:
        scaler = await start_scaler(
            access=AccessPolicy(allowed_hosts=Patterns.parse("127.0.0.1", what="host"))
        )
        meta = dict(management_api.metadata(), host=redirector.url.replace("http://", "http://guest:guest@"))

        details = await _unavailable(scaler.metric(meta))

        assert details == (
            f"rabbitmq queue '{QUEUE}' (vhost '/') at {redirector.url}: the server redirects (HTTP {status}) "
            f"to 'http://localhost:{management_api.server.port}/internal'; the scaler does not follow "
            "redirects; set 'host' to the final address"
        )
        assert management_api.server.requests == []
    finally:
        redirector.stop()


@pytest.mark.parametrize(
    ("user", "password"),
    [("guest", "päss"), ("guest", "pä€ss"), ("gäst", "密码"), ("guest", "guest")],
    ids=["latin-1", "euro", "cjk", "ascii"],
)
def test_basic_auth_credentials_are_sent_utf8_encoded(management_api, user, password):
    # requests encodes str credentials as latin-1: 'päss' was refused (401) and '€'
    # failed before any request ("unexpected error (UnicodeEncodeError)"); RabbitMQ,
    # KEDA and pika (over AMQP) use UTF-8.
    expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    def answer(request: Request) -> tuple[int, str, bytes]:
        if request.headers.get("authorization", "").encode("latin-1") != expected:
            return 401, "application/json", b'{"error": "not_authorised"}'
        return 200, "application/json", b'{"messages_ready": 4, "messages_unacknowledged": 2}'

    server = FakeHttpServer(answer)
    try:
        host = f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{server.port}"
        cfg = parse_trigger({"source": "rabbitmq", "host": host, "queueName": QUEUE}).rabbitmq
        assert cfg is not None
        source = RabbitHttpSource(cfg, timeout=5.0)
        try:
            assert source.read() == QueueReading(waiting=4.0, in_flight=2.0)
        finally:
            source.close()
        assert len(server.requests) == 1
    finally:
        server.stop()


# --- the AMQP URL's query (a review of the signal sources) ---------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "ssl_options={'ca_certs':'PATH'}",
        "ssl%5Foptions={'certfile':'PATH'}",
        "heartbeat=5&tcp_options={'TCP_KEEPIDLE':'PATH'}",
    ],
    ids=["ssl-ca", "ssl-encoded-cert", "tcp"],
)
def test_the_amqp_url_given_to_pika_has_no_file_or_socket_options(tmp_path, query):
    # pika loads the files ssl_options names from the scaler's own pod: the message said
    # whether a file exists ("No such file or directory"), and a tenant could make the
    # scaler present a client certificate mounted there. Configuration refuses these
    # keys; the source drops them whatever reaches it. An unused port: pika must get as
    # far as connecting, for a file that exists and one that does not alike.
    existing = tmp_path / "ca.pem"
    existing.write_text("not a certificate")
    port = find_free_port()
    messages = []
    for path in (existing, tmp_path / "missing.pem"):
        url = f"amqp://guest:pw-amqp-secret@127.0.0.1:{port}/%2F?" + query.replace("PATH", str(path))
        cfg = RabbitConfig(url=url, queue_name=QUEUE, protocol=RabbitProtocol.AMQP)
        source = RabbitAmqpSource(cfg, timeout=2.0, connections=AmqpConnections(failure_ttl=0.0))
        try:
            with pytest.raises(SourceError) as failure:
                asyncio.run(source.read())
        finally:
            source.close()
        messages.append(str(failure.value).split(": ", 1)[1])
    assert messages[0] == messages[1], messages
    assert messages[0].startswith(f"cannot connect to 127.0.0.1:{port}: connection refused"), messages


def test_amqp_url_for_pika_keeps_everything_else():
    url = (
        "amqps://us%40r:p%3Ass@broker.example:5671/v%2Fh?heartbeat=5&ssl_options={}&tcp_options={}&locale=en"
    )
    assert amqp_url_for_pika(url) == "amqps://us%40r:p%3Ass@broker.example:5671/v%2Fh?heartbeat=5&locale=en"
    for unchanged in ("amqp://guest:guest@h:5672/%2F", "amqp://h/?heartbeat=5&channel_max=10"):
        assert amqp_url_for_pika(unchanged) == unchanged
