"""Trigger metadata parsing: every key, its default, its FromEnv twin, every bad value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scaler.config import (
    KEDA_OWN_KEYS,
    MAX_VALUE_LENGTH,
    ConfigError,
    Mode,
    RabbitProtocol,
    SourceKind,
    TriggerConfig,
    parse_trigger,
    rabbit_http_prefix,
    rabbit_vhost,
    redact_url,
)
from scaler.engine import SourceFactory

SECRET = "s3cr3t-P4ss"  # planted in every credential-bearing key; must never be echoed
SQS_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/jobs"
AMQP_URL = f"amqp://user:{SECRET}@127.0.0.1:5672/"
HTTP_URL = f"http://user:{SECRET}@127.0.0.1:15672/"


def sqs(**extra: str) -> dict[str, str]:
    return {"source": "sqs", "queueURL": SQS_URL, **extra}


def rabbit(**extra: str) -> dict[str, str]:
    return {"source": "rabbitmq", "host": AMQP_URL, "queueName": "orders", **extra}


def sqs_with_keys(**extra: str) -> dict[str, str]:
    return sqs(awsAccessKeyID="AKIDEXAMPLE", awsSecretAccessKey=SECRET, awsSessionToken=SECRET, **extra)


# --- valid metadata ------------------------------------------------------------

Check = Callable[[TriggerConfig], object]

VALID: list[tuple[str, dict[str, str], Check, object]] = [
    # defaults
    ("sqs source", sqs(), lambda c: c.source, SourceKind.SQS),
    ("rabbitmq source", rabbit(), lambda c: c.source, SourceKind.RABBITMQ),
    ("source case-insensitive", sqs(source="SQS"), lambda c: c.source, SourceKind.SQS),
    ("default mode", sqs(), lambda c: c.mode, Mode.DEPLOYMENT),
    ("default queueLength", sqs(), lambda c: c.queue_length, 5.0),
    # each source's default is KEDA's: aws-sqs-queue 5, rabbitmq 20
    ("rabbitmq default queueLength", rabbit(), lambda c: c.queue_length, 20.0),
    ("rabbitmq job default queueLength", rabbit(mode="job"), lambda c: c.queue_length, 20.0),
    ("default activationQueueLength", sqs(), lambda c: c.activation_queue_length, 0.0),
    ("default metricName sqs", sqs(), lambda c: c.metric_name, "sqs-jobs"),
    ("default metricName rabbitmq", rabbit(), lambda c: c.metric_name, "rabbitmq-orders"),
    (
        "default metricName folded",
        rabbit(queueName="Orders.High_Prio"),
        lambda c: c.metric_name,
        "rabbitmq-orders-high-prio",
    ),
    ("default scaleOnInFlight", sqs(), lambda c: c.sqs.scale_on_in_flight, True),
    ("default scaleOnDelayed", sqs(), lambda c: c.sqs.scale_on_delayed, False),
    ("default awsEndpoint", sqs(), lambda c: c.sqs.endpoint, None),
    ("default credentials", sqs(), lambda c: (c.sqs.access_key_id, c.sqs.secret_access_key), (None, None)),
    ("default awsRoleArn", sqs(), lambda c: c.sqs.role_arn, None),
    ("sqs has no rabbitmq part", sqs(), lambda c: c.rabbitmq, None),
    ("rabbitmq has no sqs part", rabbit(), lambda c: c.sqs, None),
    ("default excludeUnacknowledged", rabbit(), lambda c: c.rabbitmq.exclude_unacknowledged, False),
    ("default vhostName", rabbit(), lambda c: c.rabbitmq.vhost, None),
    ("no unknown keys", sqs(), lambda c: c.unknown_keys, ()),
    # mode
    ("mode job", sqs(mode="job"), lambda c: c.mode, Mode.JOB),
    ("mode JOB", sqs(mode="JOB"), lambda c: c.mode, Mode.JOB),
    ("mode deployment", sqs(mode="deployment"), lambda c: c.mode, Mode.DEPLOYMENT),
    # numbers
    ("queueLength float", sqs(queueLength="2.5"), lambda c: c.queue_length, 2.5),
    ("queueLength int", sqs(queueLength="10"), lambda c: c.queue_length, 10.0),
    ("queueLength small", sqs(queueLength="0.001"), lambda c: c.queue_length, 0.001),
    ("queueLength padded", sqs(queueLength=" 7 "), lambda c: c.queue_length, 7.0),
    ("queueLength empty = default", sqs(queueLength=""), lambda c: c.queue_length, 5.0),
    ("activation zero", sqs(activationQueueLength="0"), lambda c: c.activation_queue_length, 0.0),
    ("activation float", sqs(activationQueueLength="3.5"), lambda c: c.activation_queue_length, 3.5),
    # metricName
    ("metricName", sqs(metricName="gpu-llm-queue-1"), lambda c: c.metric_name, "gpu-llm-queue-1"),
    ("metricName one char", sqs(metricName="a"), lambda c: c.metric_name, "a"),
    ("metricName 200 chars", sqs(metricName="a" * 200), lambda c: len(c.metric_name), 200),
    # SQS
    ("queueURL", sqs(), lambda c: c.sqs.queue_url, SQS_URL),
    ("queue name from URL", sqs(), lambda c: c.sqs.queue_name, "jobs"),
    ("region from URL", sqs(), lambda c: c.sqs.region, "eu-west-2"),
    (
        "region from China URL",
        sqs(queueURL="https://sqs.cn-north-1.amazonaws.com.cn/123/q"),
        lambda c: c.sqs.region,
        "cn-north-1",
    ),
    ("awsRegion beats the URL", sqs(awsRegion="us-east-1"), lambda c: c.sqs.region, "us-east-1"),
    (
        "awsRegion with a custom host",
        sqs(queueURL="http://127.0.0.1:4566/000000000000/q", awsRegion="us-west-2"),
        lambda c: c.sqs.region,
        "us-west-2",
    ),
    (
        "awsEndpoint",
        sqs(awsEndpoint="http://127.0.0.1:4566"),
        lambda c: c.sqs.endpoint,
        "http://127.0.0.1:4566",
    ),
    ("scaleOnInFlight false", sqs(scaleOnInFlight="false"), lambda c: c.sqs.scale_on_in_flight, False),
    ("scaleOnInFlight 0", sqs(scaleOnInFlight="0"), lambda c: c.sqs.scale_on_in_flight, False),
    ("scaleOnInFlight no", sqs(scaleOnInFlight="no"), lambda c: c.sqs.scale_on_in_flight, False),
    ("scaleOnInFlight TRUE", sqs(scaleOnInFlight="TRUE"), lambda c: c.sqs.scale_on_in_flight, True),
    ("scaleOnDelayed true", sqs(scaleOnDelayed="true"), lambda c: c.sqs.scale_on_delayed, True),
    ("scaleOnDelayed 1", sqs(scaleOnDelayed="1"), lambda c: c.sqs.scale_on_delayed, True),
    ("scaleOnDelayed yes", sqs(scaleOnDelayed="yes"), lambda c: c.sqs.scale_on_delayed, True),
    ("awsAccessKeyID", sqs_with_keys(), lambda c: c.sqs.access_key_id, "AKIDEXAMPLE"),
    ("awsSecretAccessKey", sqs_with_keys(), lambda c: c.sqs.secret_access_key, SECRET),
    ("awsSessionToken", sqs_with_keys(), lambda c: c.sqs.session_token, SECRET),
    (
        "awsRoleArn",
        sqs(awsRoleArn="arn:aws:iam::123456789012:role/reader"),
        lambda c: c.sqs.role_arn,
        "arn:aws:iam::123456789012:role/reader",
    ),
    (
        "awsRoleArn with keys",
        sqs_with_keys(awsRoleArn="arn:aws:iam::1:role/r"),
        lambda c: c.sqs.role_arn,
        "arn:aws:iam::1:role/r",
    ),
    # RabbitMQ
    ("host", rabbit(), lambda c: c.rabbitmq.url, AMQP_URL),
    ("queueName", rabbit(queueName="work items"), lambda c: c.rabbitmq.queue_name, "work items"),
    ("vhostName", rabbit(vhostName="tenant-a"), lambda c: c.rabbitmq.vhost, "tenant-a"),
    ("protocol auto amqp://", rabbit(), lambda c: c.rabbitmq.protocol, RabbitProtocol.AMQP),
    (
        "protocol auto amqps://",
        rabbit(host="amqps://u:p@127.0.0.1:5671/"),
        lambda c: c.rabbitmq.protocol,
        RabbitProtocol.AMQP,
    ),
    ("protocol auto http://", rabbit(host=HTTP_URL), lambda c: c.rabbitmq.protocol, RabbitProtocol.HTTP),
    (
        "protocol auto https://",
        rabbit(host="https://u:p@127.0.0.1:15671/"),
        lambda c: c.rabbitmq.protocol,
        RabbitProtocol.HTTP,
    ),
    ("protocol explicit auto", rabbit(protocol="auto"), lambda c: c.rabbitmq.protocol, RabbitProtocol.AMQP),
    ("protocol amqp", rabbit(protocol="amqp"), lambda c: c.rabbitmq.protocol, RabbitProtocol.AMQP),
    ("protocol AMQP", rabbit(protocol="AMQP"), lambda c: c.rabbitmq.protocol, RabbitProtocol.AMQP),
    (
        "protocol http",
        rabbit(host=HTTP_URL, protocol="http"),
        lambda c: c.rabbitmq.protocol,
        RabbitProtocol.HTTP,
    ),
    (
        "excludeUnacknowledged with http",
        rabbit(host=HTTP_URL, excludeUnacknowledged="true"),
        lambda c: c.rabbitmq.exclude_unacknowledged,
        True,
    ),
    (
        "excludeUnacknowledged false with amqp",
        rabbit(excludeUnacknowledged="false"),
        lambda c: c.rabbitmq.exclude_unacknowledged,
        False,
    ),
]


@pytest.mark.parametrize(("metadata", "check", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_metadata(metadata: dict[str, str], check: Check, expected: object) -> None:
    assert check(parse_trigger(metadata)) == expected


# --- every key also as keyFromEnv ---------------------------------------------

FROM_ENV: list[tuple[str, dict[str, str], str, str, Check, object]] = [
    # (name, base metadata without the key, key, value, check, expected)
    ("source", {"queueURL": SQS_URL}, "source", "sqs", lambda c: c.source, SourceKind.SQS),
    ("mode", sqs(), "mode", "job", lambda c: c.mode, Mode.JOB),
    ("queueLength", sqs(), "queueLength", "3", lambda c: c.queue_length, 3.0),
    ("activationQueueLength", sqs(), "activationQueueLength", "2", lambda c: c.activation_queue_length, 2.0),
    ("metricName", sqs(), "metricName", "my-metric", lambda c: c.metric_name, "my-metric"),
    ("queueURL", {"source": "sqs"}, "queueURL", SQS_URL, lambda c: c.sqs.queue_url, SQS_URL),
    ("awsRegion", sqs(), "awsRegion", "ap-south-1", lambda c: c.sqs.region, "ap-south-1"),
    (
        "awsEndpoint",
        sqs(),
        "awsEndpoint",
        "http://127.0.0.1:5000",
        lambda c: c.sqs.endpoint,
        "http://127.0.0.1:5000",
    ),
    ("scaleOnInFlight", sqs(), "scaleOnInFlight", "false", lambda c: c.sqs.scale_on_in_flight, False),
    ("scaleOnDelayed", sqs(), "scaleOnDelayed", "true", lambda c: c.sqs.scale_on_delayed, True),
    (
        "awsAccessKeyID",
        sqs(awsSecretAccessKey=SECRET),
        "awsAccessKeyID",
        "AKID",
        lambda c: c.sqs.access_key_id,
        "AKID",
    ),
    (
        "awsSecretAccessKey",
        sqs(awsAccessKeyID="AKID"),
        "awsSecretAccessKey",
        SECRET,
        lambda c: c.sqs.secret_access_key,
        SECRET,
    ),
    (
        "awsSessionToken",
        sqs(awsAccessKeyID="AKID", awsSecretAccessKey=SECRET),
        "awsSessionToken",
        SECRET,
        lambda c: c.sqs.session_token,
        SECRET,
    ),
    (
        "awsRoleArn",
        sqs(),
        "awsRoleArn",
        "arn:aws:iam::1:role/r",
        lambda c: c.sqs.role_arn,
        "arn:aws:iam::1:role/r",
    ),
    ("host", {"source": "rabbitmq", "queueName": "q"}, "host", AMQP_URL, lambda c: c.rabbitmq.url, AMQP_URL),
    (
        "queueName",
        {"source": "rabbitmq", "host": AMQP_URL},
        "queueName",
        "q1",
        lambda c: c.rabbitmq.queue_name,
        "q1",
    ),
    ("vhostName", rabbit(), "vhostName", "v", lambda c: c.rabbitmq.vhost, "v"),
    (
        "protocol",
        rabbit(host=HTTP_URL),
        "protocol",
        "http",
        lambda c: c.rabbitmq.protocol,
        RabbitProtocol.HTTP,
    ),
    (
        "excludeUnacknowledged",
        rabbit(host=HTTP_URL),
        "excludeUnacknowledged",
        "true",
        lambda c: c.rabbitmq.exclude_unacknowledged,
        True,
    ),
]


@pytest.mark.parametrize(
    ("base", "key", "value", "check", "expected"), [c[1:] for c in FROM_ENV], ids=[c[0] for c in FROM_ENV]
)
def test_every_key_accepted_as_key_and_as_key_from_env(
    base: dict[str, str], key: str, value: str, check: Check, expected: object
) -> None:
    plain = parse_trigger({**base, key: value})
    from_env = parse_trigger({**base, key + "FromEnv": value})
    assert check(plain) == expected
    assert check(from_env) == expected
    assert from_env == plain
    assert from_env.unknown_keys == ()
    # The same value under both names is not a conflict.
    assert check(parse_trigger({**base, key: value, key + "FromEnv": value})) == expected


def test_every_documented_key_is_covered_by_the_from_env_table() -> None:
    documented = {
        "source", "queueLength", "activationQueueLength", "mode", "metricName", "queueURL",
        "awsRegion", "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed", "awsAccessKeyID",
        "awsSecretAccessKey", "awsSessionToken", "awsRoleArn", "host", "queueName", "vhostName",
        "protocol", "excludeUnacknowledged",
    }  # fmt: skip
    assert {case[2] for case in FROM_ENV} == documented


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        (sqs(queueLength="3", queueLengthFromEnv="4"), "queueLength"),
        (sqs(mode="job", modeFromEnv="deployment"), "mode"),
        (sqs(awsRegion="us-east-1", awsRegionFromEnv="us-west-2"), "awsRegion"),
        (rabbit(hostFromEnv=f"amqp://user:other-{SECRET}@127.0.0.1/"), "host"),
        (
            sqs(awsAccessKeyID="AKID", awsSecretAccessKey=SECRET, awsSecretAccessKeyFromEnv=SECRET + "2"),
            "awsSecretAccessKey",
        ),
        (
            sqs_with_keys(awsSessionTokenFromEnv="other-" + SECRET),
            "awsSessionToken",
        ),
    ],
    ids=["queueLength", "mode", "awsRegion", "host", "awsSecretAccessKey", "awsSessionToken"],
)
def test_conflicting_key_and_key_from_env(metadata: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(metadata)
    assert info.value.key == key
    message = str(info.value)
    assert repr(key) in message
    assert repr(key + "FromEnv") in message
    assert "not both" in message
    assert SECRET not in message


def test_whitespace_around_a_value_is_not_a_conflict() -> None:
    cfg = parse_trigger(sqs(queueLength="3", queueLengthFromEnv=" 3 "))
    assert cfg.queue_length == 3.0


def test_an_empty_value_beside_its_from_env_twin_is_no_value() -> None:
    """A chart that renders `queueLength: ""` beside queueLengthFromEnv means the
    latter: only two values that differ conflict. An error names the key used."""
    assert parse_trigger(sqs(queueLength="", queueLengthFromEnv="3")).queue_length == 3.0
    assert parse_trigger(sqs(queueLength=" 3", queueLengthFromEnv=" ")).queue_length == 3.0
    with pytest.raises(ConfigError) as info:
        parse_trigger(sqs(queueLength="", queueLengthFromEnv="many"))
    assert info.value.key == "queueLengthFromEnv"


# --- bad values ----------------------------------------------------------------

BAD: list[tuple[str, dict[str, str], str, list[str]]] = [
    # (name, metadata, key named in the error, fragments of what is accepted)
    # without source, queueURL means SQS and queueName RabbitMQ (as in KEDA's own
    # triggers); with both, or neither, the source must be named
    (
        "source missing",
        {"queueURL": SQS_URL, "queueName": "jobs"},
        "source",
        ["'sqs'", "'rabbitmq'", "required"],
    ),
    # with GPU keys too: not taken for a GPU-only trigger that drops the queue named
    (
        "source missing, GPU keys",
        {
            "queueURL": SQS_URL,
            "queueName": "jobs",
            "prometheusServerAddress": "http://127.0.0.1:9090",
            "gpuSelector": 'pod="a"',
        },
        "source",
        ["'sqs'", "'rabbitmq'", "both queueURL and queueName"],
    ),
    (
        "source missing, arrivalQuery",
        {
            "queueURL": SQS_URL,
            "queueName": "jobs",
            "prometheusServerAddress": "http://127.0.0.1:9090",
            "arrivalQuery": "sum(rate(x[1m]))",
        },
        "source",
        ["'sqs'", "'rabbitmq'", "both queueURL and queueName"],
    ),
    ("source empty", sqs(source=" ", queueName="jobs"), "source", ["'sqs'", "'rabbitmq'", "required"]),
    ("source missing, no queue", {"host": AMQP_URL}, "source", ["'sqs'", "'rabbitmq'", "required"]),
    ("source unknown", sqs(source="kafka"), "source", ["'sqs'", "'rabbitmq'"]),
    ("mode unknown", sqs(mode="batch"), "mode", ["'deployment'", "'job'"]),
    ("queueLength zero", sqs(queueLength="0"), "queueLength", ["a number > 0"]),
    ("queueLength negative", sqs(queueLength="-1"), "queueLength", ["a number > 0"]),
    ("queueLength text", sqs(queueLength="five"), "queueLength", ["a number > 0"]),
    ("queueLength nan", sqs(queueLength="nan"), "queueLength", ["a number > 0"]),
    ("queueLength inf", sqs(queueLength="inf"), "queueLength", ["a number > 0"]),
    ("activation negative", sqs(activationQueueLength="-0.5"), "activationQueueLength", ["a number >= 0"]),
    ("activation text", sqs(activationQueueLength="x"), "activationQueueLength", ["a number >= 0"]),
    ("activation inf", sqs(activationQueueLength="inf"), "activationQueueLength", ["a number >= 0"]),
    # spellings Python's float() reads and KEDA's Go parsers refuse or read otherwise (ParseInt: '1_0')
    ("queueLength underscore", sqs(queueLength="1_0"), "queueLength", ["a number > 0"]),
    ("queueLength non-ASCII digit", sqs(queueLength="\u0665"), "queueLength", ["a number > 0"]),
    ("queueLength full-width digit", sqs(queueLength="\uff15"), "queueLength", ["a number > 0"]),
    ("queueLength infinity", sqs(queueLength="infinity"), "queueLength", ["a number > 0"]),
    (
        "coldStartSeconds non-ASCII",
        sqs(coldStartSeconds="\u0661\u0662\u0660"),
        "coldStartSeconds",
        ["seconds from 10 to 3600"],
    ),
    ("metricName uppercase", sqs(metricName="MyMetric"), "metricName", ["lowercase letters, digits and '-'"]),
    ("metricName underscore", sqs(metricName="my_metric"), "metricName", ["lowercase letters"]),
    ("metricName leading dash", sqs(metricName="-m"), "metricName", ["starting and ending"]),
    ("metricName trailing dash", sqs(metricName="m-"), "metricName", ["starting and ending"]),
    ("metricName too long", sqs(metricName="a" * 201), "metricName", ["at most 200 characters"]),
    ("queueURL missing", {"source": "sqs"}, "queueURL", ["SQS queue URL", "required"]),
    # (a bare name is a queue's short name, as in KEDA: see test_config_keda.py)
    ("queueURL not a URL", sqs(queueURL="jobs?x=1"), "queueURL", ["http(s) URL ending in /<account>/"]),
    ("queueURL ftp", sqs(queueURL="ftp://127.0.0.1/1/q"), "queueURL", ["http(s) URL"]),
    # a query or fragment would end up in the queue's name (and its metric's)
    ("queueURL query", sqs(queueURL=SQS_URL + "?x=1"), "queueURL", ["http(s) URL ending in /<account>/"]),
    ("queueURL fragment", sqs(queueURL=SQS_URL + "#f"), "queueURL", ["http(s) URL ending in /<account>/"]),
    (
        "queueURL without account",
        sqs(queueURL="https://sqs.us-east-1.amazonaws.com/jobs"),
        "queueURL",
        ["/<account>/<queue>"],
    ),
    ("queueURL bad IPv6", sqs(queueURL="https://[::1/1/q"), "queueURL", ["http(s) URL"]),
    ("queueURL bad port", sqs(queueURL="https://127.0.0.1:port/1/q"), "queueURL", ["http(s) URL"]),
    (
        "awsRegion not in the URL",
        sqs(queueURL="http://127.0.0.1:4566/000000000000/q"),
        "awsRegion",
        ["AWS region", "'us-east-1'", "required"],
    ),
    ("awsRegion malformed", sqs(awsRegion="US_EAST_1"), "awsRegion", ["AWS region", "'us-east-1'"]),
    ("awsEndpoint without scheme", sqs(awsEndpoint="127.0.0.1:4566"), "awsEndpoint", ["an http(s) URL"]),
    ("awsEndpoint ftp", sqs(awsEndpoint="ftp://127.0.0.1"), "awsEndpoint", ["an http(s) URL"]),
    ("awsEndpoint bad IPv6", sqs(awsEndpoint="http://[::1"), "awsEndpoint", ["an http(s) URL"]),
    ("scaleOnInFlight", sqs(scaleOnInFlight="maybe"), "scaleOnInFlight", ["true or false"]),
    ("scaleOnDelayed", sqs(scaleOnDelayed="2"), "scaleOnDelayed", ["true or false"]),
    (
        "awsAccessKeyID alone",
        sqs(awsAccessKeyID="AKID"),
        "awsSecretAccessKey",
        ["both awsAccessKeyID and awsSecretAccessKey, or neither"],
    ),
    (
        "awsSecretAccessKey alone",
        sqs(awsSecretAccessKey=SECRET),
        "awsAccessKeyID",
        ["both awsAccessKeyID and awsSecretAccessKey, or neither"],
    ),
    (
        "awsSessionToken alone",
        sqs(awsSessionToken=SECRET),
        "awsSessionToken",
        ["only together with awsAccessKeyID and awsSecretAccessKey"],
    ),
    ("awsRoleArn", sqs(awsRoleArn="reader"), "awsRoleArn", ["IAM role ARN", "arn:aws:iam::"]),
    ("host missing", {"source": "rabbitmq", "queueName": "q"}, "host", ["amqp://", "https://", "required"]),
    ("host scheme", rabbit(host=f"redis://u:{SECRET}@127.0.0.1/"), "host", ["amqp://, amqps://, http://"]),
    ("host without host", rabbit(host=f"amqp://u:{SECRET}@/"), "host", ["with a host"]),
    ("host bad IPv6", rabbit(host=f"amqp://u:{SECRET}@[::1/"), "host", ["amqp://"]),
    ("host bad port", rabbit(host=f"amqp://u:{SECRET}@127.0.0.1:five/"), "host", ["amqp://"]),
    ("host port out of range", rabbit(host=f"http://u:{SECRET}@127.0.0.1:99999/"), "host", ["amqp://"]),
    # pika loads the files ssl_options names from the scaler's pod (and shows its passphrase).
    (
        "host ssl_options",
        rabbit(
            host=f"amqps://u:{SECRET}@127.0.0.1:5671/%2F?heartbeat=30&ssl_options="
            f"{{'certfile':'/tls/tls.crt','keyfile':'/tls/tls.key','password':'{SECRET}'}}"
        ),
        "host",
        ["amqp:// or amqps:// URL without ssl_options", "files of its own pod", "heartbeat"],
    ),
    (
        "host ssl_options percent-encoded",
        rabbit(
            host=f"amqps://u:{SECRET}@127.0.0.1/?ssl%5Foptions=%7B%27ca_certs%27%3A%27%2Fetc%2Fhostname%27%7D"
        ),
        "host",
        ["without ssl_options"],
    ),
    (
        "host tcp_options",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?tcp_options={{'TCP_KEEPIDLE':60}}"),
        "host",
        ["without tcp_options", "socket options"],
    ),
    (
        "host client_properties",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?client_properties={{'x':'{SECRET}'}}"),
        "host",
        ["without client_properties"],
    ),
    (
        "host unknown query parameter",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?auth_mechanism={SECRET}"),
        "host",
        ["whose query, if any, sets only heartbeat, channel_max", "another parameter"],
    ),
    (
        "host query parameter twice",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?heartbeat=30&heartbeat=60"),
        "host",
        ["each once", "heartbeat more than once"],
    ),
    (
        "host query heartbeat",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?heartbeat={SECRET}"),
        "host",
        ["heartbeat a whole number >= 0"],
    ),
    (
        "host query frame_max",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?frame_max=1024"),
        "host",
        ["frame_max a whole number from 4096 to 131072"],
    ),
    (
        "host query socket_timeout",
        rabbit(host=f"amqp://u:{SECRET}@127.0.0.1/?socket_timeout=0"),
        "host",
        ["socket_timeout in seconds, a number > 0"],
    ),
    ("queueName missing", {"source": "rabbitmq", "host": AMQP_URL}, "queueName", ["queue name", "required"]),
    ("protocol unknown", rabbit(protocol="stomp"), "protocol", ["'auto'", "'amqp'", "'http'"]),
    ("protocol http for amqp://", rabbit(protocol="http"), "protocol", ["'auto' or 'amqp'", "amqp://"]),
    (
        "protocol amqp for http://",
        rabbit(host=HTTP_URL, protocol="amqp"),
        "protocol",
        ["'auto' or 'http'", "http://"],
    ),
    (
        "excludeUnacknowledged",
        rabbit(host=HTTP_URL, excludeUnacknowledged="x"),
        "excludeUnacknowledged",
        ["true or false"],
    ),
    (
        "excludeUnacknowledged with amqp",
        rabbit(excludeUnacknowledged="true"),
        "excludeUnacknowledged",
        ["false with the amqp protocol", "http://"],
    ),
]


@pytest.mark.parametrize(("metadata", "key", "accepted"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_value_names_the_key_and_what_is_accepted(
    metadata: dict[str, str], key: str, accepted: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(metadata)
    assert info.value.key == key
    message = str(info.value)
    assert f"metadata key {key!r}: expected " in message
    for fragment in accepted:
        assert fragment in message


BAD_PRESENT = [c for c in BAD if c[2] in c[1]]  # cases where the named key holds the bad value


@pytest.mark.parametrize(
    ("metadata", "key"), [(c[1], c[2]) for c in BAD_PRESENT], ids=[c[0] for c in BAD_PRESENT]
)
def test_bad_value_also_rejected_from_env(metadata: dict[str, str], key: str) -> None:
    # The same bad value arriving as keyFromEnv fails the same way, naming the key
    # as the user wrote it.
    moved = {k: v for k, v in metadata.items() if k != key}
    moved[key + "FromEnv"] = metadata[key]
    with pytest.raises(ConfigError) as info:
        parse_trigger(moved)
    assert info.value.key == key + "FromEnv"
    assert str(info.value).startswith(f"metadata key '{key}FromEnv': expected ")


def test_a_from_env_key_is_named_as_written_with_the_same_message() -> None:
    with pytest.raises(ConfigError) as plain:
        parse_trigger(sqs(queueLength="five"))
    with pytest.raises(ConfigError) as from_env:
        parse_trigger(sqs(queueLengthFromEnv="five"))
    assert str(from_env.value) == str(plain.value).replace("'queueLength'", "'queueLengthFromEnv'", 1)


def test_bad_value_is_echoed_when_it_is_not_a_secret() -> None:
    with pytest.raises(ConfigError, match=r"got 'five'"):
        parse_trigger(sqs(queueLength="five"))


@pytest.mark.parametrize("text", ["5", "+5", "5.", ".5", "5e0", "0.5E+1", "-0", "0005"])
def test_numbers_spelled_as_go_reads_them_are_accepted(text: str) -> None:
    assert parse_trigger(sqs(activationQueueLength=text)).activation_queue_length == float(text)


# --- secrets -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["host", "awsSecretAccessKey", "password", "prometheusServerAddress"])
def test_an_oversized_value_is_refused_by_its_length_never_quoted(key: str) -> None:
    value = f"amqp://user:{SECRET}@127.0.0.1:5672/" + "x" * MAX_VALUE_LENGTH
    with pytest.raises(ConfigError) as info:
        parse_trigger({**rabbit(), key: value})
    assert info.value.key == key
    assert f"at most {MAX_VALUE_LENGTH} characters, not {len(value)}" in str(info.value)
    assert SECRET not in str(info.value) and "user:" not in str(info.value)


@pytest.mark.parametrize(("metadata", "key"), [(c[1], c[2]) for c in BAD], ids=[c[0] for c in BAD])
def test_no_secret_in_any_error(metadata: dict[str, str], key: str) -> None:
    # Plant credentials next to every bad value (where the source allows them).
    planted = dict(metadata)
    if planted.get("source") == "sqs" and not any(k.startswith("aws") and k != "awsRegion" for k in planted):
        planted.update(awsAccessKeyID="AKID", awsSecretAccessKey=SECRET, awsSessionToken=SECRET)
    with pytest.raises(ConfigError) as info:
        parse_trigger(planted)
    assert info.value.key == key
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in str(info.value.__cause__ or "")


@pytest.mark.parametrize(
    "metadata",
    [
        sqs_with_keys(awsRoleArn="arn:aws:iam::1:role/r"),
        rabbit(),
        rabbit(host=HTTP_URL, vhostName="v"),
        {"source": "rabbitmq", "hostFromEnv": AMQP_URL, "queueName": "orders"},
    ],
    ids=["sqs keys", "amqp", "http", "hostFromEnv"],
)
def test_no_secret_in_config_repr_or_description(metadata: dict[str, str]) -> None:
    cfg = parse_trigger(metadata)
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg)
    # The source's description is what every error message and log line names.
    source = SourceFactory(timeout=1.0).queue_source(cfg)
    assert source is not None
    assert SECRET not in source.description
    if cfg.rabbitmq is not None:
        assert SECRET not in cfg.rabbitmq.safe_url
        assert cfg.rabbitmq.safe_url.startswith(("amqp://127.0.0.1", "http://127.0.0.1"))
        assert source.description.startswith("rabbitmq queue 'orders' (vhost ")
        assert source.description.endswith(f" at {cfg.rabbitmq.safe_url}")
    if cfg.sqs is not None:
        assert "AKIDEXAMPLE" not in repr(cfg) and "AKIDEXAMPLE" not in source.description
        assert source.description.startswith("sqs queue 'jobs'")


def test_credential_identity_differs_by_credentials_without_holding_them() -> None:
    a = parse_trigger(sqs_with_keys()).sqs
    b = parse_trigger(sqs(awsAccessKeyID="AKIDEXAMPLE", awsSecretAccessKey="other")).sqs
    none = parse_trigger(sqs()).sqs
    assert a is not None and b is not None and none is not None
    assert len({a.credential_identity(), b.credential_identity(), none.credential_identity()}) == 3
    assert SECRET not in a.credential_identity()
    r1 = parse_trigger(rabbit()).rabbitmq
    r2 = parse_trigger(rabbit(host="amqp://user:other@127.0.0.1:5672/")).rabbitmq
    assert r1 is not None and r2 is not None
    assert r1.credential_identity() != r2.credential_identity()


# --- KEDA's keys and unknown keys ----------------------------------------------


def test_keda_own_keys_are_ignored() -> None:
    keda = {
        "scalerAddress": "prewarm.keda:6000",
        "enableTLS": "true",
        "unsafeSsl": "false",
        "caCert": "-----BEGIN CERTIFICATE-----",
        "tlsClientCert": "cert",
        "tlsClientKey": "key",
        "tlsCertFile": "/certs/tls.crt",
    }
    assert set(keda) == set(KEDA_OWN_KEYS)
    assert parse_trigger(sqs(**keda)) == parse_trigger(sqs())
    assert parse_trigger(rabbit(**keda)).unknown_keys == ()


@pytest.mark.parametrize(
    ("metadata", "unknown"),
    [
        (sqs(queueLenght="3"), ("queueLenght",)),
        (sqs(zeta="1", alpha="2"), ("alpha", "zeta")),
        (sqs(queueLengthFromEnvv="3"), ("queueLengthFromEnvv",)),
        (sqs(queueName="q"), ("queueName",)),  # a RabbitMQ key on an SQS trigger does nothing
        (rabbit(awsRegion="us-east-1"), ("awsRegion",)),  # and the other way round
        (rabbit(scalerAddress="x:6000", hots="y"), ("hots",)),
    ],
    ids=["typo", "sorted", "FromEnv typo", "rabbit key on sqs", "sqs key on rabbit", "with keda keys"],
)
def test_unknown_keys_are_reported(metadata: dict[str, str], unknown: tuple[str, ...]) -> None:
    cfg = parse_trigger(metadata)
    assert cfg.unknown_keys == unknown


# --- vhost ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "vhost_name", "vhost"),
    [
        ("amqp://u:p@127.0.0.1:5672", None, "/"),
        ("amqp://u:p@127.0.0.1:5672/", None, "/"),
        ("amqp://u:p@127.0.0.1:5672/%2F", None, "/"),
        ("amqp://u:p@127.0.0.1:5672/tenant", None, "tenant"),
        ("amqp://u:p@127.0.0.1:5672/tenant", "other", "other"),
        ("http://u:p@127.0.0.1:15672", None, "/"),
        ("http://u:p@127.0.0.1:15672/", None, "/"),
        ("http://u:p@127.0.0.1:15672/tenant", None, "tenant"),
        ("http://u:p@127.0.0.1:15672/", "tenant", "tenant"),
        # behind a path prefix: the last segment is the vhost (KEDA's convention)
        ("https://u:p@example.test/rabbitmq/", None, "/"),
        ("https://u:p@example.test/rabbitmq/tenant", None, "tenant"),
        ("https://u:p@example.test/ops/rabbitmq/a%2Fb", None, "a/b"),
        ("https://u:p@example.test/rabbitmq/tenant", "other", "other"),
    ],
)
def test_vhost_from_url_or_vhost_name(host: str, vhost_name: str | None, vhost: str) -> None:
    extra = {"vhostName": vhost_name} if vhost_name is not None else {}
    cfg = parse_trigger(rabbit(host=host, **extra))
    assert cfg.rabbitmq is not None
    assert rabbit_vhost(cfg.rabbitmq) == vhost


@pytest.mark.parametrize(
    ("host", "prefix"),
    [
        ("http://u:p@127.0.0.1:15672", ""),
        ("http://u:p@127.0.0.1:15672/", ""),
        ("http://u:p@127.0.0.1:15672/tenant", ""),
        ("https://u:p@example.test/rabbitmq/", "/rabbitmq"),
        ("https://u:p@example.test/rabbitmq/tenant", "/rabbitmq"),
        ("https://u:p@example.test/ops/rabbitmq/%2F", "/ops/rabbitmq"),
    ],
)
def test_management_api_path_prefix(host: str, prefix: str) -> None:
    cfg = parse_trigger(rabbit(host=host))
    assert cfg.rabbitmq is not None
    assert rabbit_http_prefix(cfg.rabbitmq) == prefix


@pytest.mark.parametrize(
    "metadata",
    [
        {"source": "rabbitmq", "host": "amqp://user:12/S3cretX@127.0.0.1:5672/", "queueName": "q"},
        {"source": "rabbitmq", "host": "http://user:99?S3cretX@127.0.0.1:15672/", "queueName": "q"},
        {"source": "rabbitmq", "host": "amqp://user:pa#S3cretX@127.0.0.1/", "queueName": "q"},
        {"prometheusServerAddress": "http://user:x/S3cretX@127.0.0.1:9090", "gpuSelector": 'pod="a"'},
        {"prometheusServerAddress": "http://[::1", "gpuSelector": 'pod="a"'},
    ],
    ids=["slash", "question-mark", "hash", "prometheus-slash", "prometheus-bad-ipv6"],
)
def test_a_password_that_would_end_the_host_early_is_rejected_unechoed(metadata: dict[str, str]) -> None:
    # urlsplit would read "user:12" as the host and the rest as a path: the password
    # would then show in every error message. It must be percent-encoded instead.
    key = "host" if "host" in metadata else "prometheusServerAddress"
    with pytest.raises(ConfigError) as caught:
        parse_trigger(metadata)
    assert caught.value.key == key
    assert "S3cret" not in str(caught.value)


def test_a_percent_encoded_password_is_accepted_and_redacted() -> None:
    cfg = parse_trigger(
        {"source": "rabbitmq", "host": "amqp://user:12%2FS3cretX@127.0.0.1:5672/v", "queueName": "q"}
    )
    assert cfg.rabbitmq is not None
    assert cfg.rabbitmq.safe_url == "amqp://127.0.0.1:5672/v"
    assert "S3cret" not in repr(cfg)


def test_redact_url_never_raises_on_a_malformed_url() -> None:
    assert redact_url("http://u:p@[::1") == "<malformed URL>"


# --- the AMQP host URL's query (pika's URL parameters) ---------------------------


def test_an_amqp_host_query_that_only_tunes_the_connection_is_kept_and_pika_reads_it() -> None:
    import pika

    query = (
        "heartbeat=30&channel_max=100&frame_max=131072&locale=en_US&connection_attempts=3"
        "&socket_timeout=5&stack_timeout=10.5&blocked_connection_timeout=0&retry_delay=2"
    )
    host = f"amqps://user:{SECRET}@127.0.0.1:5671/%2F?{query}"
    cfg = parse_trigger(rabbit(host=host)).rabbitmq
    assert cfg is not None
    assert cfg.url == host  # handed to pika as written
    params = pika.URLParameters(cfg.url)  # every accepted name is one pika knows
    assert (params.heartbeat, params.channel_max, params.frame_max) == (30, 100, 131072)


def test_a_query_is_left_as_it_is_for_a_management_api_url() -> None:
    # The management API source builds its own URL and never sends the host's query.
    cfg = parse_trigger(rabbit(host=f"http://user:{SECRET}@127.0.0.1:15672/?ssl_options=x")).rabbitmq
    assert cfg is not None and cfg.protocol is RabbitProtocol.HTTP


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"amqps://user:{SECRET}@127.0.0.1:5671/%2F?ssl_options={{'password':'{SECRET}'}}",
            "amqps://127.0.0.1:5671/%2F?...",
        ),
        (f"amqp://127.0.0.1/v?password={SECRET}", "amqp://127.0.0.1/v?..."),
        (f"http://127.0.0.1:15672/v#{SECRET}", "http://127.0.0.1:15672/v#..."),
        ("amqp://user:p@127.0.0.1:5672/v", "amqp://127.0.0.1:5672/v"),
        ("amqp://127.0.0.1:5672/v", "amqp://127.0.0.1:5672/v"),
    ],
)
def test_the_url_shown_in_errors_and_logs_never_shows_a_query_or_fragment(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_safe_url_keeps_the_amqp_query_out_of_every_description() -> None:
    cfg = parse_trigger(rabbit(host=f"amqp://user:{SECRET}@127.0.0.1:5672/%2F?heartbeat=30&locale={SECRET}"))
    assert cfg.rabbitmq is not None
    assert cfg.rabbitmq.safe_url == "amqp://127.0.0.1:5672/%2F?..."
    source = SourceFactory(timeout=1.0).queue_source(cfg)
    assert source is not None and SECRET not in source.description
