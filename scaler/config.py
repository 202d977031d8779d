"""Trigger metadata (KEDA's `scalerMetadata`) → a typed, validated TriggerConfig.

Every key is accepted as `key` and as `keyFromEnv` (KEDA resolves the latter from
the scale target's environment and forwards it under the same name). Errors name
the key and what is accepted; they never echo a value that may hold a secret.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

DEFAULT_QUEUE_LENGTH = 5.0  # SQS: KEDA's aws-sqs-queue default
# RabbitMQ: KEDA's rabbitmq default (defaultRabbitMQQueueLength), so a trigger
# moved from KEDA's built-in scaler gets the same replicas.
DEFAULT_RABBITMQ_QUEUE_LENGTH = 20.0
DEFAULT_ACTIVATION_QUEUE_LENGTH = 0.0
DEFAULT_GPU_TARGET_UTILIZATION = 75.0
DEFAULT_GPUS_PER_REPLICA = 1.0
DEFAULT_GPU_ACTIVATION_UTILIZATION = 5.0
# dcgm-exporter's per-GPU utilisation gauge, in percent.
DCGM_GPU_UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"

# Keys KEDA itself uses for the connection to the scaler; they reach us too.
KEDA_OWN_KEYS = frozenset(
    {
        "scalerAddress",
        "enableTLS",
        "unsafeSsl",
        "caCert",
        "tlsClientCert",
        "tlsClientKey",
        "tlsCertFile",
    }
)

METRIC_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SQS_HOST_RE = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
# An SQS queue's short name (up to 80 letters, digits, '-' and '_'; '.fifo' for FIFO queues).
SQS_QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}(\.fifo)?")

# Bounds on what a trigger's metadata may hold, far above any real trigger: a map
# past them is a mistake or an abuse, refused before anything is parsed or read.
MAX_KEYS = 100
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 16_384  # a long PromQL query fits; KEDA's own keys (certificates) are exempt
# Numbers: the HPA counts in thousandths, and a target below one thousandth or a
# count above a billion is a typo; either would also overflow KEDA's int64 metric.
MIN_POSITIVE = 0.001
MAX_NUMBER = 1e9
# A value an error quotes is cut to this many characters: errors travel in gRPC
# trailers, which clients cap at 8-16 kB, and must stay readable in a log line.
MAX_QUOTED = 100


def quoted(value: str) -> str:
    """repr(value), cut to MAX_QUOTED characters, saying how long it was."""
    if len(value) <= MAX_QUOTED:
        return repr(value)
    return f"{value[: MAX_QUOTED - 3] + '...'!r} ({len(value)} characters)"


class ConfigError(ValueError):
    """Invalid trigger metadata. The message names the key and the accepted values."""

    def __init__(self, key: str, accepted: str, got: str | None = None) -> None:
        self.key = key
        self.accepted, self.got = accepted, got
        detail = f"metadata key {quoted(key)}: expected {accepted}"
        if got is not None:
            detail += f", got {quoted(got)}"
        super().__init__(detail)

    def as_written(self, metadata: Mapping[str, str]) -> ConfigError:
        """This error naming the key as the metadata gave it (`hostFromEnv`, not
        `host`), for checks made on the parsed config (the access policy)."""
        if self.key and self.key not in metadata and self.key + "FromEnv" in metadata:
            return ConfigError(self.key + "FromEnv", self.accepted, self.got)
        return self


class TooManyKeys(ConfigError):
    """The map as a whole is too large: no one key is to blame."""

    def __init__(self, count: int) -> None:
        ValueError.__init__(self, f"metadata: expected at most {MAX_KEYS} keys, got {count}")
        self.key = ""


class ObjectRefError(ConfigError):
    """The request's object reference, not its metadata, is invalid (INVALID_ARGUMENT too)."""

    def __init__(self, field_name: str, limit: int, length: int) -> None:
        ValueError.__init__(
            self,
            f"ScaledObjectRef {field_name}: expected at most {limit} characters "
            f"(Kubernetes' limit), got {length}",
        )
        self.key = ""


class Mode(StrEnum):
    DEPLOYMENT = "deployment"
    JOB = "job"


class SourceKind(StrEnum):
    SQS = "sqs"
    RABBITMQ = "rabbitmq"


class RabbitProtocol(StrEnum):
    AMQP = "amqp"
    HTTP = "http"


class RabbitMeasure(StrEnum):
    """What a RabbitMQ trigger scales on. The values are KEDA's rabbitmq `mode`
    values, spelled (case-sensitively) as KEDA spells them."""

    QUEUE_LENGTH = "QueueLength"  # messages (the default)
    MESSAGE_RATE = "MessageRate"  # the publish rate, messages/s (management API only)


# KEDA's other rabbitmq modes, named in the error that refuses them.
KEDA_RABBIT_MODES_UNSUPPORTED = (
    "DeliverGetRate",
    "PublishedToDeliveredRatio",
    "ExpectedQueueConsumptionTime",
)


class GpuRole(StrEnum):
    DEMAND = "demand"  # busy GPUs raise the replica count (one request per GPU: diffusion)
    GUARD = "guard"  # busy GPUs only keep the pool alive and hold a floor (batching LLM servers)


@dataclass(frozen=True)
class SqsConfig:
    queue_url: str
    region: str
    endpoint: str | None = None
    scale_on_in_flight: bool = True
    scale_on_delayed: bool = False
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_name_only(self) -> bool:
        """queueURL gave the queue's short name (KEDA allows it): the source
        looks its URL up with GetQueueUrl."""
        return "/" not in self.queue_url

    def credential_identity(self) -> str:
        """A stable, non-reversible tag for the credentials (part of the cache key)."""
        material = "\0".join(
            x or "" for x in (self.access_key_id, self.secret_access_key, self.session_token, self.role_arn)
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RabbitConfig:
    # The URL with credentials; repr=False keeps it out of reprs and logs.
    url: str = field(repr=False)
    queue_name: str
    protocol: RabbitProtocol
    vhost: str | None = None
    exclude_unacknowledged: bool = False
    measure: RabbitMeasure = RabbitMeasure.QUEUE_LENGTH

    @property
    def safe_url(self) -> str:
        """The URL without user info, safe for logs and error messages."""
        return redact_url(self.url)

    def credential_identity(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GpuConfig:
    """Busy GPUs from Prometheus (DCGM duty cycle) and how they count."""

    # Without user info: credentials given in the URL are moved to username/password.
    server_address: str
    query: str  # PromQL returning one number: busy GPUs
    selector: str | None  # the label matchers the query was built from; None for gpuQuery
    role: GpuRole
    target_utilization: float = DEFAULT_GPU_TARGET_UTILIZATION  # percent
    gpus_per_replica: float = DEFAULT_GPUS_PER_REPLICA
    activation_utilization: float = DEFAULT_GPU_ACTIVATION_UTILIZATION  # percent
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    unsafe_ssl: bool = False  # skip certificate verification (https only)
    # KEDA's Prometheus convention: a query that matches no series reads as 0
    # (true, the default) or is an error, UNAVAILABLE (false: a dead exporter).
    ignore_null_values: bool = True

    @property
    def activation_busy_gpus(self) -> float:
        """Busy GPUs above which the GPU term is active. demand: the activation level
        of one replica's GPUs (a summed duty cycle). guard: that of one GPU, since G
        counts the GPUs above the level; one replica's would let one or two working
        GPUs of a 4-GPU replica read as idle, and the pool be scaled to zero."""
        per_gpu = self.activation_utilization / 100
        return per_gpu if self.role is GpuRole.GUARD else per_gpu * self.gpus_per_replica

    @property
    def busy_gpus_per_replica_at_target(self) -> float:
        return self.target_utilization / 100 * self.gpus_per_replica

    def credential_identity(self) -> str:
        """A stable, non-reversible tag for the credentials and TLS choice (part of the cache key)."""
        material = "\0".join(
            (self.bearer_token or "", self.username or "", self.password or "", str(self.unsafe_ssl))
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PrometheusConfig:
    """The Prometheus connection (address without user info, auth, TLS choice),
    shared by the GPU signal and the forecast's queries."""

    server_address: str
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    unsafe_ssl: bool = False

    def credential_identity(self) -> str:
        material = "\0".join(
            (self.bearer_token or "", self.username or "", self.password or "", str(self.unsafe_ssl))
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PrometheusQuery:
    """One PromQL expression on one Prometheus: what a forecast source reads."""

    prometheus: PrometheusConfig
    query: str

    # The attributes PrometheusSource reads (GpuConfig has the same ones).
    @property
    def server_address(self) -> str:
        return self.prometheus.server_address

    @property
    def bearer_token(self) -> str | None:
        return self.prometheus.bearer_token

    @property
    def username(self) -> str | None:
        return self.prometheus.username

    @property
    def password(self) -> str | None:
        return self.prometheus.password

    @property
    def unsafe_ssl(self) -> bool:
        return self.prometheus.unsafe_ssl

    def credential_identity(self) -> str:
        return self.prometheus.credential_identity()


class ForecastMode(StrEnum):
    AUTO = "auto"  # used in answers once it is warm and beats naive
    OFF = "off"  # not computed
    ADVISORY = "advisory"  # computed and shown (/metrics, explain), never used in answers


DEFAULT_COLD_START_SECONDS = 300.0
COLD_START_BOUNDS = (10.0, 3600.0)  # configured or measured, seconds
DEFAULT_FORECAST_QUANTILE = 0.9


@dataclass(frozen=True)
class ForecastConfig:
    mode: ForecastMode = ForecastMode.AUTO
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS  # the look-ahead L
    cold_start_query: PrometheusQuery | None = None  # measured cold start, seconds
    arrival_query: PrometheusQuery | None = None  # requests/s into the workload: the demand series
    replica_throughput: float | None = None  # requests/s one ready replica serves
    # The capacity-aware queue term drains the backlog over this many seconds; None:
    # over the cold start in use.
    drain_seconds: float | None = None
    # The capacity-aware queue term keeps the replicas of the bursts' arrival rate for
    # this many seconds after them (policy.burst_level); None: the cold start in use; 0: off.
    hold_seconds: float | None = None
    quantile: float = DEFAULT_FORECAST_QUANTILE
    max_prewarm_jobs: int = 0  # job mode: Jobs started ahead of predicted arrivals


@dataclass(frozen=True)
class TriggerConfig:
    source: SourceKind | None
    mode: Mode
    metric_name: str
    queue_length: float
    activation_queue_length: float
    sqs: SqsConfig | None = None
    rabbitmq: RabbitConfig | None = None
    unknown_keys: tuple[str, ...] = ()
    gpu: GpuConfig | None = None  # None: no GPU signal for this trigger
    forecast: ForecastConfig = field(default_factory=lambda: ForecastConfig())


def redact_url(url: str) -> str:
    """The URL as errors and logs show it: without user info (user:password@), and
    with any query or fragment shown as '?...' / '#...' (a query may carry a
    secret: pika's ssl_options holds a key's passphrase)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # malformed: show nothing of it rather than risk a password
        return "<malformed URL>"
    has_user = parts.username is not None or parts.password is not None
    if not has_user and not parts.query and not parts.fragment:
        return url
    netloc = parts.netloc
    if has_user:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{port}" if port else "")
    shown = parts._replace(netloc=netloc, query="", fragment="").geturl()
    if parts.query:
        shown += "?..."
    if parts.fragment:
        shown += "#..."
    return shown


def _split_url(key: str, url: str, accepted: str) -> SplitResult:
    """urlsplit, with a malformed URL (unclosed IPv6 bracket, port not a number
    in 0-65535) reported as a ConfigError on `key`. Never echoes the value: it
    may carry a password."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates the port; urlsplit alone does not
    except ValueError:
        raise ConfigError(key, accepted) from None
    if not _plain_authority(parts):
        # Clients disagree on odd authorities: urllib3 ends the host at a '\\' where
        # urlsplit does not, so "http://127.0.0.1\\.prom.svc:9090" would pass an
        # --allowed-hosts pattern for *.svc and connect to 127.0.0.1. Only a host
        # every client reads alike is accepted.
        raise ConfigError(
            key,
            f"{accepted}, whose host is a DNS name or an IP address (letters, digits, '.', '-' "
            "and '_'; IPv6 in brackets), with no '\\', space, control or non-ASCII character "
            "before the path",
        )
    _, sep, rest = url.partition("://")
    if sep and "@" in rest and "@" not in parts.netloc:
        # A password with a raw '/', '?' or '#' ends the host part early, so the
        # password would be taken for a path and shown in every message.
        raise ConfigError(
            key,
            f"{accepted}, with '/', '?', '#' and '@' in the user name and password "
            "percent-encoded (%2F, %3F, %23, %40)",
        )
    return parts


# A host every HTTP and AMQP client reads alike: a DNS name or IPv4 address, or an
# IPv6 address (urlsplit drops its brackets) with an optional zone.
_PLAIN_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]*:[0-9a-f:.]*(%[a-z0-9._~-]+)?")


def _plain_authority(parts: SplitResult) -> bool:
    netloc = parts.netloc
    if "\\" in netloc or not netloc.isascii() or any(c <= " " or c == "\x7f" for c in netloc):
        return False
    host = parts.hostname
    return host is None or _PLAIN_HOST.fullmatch(host) is not None


def _check_size(raw: Mapping[str, str]) -> None:
    """Refuse an oversized map (too many keys, a key or value too long) at once."""
    if len(raw) > MAX_KEYS:
        raise TooManyKeys(len(raw))
    for key, value in raw.items():
        if len(key) > MAX_KEY_LENGTH:
            raise ConfigError(key, f"a key name of at most {MAX_KEY_LENGTH} characters")
        if len(value) > MAX_VALUE_LENGTH and key not in KEDA_OWN_KEYS:
            # Not quoted: any key may hold a secret (a URL's password, a secret key).
            raise ConfigError(key, f"a value of at most {MAX_VALUE_LENGTH} characters, not {len(value)}")


class _Metadata:
    """Reads keys as `key` or `keyFromEnv`, and records which keys were used."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        _check_size(raw)
        self._raw = dict(raw)
        self._used: set[str] = set()
        self._from_env: set[str] = set()  # keys given as keyFromEnv

    def as_written(self, error: ConfigError) -> ConfigError:
        """The error naming the key as the user wrote it: `hostFromEnv`, not `host`."""
        if type(error) is ConfigError and error.key in self._from_env:
            return ConfigError(error.key + "FromEnv", error.accepted, error.got)
        return error

    def get(self, key: str) -> str | None:
        plain = self._raw.get(key)
        from_env = self._raw.get(key + "FromEnv")
        self._used.update({key, key + "FromEnv"})
        # An empty value is no value (a chart's `host: ""` default beside
        # hostFromEnv): only two values that differ conflict.
        if plain is not None and not plain.strip() and from_env is not None:
            plain = None
        if from_env is not None and not from_env.strip() and plain is not None:
            from_env = None
        if plain is not None and from_env is not None and plain.strip() != from_env.strip():
            raise ConfigError(key, f"either {key!r} or {key + 'FromEnv'!r}, not both")
        if plain is None and from_env is not None:
            self._from_env.add(key)
        value = plain if plain is not None else from_env
        if value is None:
            return None
        value = value.strip()
        return value or None

    def require(self, key: str, accepted: str) -> str:
        value = self.get(key)
        if value is None:
            raise ConfigError(key, f"{accepted} (required)")
        return value

    def float(
        self, key: str, default: float, *, minimum: float, exclusive: bool, accepted: str | None = None
    ) -> float:
        """The key's number. `accepted`: what the error names as accepted, for a key
        whose caller narrows the range further (so every refusal states the same range)."""
        text = self.get(key)
        bound = f"a number > {minimum:g}" if exclusive else f"a number >= {minimum:g}"
        if text is None:
            return default
        value = _decimal(text)
        if value is None:
            raise ConfigError(key, accepted or bound, text)
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise ConfigError(key, accepted or bound, text)
        if value > MAX_NUMBER:
            raise ConfigError(key, accepted or f"{bound}, at most {MAX_NUMBER:g}", text)
        if exclusive and minimum == 0 and value < MIN_POSITIVE:
            at_least = f"{bound}, at least {MIN_POSITIVE:g} (the HPA counts in thousandths)"
            raise ConfigError(key, accepted or at_least, text)
        return value

    def bool(self, key: str, default: bool) -> bool:
        text = self.get(key)
        if text is None:
            return default
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(key, "true or false", text)

    def choice(self, key: str, enum: type[Enum], default: Enum) -> Enum:
        text = self.get(key)
        if text is None:
            return default
        try:
            return enum(text.lower())
        except ValueError:
            accepted = " or ".join(repr(m.value) for m in enum)
            raise ConfigError(key, accepted, text) from None

    def unknown(self) -> tuple[str, ...]:
        return tuple(sorted(k for k in self._raw if k not in self._used and k not in KEDA_OWN_KEYS))


def parse_trigger(metadata: Mapping[str, str]) -> TriggerConfig:
    """Parse and validate one trigger's metadata. Raises ConfigError.

    A trigger reads a queue (`source`), GPUs (`gpuQuery`/`gpuSelector`), or both.
    """
    meta = _Metadata(metadata)
    try:
        return _parse_trigger(meta, metadata)
    except ConfigError as exc:
        raise meta.as_written(exc) from None


def _parse_trigger(meta: _Metadata, metadata: Mapping[str, str]) -> TriggerConfig:
    source = meta.choice("source", SourceKind, _inferred_source(metadata))
    if source is _NoSource.BOTH:
        # Refused even when GPU keys would make a GPU-only trigger of it: the queue
        # the user named would then be dropped, and the GPU role change with it.
        raise ConfigError(
            "source", "'sqs' or 'rabbitmq' (required when both queueURL and queueName are given)"
        )
    has_gpu = _has_gpu_keys(metadata, has_queue=source is not _NO_SOURCE)
    if source is _NO_SOURCE and not has_gpu:
        raise ConfigError(
            "source",
            "'sqs' or 'rabbitmq' (required unless queueURL names an SQS queue, queueName a RabbitMQ "
            "queue, or the trigger reads GPUs with prometheusServerAddress and gpuQuery or gpuSelector)",
        )
    queue_source = source if isinstance(source, SourceKind) else None
    mode, keda_mode = _parse_mode(meta, queue_source)
    queue_length, activation = _queue_target(meta, queue_source, keda_mode)
    sqs = _parse_sqs(meta) if queue_source is SourceKind.SQS else None
    rabbit = (
        _parse_rabbitmq(meta, keda_mode or RabbitMeasure.QUEUE_LENGTH)
        if queue_source is SourceKind.RABBITMQ
        else None
    )
    gpu = _parse_gpu(meta, has_queue=queue_source is not None) if has_gpu else None
    forecast = _parse_forecast(meta, mode, gpu)
    if gpu is not None and mode is Mode.JOB:
        # A ScaledJob's metric creates Jobs; busy GPUs are work already running in
        # Jobs, which finish on their own, so GPU load must never create more.
        raise ConfigError(
            "mode", "'deployment' when the trigger reads GPUs (a ScaledJob cannot use the GPU signal)", "job"
        )
    metric_name = meta.get("metricName")
    if metric_name is None:
        if queue_source is not None:
            queue_name = sqs.queue_name if sqs else rabbit.queue_name if rabbit else "queue"
            metric_name = default_metric_name(queue_source.value, queue_name)
        else:
            assert gpu is not None
            metric_name = default_metric_name("gpu", gpu.selector or "query")
    elif not METRIC_NAME_RE.fullmatch(metric_name) or len(metric_name) > 200:
        raise ConfigError(
            "metricName",
            "lowercase letters, digits and '-', starting and ending with a "
            "letter or digit, at most 200 characters",
            metric_name,
        )
    return TriggerConfig(
        source=queue_source,
        mode=mode,
        metric_name=metric_name,
        queue_length=queue_length,
        activation_queue_length=activation,
        sqs=sqs,
        rabbitmq=rabbit,
        unknown_keys=meta.unknown(),
        gpu=gpu,
        forecast=forecast,
    )


class _NoSource(Enum):
    NONE = "none"
    BOTH = "both"  # queueURL and queueName: which one is meant is not for us to guess


_NO_SOURCE = _NoSource.NONE


def _inferred_source(metadata: Mapping[str, str]) -> SourceKind | _NoSource:
    """The source named by the keys themselves, as in KEDA's built-in triggers
    (aws-sqs-queue has queueURL, rabbitmq has queueName), so a trigger moved from
    KEDA needs no `source`; none when neither or both are given."""

    def given(key: str) -> bool:
        return bool((metadata.get(key) or "").strip() or (metadata.get(key + "FromEnv") or "").strip())

    sqs, rabbit = given("queueURL"), given("queueName")
    if sqs != rabbit:
        return SourceKind.SQS if sqs else SourceKind.RABBITMQ
    return _NoSource.BOTH if sqs else _NO_SOURCE


_MODE_ACCEPTED = (
    "'deployment' or 'job', or for RabbitMQ KEDA's modes 'QueueLength' or 'MessageRate' "
    "(spelled as KEDA spells them)"
)


def _parse_mode(meta: _Metadata, source: SourceKind | None) -> tuple[Mode, RabbitMeasure | None]:
    """`mode`: ours (deployment or job, any case) or KEDA's rabbitmq mode (the
    measure; None when not given).

    The two sets never overlap, so one key carries both: a trigger moved from
    KEDA keeps its `mode: QueueLength` (or MessageRate), which is deployment
    mode scaling on that measure. KEDA's values are matched case-sensitively,
    as KEDA matches them.
    """
    text = meta.get("mode")
    if text is None:
        return Mode.DEPLOYMENT, None
    if text in (m.value for m in RabbitMeasure):
        if source is not SourceKind.RABBITMQ:
            raise ConfigError(
                "mode", "'deployment' or 'job' (QueueLength and MessageRate are KEDA's rabbitmq modes)", text
            )
        return Mode.DEPLOYMENT, RabbitMeasure(text)
    if text in KEDA_RABBIT_MODES_UNSUPPORTED:
        raise ConfigError("mode", f"{_MODE_ACCEPTED}; KEDA's {text} is not supported", text)
    try:
        return Mode(text.lower()), None
    except ValueError:
        raise ConfigError("mode", _MODE_ACCEPTED, text) from None


def _queue_target(
    meta: _Metadata, source: SourceKind | None, keda_mode: RabbitMeasure | None
) -> tuple[float, float]:
    """(target per replica, activation threshold) for the queue term.

    Ours: queueLength and activationQueueLength. RabbitMQ also takes KEDA's keys:
    with KEDA's mode (QueueLength or MessageRate) the target is `value`
    (required, and queueLength refused, as in KEDA), and `activationValue` is
    the activation threshold in any mode. Defaults are KEDA's for each source:
    5 messages for SQS, 20 for RabbitMQ.
    """
    rabbit = source is SourceKind.RABBITMQ
    if keda_mode is not None:
        if meta.get("queueLength") is not None:
            raise ConfigError(
                "queueLength", f"not together with mode {keda_mode.value}: use value, as in KEDA"
            )
        if meta.get("value") is None:
            raise ConfigError("value", f"a number > 0 (required with mode {keda_mode.value}, as in KEDA)")
        target = meta.float("value", 0.0, minimum=0, exclusive=True)
    else:
        if rabbit and meta.get("value") is not None:
            raise ConfigError(
                "value", "only with mode 'QueueLength' or 'MessageRate' (KEDA's keys); otherwise queueLength"
            )
        default = DEFAULT_RABBITMQ_QUEUE_LENGTH if rabbit else DEFAULT_QUEUE_LENGTH
        target = meta.float("queueLength", default, minimum=0, exclusive=True)
    if rabbit and meta.get("activationValue") is not None:
        if meta.get("activationQueueLength") is not None:
            raise ConfigError("activationValue", "either activationValue (KEDA's) or activationQueueLength")
        activation = meta.float("activationValue", 0.0, minimum=0, exclusive=False)
    else:
        activation = meta.float(
            "activationQueueLength", DEFAULT_ACTIVATION_QUEUE_LENGTH, minimum=0, exclusive=False
        )
    return target, activation


def default_metric_name(prefix: str, queue_name: str) -> str:
    """`<prefix>-<queue>` folded to lowercase letters, digits and '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", queue_name.lower()).strip("-") or "queue"
    return f"{prefix}-{slug}"[:200].rstrip("-")


def _parse_sqs(meta: _Metadata) -> SqsConfig:
    queue_url = meta.require(
        "queueURL", "the SQS queue URL, https://sqs.<region>.amazonaws.com/<account>/<queue>"
    )
    region = meta.get("awsRegion")
    if SQS_QUEUE_NAME_RE.fullmatch(queue_url):
        # The queue's short name, as KEDA allows: its URL is looked up in the region.
        if region is None:
            raise ConfigError(
                "awsRegion", "an AWS region such as 'us-east-1' (required when queueURL is a queue's name)"
            )
        return _parse_sqs_settings(meta, queue_url, region)
    parts = _split_url("queueURL", queue_url, "an http(s) URL ending in /<account>/<queue>")
    path = parts.path.strip("/").split("/")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(path) < 2
        or not path[-1]
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            "queueURL",
            "an http(s) URL ending in /<account>/<queue>, or the queue's name",
            redact_url(queue_url),
        )
    if region is None:
        match = SQS_HOST_RE.match(parts.hostname)
        if match is None:
            raise ConfigError(
                "awsRegion",
                "an AWS region such as 'us-east-1' (required when queueURL's host does not name one)",
            )
        region = match.group(1)
    return _parse_sqs_settings(meta, queue_url, region)


def _parse_sqs_settings(meta: _Metadata, queue_url: str, region: str) -> SqsConfig:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+|[a-z0-9-]{1,50}", region):  # bounded: errors quote it
        raise ConfigError("awsRegion", "an AWS region such as 'us-east-1'", region)
    endpoint = meta.get("awsEndpoint")
    if endpoint is not None:
        ep = _split_url("awsEndpoint", endpoint, "an http(s) URL")
        if ep.scheme not in ("http", "https") or not ep.hostname:
            raise ConfigError("awsEndpoint", "an http(s) URL", redact_url(endpoint))
    access_key = meta.get("awsAccessKeyID")
    secret_key = meta.get("awsSecretAccessKey")
    if (access_key is None) != (secret_key is None):
        missing = "awsSecretAccessKey" if secret_key is None else "awsAccessKeyID"
        raise ConfigError(missing, "both awsAccessKeyID and awsSecretAccessKey, or neither")
    token = meta.get("awsSessionToken")
    if token is not None and access_key is None:
        raise ConfigError("awsSessionToken", "only together with awsAccessKeyID and awsSecretAccessKey")
    role_arn = meta.get("awsRoleArn")
    if role_arn is not None and not role_arn.startswith("arn:"):
        raise ConfigError("awsRoleArn", "an IAM role ARN, arn:aws:iam::<account>:role/<name>", role_arn)
    # KEDA's (deprecated) identityOwner: 'operator' reads with the operator's own
    # identity, which here is the scaler's (the default chain: IRSA, environment).
    owner = meta.get("identityOwner")
    if owner is not None and owner not in ("pod", "operator"):
        raise ConfigError("identityOwner", "'pod' or 'operator' (KEDA's values)", owner)
    if owner == "operator" and (access_key is not None or role_arn is not None):
        raise ConfigError(
            "identityOwner",
            "'pod' (or unset) when the trigger gives awsAccessKeyID or awsRoleArn; 'operator' means the "
            "scaler's own AWS identity",
        )
    return SqsConfig(
        queue_url=queue_url,
        region=region,
        endpoint=endpoint,
        scale_on_in_flight=meta.bool("scaleOnInFlight", True),
        scale_on_delayed=meta.bool("scaleOnDelayed", False),
        access_key_id=access_key,
        secret_access_key=secret_key,
        session_token=token,
        role_arn=role_arn,
    )


def _parse_rabbitmq(meta: _Metadata, measure: RabbitMeasure = RabbitMeasure.QUEUE_LENGTH) -> RabbitConfig:
    url = meta.require("host", "an amqp://, amqps://, http:// or https:// URL")
    parts = _split_url("host", url, "an amqp://, amqps://, http:// or https:// URL with a host")
    scheme = parts.scheme.lower()
    if scheme not in ("amqp", "amqps", "http", "https") or not parts.hostname:
        # Never echo the value: it usually carries a password.
        raise ConfigError("host", "an amqp://, amqps://, http:// or https:// URL with a host")
    if scheme in ("amqp", "amqps"):
        _check_amqp_query(parts.query)
    queue_name = meta.require("queueName", "the RabbitMQ queue name")
    protocol_choice = meta.get("protocol")
    url_protocol = RabbitProtocol.AMQP if scheme.startswith("amqp") else RabbitProtocol.HTTP
    if protocol_choice is None or protocol_choice.lower() == "auto":
        protocol = url_protocol
    elif protocol_choice.lower() in ("amqp", "http"):
        protocol = RabbitProtocol(protocol_choice.lower())
        if protocol is not url_protocol:
            raise ConfigError(
                "protocol",
                f"'auto' or {url_protocol.value!r} for a {scheme}:// host",
                protocol_choice,
            )
    else:
        raise ConfigError("protocol", "'auto', 'amqp' or 'http'", protocol_choice)
    exclude = meta.bool("excludeUnacknowledged", False)
    if exclude and protocol is not RabbitProtocol.HTTP:
        raise ConfigError(
            "excludeUnacknowledged",
            "false with the amqp protocol (AMQP cannot see "
            "unacknowledged messages; use an http:// management URL)",
        )
    if measure is RabbitMeasure.MESSAGE_RATE and protocol is not RabbitProtocol.HTTP:
        raise ConfigError(
            "mode",
            "'QueueLength' with the amqp protocol (MessageRate needs the management API's publish "
            "rate: use an http:// management URL, as in KEDA)",
            measure.value,
        )
    if meta.bool("useRegex", False):
        raise ConfigError(
            "useRegex", "false (one trigger reads one queue; give each queue its own trigger)", "true"
        )
    # KEDA's operation and pageSize apply only with useRegex; without it KEDA
    # ignores them, and so does Prewarm (they are not unknown keys).
    meta.get("operation")
    meta.get("pageSize")
    vhost = meta.get("vhostName")
    return RabbitConfig(
        url=_with_credentials(meta, url),
        queue_name=queue_name,
        protocol=protocol,
        vhost=vhost,
        exclude_unacknowledged=exclude,
        measure=measure,
    )


# The AMQP URL's query parameters handed to pika (pika.URLParameters) that are
# accepted: plain numbers and the locale, (lowest, highest) as pika checks them.
# The timeouts and retries are replaced by the scaler's own (--source-timeout, one
# attempt) and only checked, so that a URL written for a Python client still parses.
_AMQP_QUERY_WHOLE = {
    "heartbeat": (0, None),
    "channel_max": (1, 65535),
    "frame_max": (4096, 131072),
    "connection_attempts": (1, None),
}
_AMQP_QUERY_SECONDS = {
    "socket_timeout": True,  # True: must be > 0
    "stack_timeout": True,
    "blocked_connection_timeout": False,
    "retry_delay": False,
}
_AMQP_QUERY_NAMES = (
    "heartbeat, channel_max, frame_max, locale, connection_attempts, socket_timeout, stack_timeout, "
    "blocked_connection_timeout and retry_delay"
)
_AMQP_QUERY_ACCEPTED = f"an amqp:// or amqps:// URL whose query, if any, sets only {_AMQP_QUERY_NAMES}"
# pika parameters refused by name, and why: ssl_options loads the files it names
# (ca_certs, certfile, keyfile) from the scaler's own pod, tcp_options sets the
# scaler's socket options, and pika evaluates both (and client_properties) as
# Python literals.
_AMQP_QUERY_REFUSED = {
    "ssl_options": "ssl_options (it makes the scaler load files of its own pod; for TLS use amqps:// "
    "with a broker certificate the scaler trusts)",
    "tcp_options": "tcp_options (it sets the scaler's own socket options)",
    "client_properties": "client_properties (pika evaluates it as a Python literal)",
}


def _check_amqp_query(query: str) -> None:
    """Refuse an AMQP host URL's query parameters that make pika do more than tune
    the connection (_AMQP_QUERY_REFUSED), unknown ones (pika refuses them at every
    read), repeated ones and malformed numbers. Values are never echoed: the URL
    carries the password, and ssl_options a key's passphrase."""
    if not query:
        return
    try:
        # As pika reads it (names and values percent-decoded), blank values kept.
        params = parse_qs(query, keep_blank_values=True, max_num_fields=20)
    except ValueError:
        raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED} (it sets more than 20 parameters)") from None
    for name in params:
        if name in _AMQP_QUERY_REFUSED:
            raise ConfigError(
                "host",
                f"an amqp:// or amqps:// URL without {_AMQP_QUERY_REFUSED[name]}; its query may set "
                f"only {_AMQP_QUERY_NAMES}",
            )
    for name, values in params.items():
        if name != "locale" and name not in _AMQP_QUERY_WHOLE and name not in _AMQP_QUERY_SECONDS:
            raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED} (it sets another parameter)")
        if len(values) != 1:
            raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED}, each once (it sets {name} more than once)")
        value = values[0]
        if name in _AMQP_QUERY_WHOLE:
            low, high = _AMQP_QUERY_WHOLE[name]
            whole = f"{name} a whole number " + (f">= {low}" if high is None else f"from {low} to {high}")
            if not (value.isascii() and value.isdigit() and len(value) <= 10):
                raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED}, with {whole}")
            number = int(value)
            if number < low or (high is not None and number > high):
                raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED}, with {whole}")
        elif name in _AMQP_QUERY_SECONDS:
            positive = _AMQP_QUERY_SECONDS[name]
            seconds = _decimal(value)
            if seconds is None or not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
                bound = "> 0" if positive else ">= 0"
                raise ConfigError("host", f"{_AMQP_QUERY_ACCEPTED}, with {name} in seconds, a number {bound}")


def _with_credentials(meta: _Metadata, url: str) -> str:
    """The host URL with `username`/`password` (KEDA's usernameFromEnv and
    passwordFromEnv) in place of any it carries, percent-encoded, as KEDA lets
    them override the host's."""
    username = meta.get("username")
    password = meta.get("password")
    if username is None and password is None:
        return url
    if username is None or password is None:
        missing = "password" if password is None else "username"
        raise ConfigError(
            missing, "both username and password (or usernameFromEnv and passwordFromEnv), or neither"
        )
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def rabbit_vhost(cfg: RabbitConfig) -> str:
    """The vhost: vhostName if set, else from the URL path (default '/').

    AMQP: the whole path is the vhost. Management API (KEDA's convention): the
    last path segment is the vhost and anything before it is the API's path
    prefix (see rabbit_http_prefix), so https://h/rabbitmq/ is the default vhost
    of a management API served under /rabbitmq.
    """
    if cfg.vhost is not None:
        return cfg.vhost
    path = urlsplit(cfg.url).path
    if cfg.protocol is RabbitProtocol.AMQP:
        return unquote(path[1:]) if len(path) > 1 else "/"
    return unquote(path.rsplit("/", 1)[-1]) or "/"


def rabbit_http_prefix(cfg: RabbitConfig) -> str:
    """The management API's path prefix: the URL path before its last segment
    (which names the vhost), without a trailing '/'; '' when served at the root."""
    path = urlsplit(cfg.url).path
    return path.rsplit("/", 1)[0].rstrip("/") if "/" in path else ""


def quote_vhost(vhost: str) -> str:
    return quote(vhost, safe="")


# --- GPU (Prometheus) -----------------------------------------------------------

# Keys that configure the GPU signal; any of them (non-empty) makes the trigger read GPUs.
GPU_KEYS = (
    "gpuQuery",
    "gpuSelector",
    "gpuRole",
    "gpuTargetUtilization",
    "gpusPerReplica",
    "gpuActivationUtilization",
)
# The Prometheus connection, shared by the GPU signal and the forecast's queries.
PROMETHEUS_KEYS = (
    "prometheusServerAddress",
    "prometheusBearerToken",
    "prometheusUsername",
    "prometheusPassword",
)

# PromQL label matchers: name, operator, quoted value; comma separated.
_LABEL_MATCHER = (
    r"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"
    r"(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*"
)
SELECTOR_RE = re.compile(rf"{_LABEL_MATCHER}(?:,{_LABEL_MATCHER})*,?\s*")


def _has_gpu_keys(metadata: Mapping[str, str], *, has_queue: bool) -> bool:
    """The trigger reads GPUs when a GPU key is given; a Prometheus key alone
    means GPUs only for a trigger without a queue (for a queue trigger it serves
    the forecast's queries)."""

    def given(key: str) -> bool:
        return bool((metadata.get(key) or "").strip() or (metadata.get(key + "FromEnv") or "").strip())

    return any(given(k) for k in GPU_KEYS) or (not has_queue and any(given(k) for k in PROMETHEUS_KEYS))


def gpu_selector_query(selector: str, role: GpuRole, activation_utilization: float) -> str:
    """The busy-GPU query built from dcgm-exporter's utilisation gauge (percent per GPU).

    demand: the summed duty cycle in GPU units (two GPUs at 50 % = 1 busy GPU): the
    load to carry. guard: the number of GPUs busier than the activation level (two
    GPUs at 50 % = 2): the guard holds the replicas whose GPUs are working, and a
    sum would let it hold too few (four replicas at 50 % would hold two).

    Both are empty only when no series matches (`> bool` counts an idle GPU as 0
    rather than dropping it), which is what ignoreNullValues: "false" turns into
    an error.
    """
    if role is GpuRole.GUARD:
        return f"sum({DCGM_GPU_UTIL_METRIC}{{{selector}}} > bool {activation_utilization:g})"
    return f"sum({DCGM_GPU_UTIL_METRIC}{{{selector}}}) / 100"


def _parse_gpu(meta: _Metadata, *, has_queue: bool) -> GpuConfig:
    query = meta.get("gpuQuery")
    selector = meta.get("gpuSelector")
    if query is not None and selector is not None:
        raise ConfigError("gpuQuery", "either gpuQuery or gpuSelector, not both")
    if query is None and selector is None:
        raise ConfigError(
            "gpuSelector",
            'label matchers such as \'namespace="ai",pod=~"sd-worker-.*"\', or a gpuQuery '
            "(required when the trigger reads GPUs)",
        )
    if selector is not None:
        inner = selector[1:-1] if selector.startswith("{") and selector.endswith("}") else selector
        if not SELECTOR_RE.fullmatch(inner):
            raise ConfigError(
                "gpuSelector",
                'PromQL label matchers, comma separated, such as \'namespace="ai",pod=~"sd-worker-.*"\'',
                selector,
            )
        selector = inner.strip().rstrip(",").strip()

    prometheus = _parse_prometheus(meta)

    default_role = GpuRole.GUARD if has_queue else GpuRole.DEMAND
    role = meta.choice("gpuRole", GpuRole, default_role)
    assert isinstance(role, GpuRole)
    activation = _percent(
        meta, "gpuActivationUtilization", DEFAULT_GPU_ACTIVATION_UTILIZATION, allow_zero=True
    )
    if selector is not None:
        query = gpu_selector_query(selector, role, activation)
    assert query is not None
    return GpuConfig(
        server_address=prometheus.server_address,
        query=query,
        selector=selector,
        role=role,
        target_utilization=_percent(
            meta, "gpuTargetUtilization", DEFAULT_GPU_TARGET_UTILIZATION, allow_zero=False
        ),
        gpus_per_replica=meta.float("gpusPerReplica", DEFAULT_GPUS_PER_REPLICA, minimum=0, exclusive=True),
        activation_utilization=activation,
        bearer_token=prometheus.bearer_token,
        username=prometheus.username,
        password=prometheus.password,
        unsafe_ssl=prometheus.unsafe_ssl,
        ignore_null_values=meta.bool("ignoreNullValues", True),
    )


def _parse_prometheus(meta: _Metadata) -> PrometheusConfig:
    """The Prometheus connection: address and auth, shared by the GPU and forecast queries."""
    address, url_user, url_password = _prometheus_address(meta)
    token = meta.get("prometheusBearerToken")
    username = meta.get("prometheusUsername")
    password = meta.get("prometheusPassword")
    if (username is not None or password is not None) and url_user is not None:
        raise ConfigError(
            "prometheusUsername",
            "credentials either in prometheusServerAddress or in prometheusUsername/prometheusPassword, "
            "not both",
        )
    if url_user is not None:
        username, password = url_user, url_password or ""
    elif (username is None) != (password is None):
        missing = "prometheusPassword" if password is None else "prometheusUsername"
        raise ConfigError(missing, "both prometheusUsername and prometheusPassword, or neither")
    if token is not None and username is not None:
        raise ConfigError(
            "prometheusBearerToken", "either a bearer token or basic auth (username and password), not both"
        )
    # unsafeSsl is also KEDA's own key (for its connection to this scaler); it
    # only means something for an https Prometheus.
    unsafe_ssl = meta.bool("unsafeSsl", False) if address.startswith("https://") else False
    return PrometheusConfig(
        server_address=address,
        bearer_token=token,
        username=username,
        password=password,
        unsafe_ssl=unsafe_ssl,
    )


def _parse_forecast(meta: _Metadata, mode: Mode, gpu: GpuConfig | None) -> ForecastConfig:
    forecast_mode = meta.choice("forecast", ForecastMode, ForecastMode.AUTO)
    assert isinstance(forecast_mode, ForecastMode)
    low, high = COLD_START_BOUNDS
    seconds = f"seconds from {low:g} to {high:g}"
    cold_start = meta.float(
        "coldStartSeconds", DEFAULT_COLD_START_SECONDS, minimum=0, exclusive=True, accepted=seconds
    )
    if not low <= cold_start <= high:
        raise ConfigError("coldStartSeconds", seconds, meta.get("coldStartSeconds"))
    throughput_text = meta.get("replicaThroughput")
    throughput = None
    if throughput_text is not None:
        throughput = meta.float("replicaThroughput", 1.0, minimum=0, exclusive=True)
    capacity_term = throughput is not None and mode is Mode.DEPLOYMENT
    drain: float | None = None
    if meta.get("drainSeconds") is not None:
        drain = meta.float("drainSeconds", 0.0, minimum=0, exclusive=True, accepted=seconds)
        if not low <= drain <= high:
            raise ConfigError("drainSeconds", seconds, meta.get("drainSeconds"))
        _require_capacity_term(meta, "drainSeconds", "paces", capacity_term)
    hold: float | None = None
    if meta.get("holdSeconds") is not None:
        holds = f"0 (off) or {seconds}"
        hold = meta.float("holdSeconds", 0.0, minimum=0, exclusive=False, accepted=holds)
        if hold != 0 and not low <= hold <= high:
            raise ConfigError("holdSeconds", holds, meta.get("holdSeconds"))
        _require_capacity_term(meta, "holdSeconds", "holds", capacity_term)
    quantiles = "a number >= 0.5 and < 1"
    quantile = meta.float(
        "forecastQuantile", DEFAULT_FORECAST_QUANTILE, minimum=0.5, exclusive=False, accepted=quantiles
    )
    if quantile >= 1:
        raise ConfigError("forecastQuantile", quantiles, meta.get("forecastQuantile"))
    jobs_text = meta.get("maxPrewarmJobs")
    jobs = 0
    if jobs_text is not None:
        # ASCII digits only ('²'.isdigit() is true, int('²') fails), and few enough
        # that int() cannot refuse them (it stops at 4300 digits).
        if not (jobs_text.isascii() and jobs_text.isdigit()):
            raise ConfigError("maxPrewarmJobs", "a whole number >= 0", jobs_text)
        if len(jobs_text) > 10 or int(jobs_text) > MAX_NUMBER:
            raise ConfigError("maxPrewarmJobs", f"a whole number >= 0, at most {MAX_NUMBER:g}", jobs_text)
        jobs = int(jobs_text)
        if jobs > 0 and mode is not Mode.JOB:
            raise ConfigError(
                "maxPrewarmJobs", "0 in deployment mode (it is for ScaledJobs, mode: job)", jobs_text
            )
    arrival_text = meta.get("arrivalQuery")
    cold_start_text = meta.get("coldStartQuery")
    prometheus: PrometheusConfig | None = None
    if arrival_text is not None or cold_start_text is not None or _given(meta, "prometheusServerAddress"):
        if gpu is not None:
            prometheus = PrometheusConfig(
                server_address=gpu.server_address,
                bearer_token=gpu.bearer_token,
                username=gpu.username,
                password=gpu.password,
                unsafe_ssl=gpu.unsafe_ssl,
            )
        else:
            prometheus = _parse_prometheus(meta)
    return ForecastConfig(
        mode=forecast_mode,
        cold_start_seconds=cold_start,
        cold_start_query=_query(prometheus, cold_start_text),
        arrival_query=_query(prometheus, arrival_text),
        replica_throughput=throughput,
        drain_seconds=drain,
        hold_seconds=hold,
        quantile=quantile,
        max_prewarm_jobs=jobs,
    )


def _require_capacity_term(meta: _Metadata, key: str, does: str, capacity_term: bool) -> None:
    """A key of the capacity-aware queue term is refused where there is none: without
    replicaThroughput, or in job mode (where it would do nothing)."""
    if not capacity_term:
        raise ConfigError(
            key,
            f"only with replicaThroughput in deployment mode (it {does} the capacity-aware queue term)",
            meta.get(key),
        )


def _query(prometheus: PrometheusConfig | None, query: str | None) -> PrometheusQuery | None:
    return PrometheusQuery(prometheus, query) if prometheus is not None and query is not None else None


def _given(meta: _Metadata, key: str) -> bool:
    return meta.get(key) is not None


def _prometheus_address(meta: _Metadata) -> tuple[str, str | None, str | None]:
    """The server URL without user info, and the user info it carried (decoded)."""
    address = meta.require("prometheusServerAddress", "the Prometheus URL, such as http://prometheus:9090")
    parts = _split_url("prometheusServerAddress", address, "an http:// or https:// URL with a valid port")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            "prometheusServerAddress",
            "an http:// or https:// URL, such as http://prometheus:9090",
            redact_url(address),
        )
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    safe = redact_url(address).rstrip("/")
    return parts.scheme.lower() + safe[len(parts.scheme) :], user, password


# A plain decimal number, which every one of KEDA's Go parsers reads alike. Python's
# float() also takes non-ASCII digits and 'infinity' (Go refuses both) and '1_0'
# (strconv.ParseInt, which KEDA's SQS scaler uses for queueLength, refuses it), so
# a value copied from or to a KEDA trigger could mean something else here.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _decimal(text: str) -> float | None:
    """The number `text` spells in decimal, or None."""
    return float(text) if _DECIMAL.fullmatch(text) else None


# The lowest utilisation target: the GPU term divides busy GPUs by it, so a target
# near 0 asks for absurd fleets (0.0001 % is a million replicas per busy GPU) and one
# that underflows to 0 would divide by zero on every evaluation.
MIN_TARGET_PERCENT = 1.0


def _percent(meta: _Metadata, key: str, default: float, *, allow_zero: bool) -> float:
    """A percentage: 0 to 100 (allow_zero, a threshold), else a target, from
    MIN_TARGET_PERCENT to 100."""
    text = meta.get(key)
    low = 0.0 if allow_zero else MIN_TARGET_PERCENT
    accepted = "a percentage, 0 to 100" if allow_zero else f"a percentage, {low:g} to 100"
    if text is None:
        return default
    value = _decimal(text.rstrip("%").strip())
    if value is None or not math.isfinite(value) or value > 100 or value < low:
        raise ConfigError(key, accepted, text)
    return value
