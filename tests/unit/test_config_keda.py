"""KEDA's own trigger metadata for its built-in `rabbitmq` and `aws-sqs-queue`
scalers, parsed as an external trigger: moving a trigger to Prewarm is
`type: external` plus `scalerAddress` (config.parse_trigger)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from scaler.config import (
    ConfigError,
    Mode,
    RabbitMeasure,
    RabbitProtocol,
    SourceKind,
    TriggerConfig,
    parse_trigger,
)

SCALER = {"scalerAddress": "prewarm.prewarm.svc.cluster.local:6000"}
# KEDA's examples take `host` from a TriggerAuthentication, which KEDA does not
# forward to external scalers: moved over, it comes from the worker's
# environment (hostFromEnv), resolved by KEDA to values like these.
AMQP_HOST = "amqp://guest:Pa55-word@rabbitmq.default.svc:5672/vhost"
HTTP_HOST = "http://guest:Pa55-word@rabbitmq.default.svc:15672/path/vhost"
SQS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/myQueue"


def external(metadata: dict[str, str], **resolved: str) -> TriggerConfig:
    return parse_trigger({**SCALER, **metadata, **resolved})


# The trigger metadata of the examples in KEDA's documentation, unchanged:
# kedacore/keda-docs (a55c5d34) content/docs/2.21/scalers/rabbitmq-queue.md,
# "Configuration examples" (Apache-2.0).
KEDA_RABBITMQ_EXAMPLES = [
    # AMQP protocol / AMQP with username and password / AMQPS with TLS
    ("amqp", {"protocol": "amqp", "queueName": "testqueue", "mode": "QueueLength", "value": "20"}, AMQP_HOST),
    # HTTP protocol (with QueueLength trigger)
    ("http", {"protocol": "http", "queueName": "testqueue", "mode": "QueueLength", "value": "20"}, HTTP_HOST),
    # HTTP protocol (with MessageRate and QueueLength triggers): the second trigger
    (
        "http rate",
        {"protocol": "http", "queueName": "testqueue", "mode": "MessageRate", "value": "100"},
        HTTP_HOST,
    ),
]


@pytest.mark.parametrize(
    ("name", "metadata", "host"), KEDA_RABBITMQ_EXAMPLES, ids=[e[0] for e in KEDA_RABBITMQ_EXAMPLES]
)
def test_kedas_documented_rabbitmq_examples_parse(name: str, metadata: dict[str, str], host: str) -> None:
    cfg = external(metadata, hostFromEnv=host)
    assert cfg.source is SourceKind.RABBITMQ  # from queueName: no `source` needed
    assert cfg.mode is Mode.DEPLOYMENT
    assert cfg.rabbitmq is not None
    assert cfg.rabbitmq.queue_name == "testqueue"
    assert cfg.rabbitmq.protocol is RabbitProtocol(metadata["protocol"])
    assert cfg.rabbitmq.measure is RabbitMeasure(metadata["mode"])
    assert cfg.queue_length == float(metadata["value"])
    assert cfg.activation_queue_length == 0.0
    assert cfg.unknown_keys == ()


def test_kedas_rabbitmq_trigger_specification_parses() -> None:
    # The "Trigger Specification" block of the same page, with the keys Prewarm
    # takes (host given once; `unsafeSsl` is KEDA's own key; `timeout` is
    # KEDA's per-trigger HTTP timeout, where Prewarm has --source-timeout).
    cfg = external(
        {
            "protocol": "auto",
            "mode": "QueueLength",
            "value": "100.50",
            "activationValue": "10.5",
            "queueName": "testqueue",
            "vhostName": "/",
            "hostFromEnv": "amqp://rabbitmq.default.svc:5672/ignored",
            "usernameFromEnv": "keda-user",
            "passwordFromEnv": "p@ss/w:rd#1",
            "unsafeSsl": "true",
        }
    )
    assert cfg.rabbitmq is not None
    assert cfg.queue_length == 100.5 and cfg.activation_queue_length == 10.5
    assert cfg.rabbitmq.protocol is RabbitProtocol.AMQP and cfg.rabbitmq.vhost == "/"
    # username/password replace the host's, percent-encoded so the URL stays one URL
    parts = urlsplit(cfg.rabbitmq.url)
    assert (parts.hostname, parts.port, parts.path) == ("rabbitmq.default.svc", 5672, "/ignored")
    assert (parts.username, parts.password) == ("keda-user", "p%40ss%2Fw%3Ard%231")
    assert "p@ss" not in repr(cfg) and "p@ss" not in cfg.rabbitmq.safe_url


def test_kedas_regex_example_is_refused_naming_use_regex() -> None:
    # "HTTP protocol (with QueueLength trigger) and enabled useRegex", same page
    metadata = {
        "protocol": "http",
        "queueName": "^.*incoming$",
        "mode": "QueueLength",
        "value": "20",
        "useRegex": "true",
        "operation": "max",
    }
    with pytest.raises(ConfigError) as info:
        external(metadata, hostFromEnv=HTTP_HOST)
    assert info.value.key == "useRegex" and "its own trigger" in str(info.value)
    # without useRegex, KEDA ignores operation (and pageSize): known keys, not typos
    plain = external({**metadata, "queueName": "incoming", "useRegex": "false"}, hostFromEnv=HTTP_HOST)
    assert plain.unknown_keys == ()
    assert external(
        {**metadata, "useRegex": "false", "pageSize": "50", "timeout": "1000"}, hostFromEnv=HTTP_HOST
    ).unknown_keys == ("timeout",)


# kedacore/keda-docs (a55c5d34) content/docs/2.21/scalers/aws-sqs.md: the trigger
# specification (with identityOwner's two values) and the examples' metadata,
# which name the queue by its short name (the source looks its URL up). The
# last example writes `scaleOnInFlight: false` unquoted; Kubernetes takes only
# strings there, so it is quoted here.
DOCS_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/account_id/QueueName"
KEDA_SQS_EXAMPLES = [
    (
        "specification, pod",
        {"queueURL": DOCS_QUEUE_URL, "queueLength": "5", "awsRegion": "eu-west-1", "identityOwner": "pod"},
        "QueueName",
    ),
    (
        "specification, operator",
        {
            "queueURL": DOCS_QUEUE_URL,
            "queueLength": "5",
            "awsRegion": "eu-west-1",
            "identityOwner": "operator",
        },
        "QueueName",
    ),
    (
        "podIdentity / IAM role / IAM user",
        {"queueURL": "myQueue", "queueLength": "5", "awsRegion": "eu-west-1"},
        "myQueue",
    ),
    (
        "ApproximateNumberOfMessages only",
        {"queueURL": "myQueue", "queueLength": "5", "awsRegion": "eu-west-1", "scaleOnInFlight": "false"},
        "myQueue",
    ),
]


@pytest.mark.parametrize(
    ("name", "metadata", "queue"), KEDA_SQS_EXAMPLES, ids=[e[0] for e in KEDA_SQS_EXAMPLES]
)
def test_kedas_documented_sqs_examples_parse(name: str, metadata: dict[str, str], queue: str) -> None:
    cfg = external(metadata)
    assert cfg.source is SourceKind.SQS  # from queueURL: no `source` needed
    assert cfg.sqs is not None and cfg.sqs.region == "eu-west-1" and cfg.sqs.queue_name == queue
    assert cfg.queue_length == 5.0 and cfg.activation_queue_length == 0.0
    assert cfg.sqs.scale_on_in_flight is (metadata.get("scaleOnInFlight") != "false")
    assert cfg.sqs.scale_on_delayed is False
    assert cfg.unknown_keys == ()


def test_kedas_sqs_examples_with_the_queues_short_name_parse() -> None:
    # The examples' own form (`queueURL: myQueue`): the source looks the URL up.
    cfg = external({"queueURL": "myQueue", "queueLength": "5", "awsRegion": "eu-west-1"})
    assert cfg.sqs is not None and cfg.sqs.is_name_only and cfg.sqs.queue_name == "myQueue"
    assert cfg.sqs.region == "eu-west-1" and cfg.queue_length == 5.0
    assert external({"queueURL": "jobs.fifo", "awsRegion": "eu-west-1"}).sqs.is_name_only  # type: ignore[union-attr]
    assert not external({"queueURL": SQS_URL}).sqs.is_name_only  # type: ignore[union-attr]
    # a name has no host to take the region from
    with pytest.raises(ConfigError) as info:
        external({"queueURL": "myQueue"})
    assert info.value.key == "awsRegion" and "queue's name" in str(info.value)
    with pytest.raises(ConfigError) as info:
        external({"queueURL": "my queue!", "awsRegion": "eu-west-1"})
    assert info.value.key == "queueURL" and "or the queue's name" in str(info.value)


@pytest.mark.parametrize(
    ("metadata", "queue_length", "activation"),
    [
        # KEDA's defaults, source by source: aws-sqs-queue 5, rabbitmq 20 (value),
        # activation 0; scaleOnInFlight true and scaleOnDelayed false for SQS
        ({"queueURL": SQS_URL}, 5.0, 0.0),
        ({"queueName": "q", "host": AMQP_HOST}, 20.0, 0.0),
        # KEDA's deprecated rabbitmq queueLength still means the target
        ({"queueName": "q", "host": AMQP_HOST, "queueLength": "7"}, 7.0, 0.0),
        ({"queueName": "q", "host": AMQP_HOST, "queueLength": "7", "activationValue": "3"}, 7.0, 3.0),
        ({"queueName": "q", "host": AMQP_HOST, "mode": "job", "activationValue": "2"}, 20.0, 2.0),
        ({"queueURL": SQS_URL, "activationQueueLength": "4"}, 5.0, 4.0),
    ],
)
def test_defaults_are_kedas(metadata: dict[str, str], queue_length: float, activation: float) -> None:
    cfg = external(metadata)
    assert (cfg.queue_length, cfg.activation_queue_length) == (queue_length, activation)
    if cfg.sqs is not None:
        assert cfg.sqs.scale_on_in_flight is True and cfg.sqs.scale_on_delayed is False


@pytest.mark.parametrize(
    ("metadata", "key", "says"),
    [
        # KEDA's modes are spelled as KEDA spells them (KEDA itself refuses others)
        ({"mode": "queuelength", "value": "5"}, "mode", "'QueueLength'"),
        ({"mode": "MESSAGERATE", "value": "5"}, "mode", "'MessageRate'"),
        # KEDA's other modes are not supported, and said so
        ({"mode": "DeliverGetRate", "value": "5"}, "mode", "DeliverGetRate is not supported"),
        ({"mode": "ExpectedQueueConsumptionTime", "value": "5"}, "mode", "is not supported"),
        # as in KEDA: value is required with mode, and queueLength is refused with it
        ({"mode": "QueueLength"}, "value", "required with mode QueueLength"),
        ({"mode": "QueueLength", "value": "5", "queueLength": "5"}, "queueLength", "use value"),
        ({"mode": "QueueLength", "value": "0"}, "value", "a number > 0"),
        ({"mode": "QueueLength", "value": "-3"}, "value", "a number > 0"),
        # value without KEDA's mode would silently mean nothing
        ({"value": "5"}, "value", "only with mode 'QueueLength' or 'MessageRate'"),
        ({"mode": "job", "value": "5"}, "value", "otherwise queueLength"),
        ({"activationValue": "1", "activationQueueLength": "1"}, "activationValue", "either"),
        # MessageRate needs the management API (as in KEDA)
        ({"mode": "MessageRate", "value": "5", "protocol": "amqp"}, "mode", "http:// management URL"),
        ({"usernameFromEnv": "u"}, "password", "both username and password"),
        ({"useRegex": "maybe"}, "useRegex", "true or false"),
    ],
)
def test_kedas_rabbitmq_keys_are_checked(metadata: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        external({"queueName": "q", "host": AMQP_HOST, **metadata})
    assert info.value.key == key
    assert says in str(info.value)
    assert "Pa55-word" not in str(info.value)


def test_kedas_rabbitmq_modes_apply_only_to_rabbitmq() -> None:
    with pytest.raises(ConfigError) as info:
        external({"queueURL": SQS_URL, "mode": "QueueLength", "value": "5"})
    assert info.value.key == "mode" and "KEDA's rabbitmq modes" in str(info.value)


def test_our_modes_keep_working_in_any_case() -> None:
    assert external({"queueName": "q", "host": AMQP_HOST, "mode": "Job"}).mode is Mode.JOB
    cfg = external({"queueName": "q", "host": HTTP_HOST, "mode": "deployment", "queueLength": "2"})
    assert cfg.mode is Mode.DEPLOYMENT and cfg.rabbitmq is not None
    assert cfg.rabbitmq.measure is RabbitMeasure.QUEUE_LENGTH and cfg.queue_length == 2.0


@pytest.mark.parametrize(
    ("metadata", "key", "says"),
    [
        ({"identityOwner": "node"}, "identityOwner", "'pod' or 'operator'"),
        (
            {"identityOwner": "operator", "awsAccessKeyID": "AKID", "awsSecretAccessKey": "Pa55-word"},
            "identityOwner",
            "scaler's own AWS identity",
        ),
        ({"identityOwner": "operator", "awsRoleArn": "arn:aws:iam::1:role/r"}, "identityOwner", "'pod'"),
    ],
)
def test_kedas_sqs_keys_are_checked(metadata: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        external({"queueURL": SQS_URL, **metadata})
    assert info.value.key == key and says in str(info.value)
    assert "Pa55-word" not in str(info.value)


def test_source_is_still_needed_when_the_keys_do_not_say_which() -> None:
    with pytest.raises(ConfigError) as info:
        external({"queueURL": SQS_URL, "queueName": "q", "host": AMQP_HOST})
    assert info.value.key == "source"
    assert external(
        {"source": "rabbitmq", "queueURL": SQS_URL, "queueName": "q", "host": AMQP_HOST}
    ).source is (SourceKind.RABBITMQ)
