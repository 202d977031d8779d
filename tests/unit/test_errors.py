"""scaler.signals.errors: the cause under each client library's wrapping, in words.

The real failures (a name that cannot resolve, a refused port, a silent server, a
self-signed certificate) are exercised per source in
tests/integration/test_connection_errors.py; these pin the unwrapping itself."""

from __future__ import annotations

import socket

import pika.exceptions
import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectorSocketConnectError, AMQPConnectorStackTimeout

from scaler.signals.errors import (
    MAX_SERVER_MESSAGE,
    Failure,
    classify,
    connection_failure,
    endpoint,
    redirected,
    server_message,
    unexpected,
)

REFUSED = ConnectionRefusedError(111, "Connection refused")


def wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (wrapped(socket.gaierror(-2, "Name or service not known"), OSError("wrapped")), Failure.RESOLVE),
        (
            pika.exceptions.AMQPConnectionError(AMQPConnectorSocketConnectError(REFUSED)),
            Failure.REFUSED,
        ),
        (AMQPConnectorStackTimeout("Timeout during AMQP handshake"), Failure.TIMEOUT),
        (pika.exceptions.StreamLostError("lost"), Failure.CLOSED),
        (KeyError("not a connection failure"), None),
    ],
)
def test_classify_finds_the_cause_under_the_wrapping(exc: BaseException, kind: Failure | None) -> None:
    found = classify(exc)
    assert (found[0] if found else None) is kind


def test_a_stack_timeout_reads_as_cannot_connect_with_the_host() -> None:
    text = connection_failure(
        AMQPConnectorStackTimeout("Timeout during AMQP handshake 'x'"),
        host="rabbitmq.ai.svc",
        port=5672,
        timeout=5.0,
        host_key="host",
        server="RabbitMQ",
    )
    assert text is not None
    assert text.startswith("cannot connect to rabbitmq.ai.svc:5672: no answer within 5s while connecting")
    assert "AMQPConnector" not in text


def test_endpoint_brackets_ipv6_and_never_has_user_info() -> None:
    assert endpoint("::1", 5672) == "[::1]:5672"
    assert endpoint("broker", None) == "broker"


def test_unexpected_names_the_type_never_the_text() -> None:
    text = unexpected(ValueError("amqp://user:hunter2@broker"))
    assert "ValueError" in text and "hunter2" not in text


def test_a_server_message_keeps_its_first_line_only() -> None:
    # SQS's SignatureDoesNotMatch quotes the canonical request from the third line on.
    message = (
        "The request signature we calculated does not match.\n\n"
        "The Canonical String was\n'x-amz-security-token:tok'"
    )
    assert server_message(message) == "The request signature we calculated does not match."
    assert server_message("  \n ") == ""


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x-amz-security-token:IQoJb3JpZ2lu token", "x-amz-security-token:<redacted> token"),
        ("X-Amz-Security-Token = IQoJb3JpZ2lu", "X-Amz-Security-Token = <redacted>"),
        ("Credential=ASIAXXXX/20260101/us-east-1/sqs/aws4_request, x", "Credential=<redacted>, x"),
        ("Signature=0123abcd&X-Amz-Credential=AKID/1", "Signature=<redacted>&X-Amz-Credential=<redacted>"),
        ("Authorization: AWS4-HMAC-SHA256 x", "Authorization: <redacted> x"),
        ("key AKIAABCDEFGHIJKLMNOP used", "key <redacted> used"),
        (
            "The request signature we calculated does not match",
            "The request signature we calculated does not match",
        ),
    ],
)
def test_a_server_message_has_anything_credential_like_redacted(text: str, shown: str) -> None:
    assert server_message(text) == shown


def test_a_server_message_is_cut() -> None:
    shown = server_message("x" * 1000)
    assert len(shown) == MAX_SERVER_MESSAGE and shown.endswith("...")
    assert server_message("x" * 1000, limit=20) == "x" * 17 + "..."


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.secret-token", "Authorization: <redacted>"),
        ("Authorization: Basic YWRtaW46aHVudGVyMg== refused", "Authorization: <redacted> refused"),
        ("token Bearer eyJhbGciOiJSUzI1NiJ9.secret-token rejected", "token Bearer <redacted> rejected"),
        ("bearer abc.def;x", "bearer <redacted>;x"),
    ],
)
def test_a_server_message_has_bearer_tokens_and_authorization_schemes_redacted(text: str, shown: str) -> None:
    # "Authorization: Bearer <token>" redacted only the scheme word and showed the token.
    assert server_message(text) == shown


def test_a_server_message_has_the_requests_own_secrets_redacted() -> None:
    message = "login as admin with pw-literal-secret refused"
    assert (
        server_message(message, secrets=("pw-literal-secret", None, ""))
        == "login as admin with <redacted> refused"
    )
    # Redacted before the cut: a secret the cut would split shows no part of it.
    cut = server_message("x" * 190 + "pw-literal-secret", secrets=("pw-literal-secret",))
    assert "pw-" not in cut and len(cut) <= MAX_SERVER_MESSAGE


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        (
            "https://user:pw-secret@prom.example:9443/api/v1/query?token=tok-secret#f",
            "to 'https://prom.example:9443/api/v1/query'",
        ),
        ("/prefix/api/v1/query?query=up", "to 'http://127.0.0.1:9090/prefix/api/v1/query'"),
        ("//[::1]:8080/x", "to 'http://[::1]:8080/x'"),
        ("http://prom.example:99999/", "to a malformed address"),
        ("", "without saying where"),
        (None, "without saying where"),
        ("http://h/" + "p" * 500, "to 'http://h/" + "p" * 108 + "...'"),  # 120 characters in all
    ],
)
def test_a_redirect_names_where_it_points_never_credentials_or_query(
    location: str | None, shown: str
) -> None:
    text = redirected(302, location, "http://127.0.0.1:9090/api/v1/query?query=up", "host")
    assert text.startswith("the server redirects (HTTP 302) "), text
    assert shown in text, text
    assert text.endswith("; the scaler does not follow redirects; set 'host' to the final address"), text
    assert "secret" not in text and "query=up" not in text, text
