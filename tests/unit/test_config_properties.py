"""Property-based tests of the metadata parser: whatever map KEDA forwards, the
parser answers with a TriggerConfig or a short ConfigError naming a key, and a
config it accepts never makes the decision produce a number KEDA cannot carry.

Bounded (a few hundred examples, no deadline) so they take a few seconds."""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler import config
from scaler.config import (
    MAX_KEY_LENGTH,
    MAX_KEYS,
    MAX_NUMBER,
    MAX_QUOTED,
    MAX_VALUE_LENGTH,
    ConfigError,
    parse_trigger,
)
from scaler.policy import Signals, decide
from scaler.signals.base import GpuReading, QueueReading

# The longest error message: the accepted values of the wordiest key, plus a key and
# a value each cut to MAX_QUOTED. Far below gRPC clients' 8-16 kB header limits.
MAX_MESSAGE = 1_000
INT64_MAX = 2**63 - 1

KEYS = [
    "source", "queueLength", "activationQueueLength", "mode", "metricName", "value", "activationValue",
    "queueURL", "awsRegion", "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed", "awsAccessKeyID",
    "awsSecretAccessKey", "awsSessionToken", "awsRoleArn", "identityOwner", "host", "queueName",
    "vhostName", "protocol", "excludeUnacknowledged", "useRegex", "username", "password",
    "prometheusServerAddress", "gpuQuery", "gpuSelector", "gpuRole", "gpusPerReplica",
    "gpuTargetUtilization", "gpuActivationUtilization", "prometheusUsername", "prometheusPassword",
    "prometheusBearerToken", "unsafeSsl", "scalerAddress", "forecast", "coldStartSeconds",
    "coldStartQuery", "arrivalQuery", "replicaThroughput", "forecastQuantile", "maxPrewarmJobs",
]  # fmt: skip

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        ["0", "1", "5", "1e-300", "1e300", "1e9", "1e10", "0.0001", "-0", "2%", "75 %", "²", "١٢", "9" * 5000]
    ),
)
URLS = st.builds(
    "{}://{}{}:{}/{}".format,
    st.sampled_from(["amqp", "amqps", "http", "https", "ftp", ""]),
    st.sampled_from(["", "user:pass@", "u:p%2F@", "u:p/@", "@"]),
    st.sampled_from(["127.0.0.1", "[::1]", "[::1", "localhost", ""]),
    st.sampled_from(["5672", "15672", "0", "99999", "x"]),
    st.text(alphabet=string.ascii_letters + "%/", max_size=8),
)
WORDS = st.sampled_from(
    ["sqs", "rabbitmq", "deployment", "job", "true", "false", "demand", "guard", "amqp", "http",
     "auto", "QueueLength", "MessageRate", "pod", "operator", "https://sqs.us-east-1.amazonaws.com/1/q",
     'namespace="ai"', "sum(DCGM_FI_DEV_GPU_UTIL)", "arn:aws:iam::1:role/r", "us-east-1"]
)  # fmt: skip
# Long values without generating them character by character.
LONG = st.builds(lambda c, n: c * n, st.sampled_from(["a", "7", "é", "%", "\x00"]), st.integers(1, 80_000))
VALUES = st.one_of(NUMBERS, URLS, WORDS, st.text(max_size=30), LONG)
KEY_NAMES = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).map(lambda k: k + "FromEnv"),
    st.text(max_size=20),
    st.builds(lambda n: "k" * n, st.integers(1, 5_000)),
)
# Valid triggers, each with some keys overridden: reaches the checks behind the first error.
BASES = st.sampled_from(
    [
        {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"},
        {"source": "rabbitmq", "host": "amqp://u:p@127.0.0.1:5672/", "queueName": "q"},
        {"source": "rabbitmq", "host": "http://u:p@127.0.0.1:15672/", "queueName": "q", "mode": "job"},
        {"prometheusServerAddress": "http://127.0.0.1:9090", "gpuSelector": 'namespace="ai"'},
    ]
)
NUMERIC_KEYS = st.sampled_from(
    ["queueLength", "activationQueueLength", "value", "activationValue", "gpusPerReplica",
     "gpuTargetUtilization", "gpuActivationUtilization", "coldStartSeconds", "replicaThroughput",
     "forecastQuantile", "maxPrewarmJobs"]
)  # fmt: skip
OVERRIDES = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), st.one_of(NUMBERS, VALUES), max_size=3),
    st.dictionaries(NUMERIC_KEYS, NUMBERS, min_size=1, max_size=2),
)
METADATA = st.one_of(
    st.dictionaries(KEY_NAMES, VALUES, max_size=12),
    st.builds(lambda base, extra: {**base, **extra}, BASES, OVERRIDES),
)

SETTINGS = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _short_enough(error: ConfigError) -> None:
    message = str(error)
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:300]}..."
    assert message.startswith(("metadata key ", "metadata: expected at most")), message


@SETTINGS
@given(METADATA)
def test_any_metadata_parses_or_fails_with_a_short_config_error(metadata: dict[str, str]) -> None:
    try:
        cfg = parse_trigger(metadata)
    except ConfigError as exc:
        _short_enough(exc)
        return
    assert 0 < cfg.queue_length <= MAX_NUMBER
    assert 0 <= cfg.activation_queue_length <= MAX_NUMBER
    assert config.METRIC_NAME_RE.fullmatch(cfg.metric_name)
    assert all(len(k) <= MAX_KEY_LENGTH for k in cfg.unknown_keys)


@SETTINGS
@given(
    METADATA,
    st.floats(min_value=1, max_value=1e12),
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e12)),
    st.floats(min_value=0, max_value=1e6),
)
def test_an_accepted_config_never_yields_a_value_keda_cannot_carry(
    metadata: dict[str, str], waiting: float, in_flight: float | None, busy: float
) -> None:
    """Readings of 1 to a trillion messages and up to a million busy GPUs: the metric is a
    finite float and its int64 twin fits (an overflow would be an INTERNAL error)."""
    try:
        cfg = parse_trigger(metadata)
    except ConfigError:
        return
    signals = Signals(
        queue=QueueReading(waiting, in_flight) if cfg.source is not None else None,
        gpu=GpuReading(busy, 1) if cfg.gpu is not None else None,
    )
    decision = decide(signals, cfg, now=0.0)
    assert math.isfinite(decision.desired) and decision.desired >= 0
    assert 0 <= decision.metric_value <= INT64_MAX


JOB = {"source": "rabbitmq", "host": "http://u:p@127.0.0.1:15672/", "queueName": "q", "mode": "job"}


@pytest.mark.parametrize(
    ("metadata", "key", "says"),
    [
        ({"source": "sqs", "queueLength": "1" * 70_000}, "queueLength", "at most"),
        ({"source": "rabbitmq", "host": "amqp://127.0.0.1/", "queueName": "q" * 70_000}, "queueName",
         "at most"),
        ({"source": "sqs", "k" * 70_000: "x"}, "k" * (MAX_QUOTED - 3), "at most"),
        ({"source": "sqs", **{f"key{i}": "x" for i in range(MAX_KEYS + 1)}}, "", f"at most {MAX_KEYS} keys"),
        ({"source": "sqs", "queueLength": "1e-300"}, "queueLength", "at least 0.001"),
        ({"source": "sqs", "queueLength": "1e300"}, "queueLength", f"at most {MAX_NUMBER:g}"),
        ({"source": "rabbitmq", "activationQueueLength": "1e10"}, "activationQueueLength", "at most"),
        ({"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q", "metricName": "m" * 300},
         "metricName", "at most 200"),
        ({**JOB, "maxPrewarmJobs": "9" * 5000}, "maxPrewarmJobs", "at most 1e+09"),
        ({**JOB, "maxPrewarmJobs": "²"}, "maxPrewarmJobs", "a whole number >= 0"),
    ],
    ids=["long-number", "long-value", "long-key", "too-many-keys", "tiny-target", "huge-target",
         "huge-activation", "long-metric-name", "long-whole-number", "non-ascii-digit"],
)  # fmt: skip
def test_oversized_metadata_and_absurd_numbers_get_a_short_error(
    metadata: dict[str, str], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(metadata)
    _short_enough(info.value)
    message = str(info.value)
    assert key[:40] in message and says in message, message
    assert len(message) < 400, message


SQS = {"source": "sqs", "queueURL": "https://sqs.us-east-1.amazonaws.com/1/q"}


def test_a_quoted_value_is_cut_to_a_readable_length_saying_how_long_it_was() -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger({**SQS, "mode": "x" * 5000})
    message = str(info.value)
    assert "'" + "x" * (MAX_QUOTED - 3) + "...' (5000 characters)" in message, message
    assert "x" * (MAX_QUOTED + 1) not in message
    # A short value is quoted whole, as before.
    with pytest.raises(ConfigError, match=r"got 'sideways'$"):
        parse_trigger({**SQS, "mode": "sideways"})


def test_limits_are_generous_for_real_metadata() -> None:
    query = "sum(DCGM_FI_DEV_GPU_UTIL{" + ",".join(f'l{i}="v{i}"' for i in range(300)) + "}) / 100"
    assert len(query) < MAX_VALUE_LENGTH
    cfg = parse_trigger({"prometheusServerAddress": "http://127.0.0.1:9090", "gpuQuery": query})
    assert cfg.gpu is not None
