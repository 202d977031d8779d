"""Trigger metadata for the GPU signal (Prometheus / DCGM): every key, defaults,
every bad value, and that credentials never appear in errors or reprs."""

from __future__ import annotations

import pytest

from scaler.config import (
    ConfigError,
    GpuRole,
    Mode,
    SourceKind,
    gpu_selector_query,
    parse_trigger,
)

PROM = "http://prometheus.monitoring:9090"
SELECTOR = 'namespace="ai",pod=~"sd-worker-.*"'
RABBIT = {"source": "rabbitmq", "host": "amqp://u:p@rabbit:5672/", "queueName": "jobs"}


def gpu_only(**extra: str) -> dict[str, str]:
    return {"prometheusServerAddress": PROM, "gpuSelector": SELECTOR, **extra}


def test_gpu_only_trigger_defaults() -> None:
    cfg = parse_trigger(gpu_only())
    assert cfg.source is None and cfg.sqs is None and cfg.rabbitmq is None
    gpu = cfg.gpu
    assert gpu is not None
    assert gpu.server_address == PROM
    assert gpu.selector == SELECTOR
    assert gpu.query == 'sum(DCGM_FI_DEV_GPU_UTIL{namespace="ai",pod=~"sd-worker-.*"}) / 100'
    assert gpu.role is GpuRole.DEMAND  # nothing else can raise the count
    assert (gpu.target_utilization, gpu.gpus_per_replica, gpu.activation_utilization) == (75, 1, 5)
    assert gpu.unsafe_ssl is False
    assert gpu.bearer_token is None and gpu.username is None and gpu.password is None
    assert cfg.mode is Mode.DEPLOYMENT
    assert cfg.metric_name == "gpu-namespace-ai-pod-sd-worker"
    assert cfg.unknown_keys == ()


def test_queue_and_gpu_defaults_to_guard_and_the_queue_metric_name() -> None:
    cfg = parse_trigger({**RABBIT, **gpu_only()})
    assert cfg.source is SourceKind.RABBITMQ
    assert cfg.gpu is not None and cfg.gpu.role is GpuRole.GUARD
    assert cfg.metric_name == "rabbitmq-jobs"


def test_the_guard_counts_busy_gpus_the_demand_sums_their_duty_cycle() -> None:
    # The guard holds the replicas whose GPUs work: four at 50 % are four, not two.
    guard = parse_trigger({**RABBIT, **gpu_only(gpuActivationUtilization="12.5")}).gpu
    assert guard is not None
    assert guard.query == 'sum(DCGM_FI_DEV_GPU_UTIL{namespace="ai",pod=~"sd-worker-.*"} > bool 12.5)'
    demand = parse_trigger({**RABBIT, **gpu_only(gpuRole="demand")}).gpu
    assert demand is not None
    assert demand.query == 'sum(DCGM_FI_DEV_GPU_UTIL{namespace="ai",pod=~"sd-worker-.*"}) / 100'
    # A user's own gpuQuery is used as written, whatever the role.
    own = parse_trigger({**RABBIT, **gpu_only(gpuSelector="", gpuQuery="vector(3)")}).gpu
    assert own is not None and own.query == "vector(3)"


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ({"gpuTargetUtilization": "60"}, "target_utilization", 60.0),
        ({"gpuTargetUtilization": "100"}, "target_utilization", 100.0),
        ({"gpuTargetUtilization": "1"}, "target_utilization", 1.0),
        ({"gpuTargetUtilization": "2.5"}, "target_utilization", 2.5),
        ({"gpuTargetUtilization": "80%"}, "target_utilization", 80.0),
        ({"gpusPerReplica": "8"}, "gpus_per_replica", 8.0),
        ({"gpusPerReplica": "0.5"}, "gpus_per_replica", 0.5),
        ({"gpuActivationUtilization": "0"}, "activation_utilization", 0.0),
        ({"gpuActivationUtilization": "100"}, "activation_utilization", 100.0),
        ({"gpuRole": "guard"}, "role", GpuRole.GUARD),
        ({"gpuRole": "Demand"}, "role", GpuRole.DEMAND),
        ({"gpuTargetUtilizationFromEnv": "55"}, "target_utilization", 55.0),
    ],
)
def test_gpu_keys(extra: dict[str, str], field: str, expected: object) -> None:
    gpu = parse_trigger(gpu_only(**extra)).gpu
    assert gpu is not None
    assert getattr(gpu, field) == expected


def test_gpu_query_is_used_as_written() -> None:
    query = 'sum(rate(my_busy_seconds_total{app="llm"}[1m]))'
    cfg = parse_trigger({"prometheusServerAddress": PROM, "gpuQuery": query})
    assert cfg.gpu is not None
    assert cfg.gpu.query == query and cfg.gpu.selector is None
    assert cfg.metric_name == "gpu-query"


@pytest.mark.parametrize(
    ("selector", "normalised"),
    [
        ('pod="a"', 'pod="a"'),
        ('{namespace="ai"}', 'namespace="ai"'),  # braces as in PromQL are accepted
        ('namespace = "ai" , pod !~ "x-.*",', 'namespace = "ai" , pod !~ "x-.*"'),
        ("Hostname='node-1',gpu!=\"3\"", "Hostname='node-1',gpu!=\"3\""),
        ('pod=~"a\\"b"', 'pod=~"a\\"b"'),
    ],
)
def test_selector_syntax_accepted(selector: str, normalised: str) -> None:
    gpu = parse_trigger(gpu_only(gpuSelector=selector)).gpu
    assert gpu is not None
    assert gpu.selector == normalised
    assert gpu.query == gpu_selector_query(normalised, GpuRole.DEMAND, 5)


@pytest.mark.parametrize(
    "selector",
    [
        "sd-worker",
        "namespace=ai",
        'namespace="ai"}) or vector(1000',
        'namespace="ai" pod="x"',
        '1abc="x"',
        'namespace=="ai"',
        'namespace="ai',
        "{}",
    ],
)
def test_selector_junk_is_rejected(selector: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(gpu_only(gpuSelector=selector))
    assert info.value.key == "gpuSelector"
    assert "label matchers" in str(info.value)


@pytest.mark.parametrize(
    ("metadata", "key", "says"),
    [
        ({}, "source", "prometheusServerAddress"),  # neither a queue nor GPUs
        ({"source": "kafka"}, "source", "'sqs' or 'rabbitmq'"),
        ({"prometheusServerAddress": PROM}, "gpuSelector", "gpuQuery"),
        ({"gpuSelector": SELECTOR}, "prometheusServerAddress", "required"),
        ({"gpuRole": "guard"}, "gpuSelector", "required"),
        (gpu_only(gpuQuery="up"), "gpuQuery", "not both"),
        (gpu_only(prometheusServerAddress="prometheus:9090"), "prometheusServerAddress", "http"),
        (gpu_only(prometheusServerAddress="ftp://p:21"), "prometheusServerAddress", "http"),
        (gpu_only(prometheusServerAddress="http://p:99999"), "prometheusServerAddress", "port"),
        (gpu_only(prometheusServerAddress="http://p:9090/?x=1"), "prometheusServerAddress", "http"),
        (gpu_only(gpuTargetUtilization="0"), "gpuTargetUtilization", "a percentage, 1 to 100"),
        # a target near 0 would ask for absurd fleets, and one that underflows divides by 0
        (gpu_only(gpuTargetUtilization="0.5"), "gpuTargetUtilization", "a percentage, 1 to 100"),
        (gpu_only(gpuTargetUtilization="1e-323"), "gpuTargetUtilization", "a percentage, 1 to 100"),
        (gpu_only(gpuTargetUtilization="101"), "gpuTargetUtilization", "1 to 100"),
        (gpu_only(gpuTargetUtilization="-5"), "gpuTargetUtilization", "percentage"),
        (gpu_only(gpuTargetUtilization="high"), "gpuTargetUtilization", "percentage"),
        (gpu_only(gpuTargetUtilization="nan"), "gpuTargetUtilization", "percentage"),
        (gpu_only(gpusPerReplica="0"), "gpusPerReplica", "> 0"),
        (gpu_only(gpusPerReplica="-1"), "gpusPerReplica", "> 0"),
        (gpu_only(gpusPerReplica="inf"), "gpusPerReplica", "> 0"),
        (gpu_only(gpuActivationUtilization="-1"), "gpuActivationUtilization", "0 to 100"),
        (gpu_only(gpuActivationUtilization="100.5"), "gpuActivationUtilization", "0 to 100"),
        (gpu_only(gpuRole="boost"), "gpuRole", "'demand' or 'guard'"),
        (gpu_only(prometheusUsername="bob"), "prometheusPassword", "both"),
        (gpu_only(prometheusPassword="pw"), "prometheusUsername", "both"),
        (
            gpu_only(prometheusBearerToken="t", prometheusUsername="bob", prometheusPassword="pw"),
            "prometheusBearerToken",
            "not both",
        ),
        (
            gpu_only(
                prometheusServerAddress="http://a:b@p:9090", prometheusUsername="bob", prometheusPassword="pw"
            ),
            "prometheusUsername",
            "not both",
        ),
        (
            gpu_only(prometheusServerAddress="https://p:9090", unsafeSsl="maybe"),
            "unsafeSsl",
            "true or false",
        ),
        ({**RABBIT, **gpu_only(), "mode": "job"}, "mode", "'deployment'"),
    ],
)
def test_bad_gpu_metadata_names_the_key(metadata: dict[str, str], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(metadata)
    assert info.value.key == key
    assert says in str(info.value)


def test_basic_auth_from_keys_and_from_the_url_never_shown() -> None:
    cfg = parse_trigger(gpu_only(prometheusUsernameFromEnv="bob", prometheusPasswordFromEnv="s3cret-pw"))
    assert cfg.gpu is not None
    assert (cfg.gpu.username, cfg.gpu.password) == ("bob", "s3cret-pw")
    assert "s3cret-pw" not in repr(cfg)

    from_url = parse_trigger(
        gpu_only(prometheusServerAddress="https://bob:p%40ss-w0rd@prom.example:9443/prom/")
    )
    gpu = from_url.gpu
    assert gpu is not None
    assert (gpu.username, gpu.password) == ("bob", "p@ss-w0rd")
    assert gpu.server_address == "https://prom.example:9443/prom"  # user info moved out, no trailing /
    assert "p@ss" not in repr(from_url) and "p%40ss" not in repr(from_url)


def test_bearer_token_is_kept_out_of_reprs_and_errors() -> None:
    token = "eyJhbGciOi-secret-token"
    cfg = parse_trigger(gpu_only(prometheusBearerTokenFromEnv=token))
    assert cfg.gpu is not None and cfg.gpu.bearer_token == token
    assert token not in repr(cfg)
    with pytest.raises(ConfigError) as info:
        parse_trigger(gpu_only(prometheusBearerToken=token, gpuRole="nope"))
    assert token not in str(info.value)


def test_bad_address_error_does_not_echo_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        parse_trigger(gpu_only(prometheusServerAddress="ftp://bob:hunter2@p:21"))
    assert "hunter2" not in str(info.value)


def test_credential_identity_separates_credentials_and_tls_choice() -> None:
    def identity(**extra: str) -> str:
        gpu = parse_trigger(gpu_only(prometheusServerAddress="https://p:9090", **extra)).gpu
        assert gpu is not None
        return gpu.credential_identity()

    plain = identity()
    assert plain == identity()
    assert len({plain, identity(prometheusBearerToken="a"), identity(prometheusBearerToken="b")}) == 3
    assert identity(unsafeSsl="true") != plain
    assert "a" * 3 not in identity(prometheusBearerToken="aaa")


def test_unsafe_ssl_only_for_https_and_never_an_unknown_key() -> None:
    https = parse_trigger(gpu_only(prometheusServerAddress="https://p:9090", unsafeSsl="true"))
    assert https.gpu is not None and https.gpu.unsafe_ssl is True
    # For http, unsafeSsl is KEDA's own key (its connection to the scaler): ignored, not an error.
    http = parse_trigger(gpu_only(unsafeSsl="maybe"))
    assert http.gpu is not None and http.gpu.unsafe_ssl is False
    assert "unsafeSsl" not in http.unknown_keys and "unsafeSsl" not in https.unknown_keys


def test_gpu_keys_count_as_known_and_typos_as_unknown() -> None:
    cfg = parse_trigger(
        gpu_only(
            gpuRole="demand",
            gpusPerReplica="2",
            gpuTargetUtilization="70",
            gpuActivationUtilization="3",
            gpuTargetUtilisation="70",
        )
    )
    assert cfg.unknown_keys == ("gpuTargetUtilisation",)


def test_empty_gpu_values_do_not_turn_a_queue_trigger_into_a_gpu_trigger() -> None:
    cfg = parse_trigger({**RABBIT, "gpuQuery": "", "prometheusServerAddress": "  "})
    assert cfg.gpu is None


def test_activation_and_target_in_busy_gpus() -> None:
    levels = dict(gpusPerReplica="4", gpuTargetUtilization="50", gpuActivationUtilization="10")
    demand = parse_trigger(gpu_only(**levels)).gpu  # a GPU-only trigger's role: demand
    guard = parse_trigger(gpu_only(**levels, gpuRole="guard")).gpu
    assert demand is not None and guard is not None
    assert demand.activation_busy_gpus == pytest.approx(0.4)  # one replica's level: G sums duty
    assert guard.activation_busy_gpus == pytest.approx(0.1)  # one GPU's: G counts GPUs
    assert demand.busy_gpus_per_replica_at_target == pytest.approx(2.0)


def test_ignore_null_values_follows_keda() -> None:
    gpu = parse_trigger(gpu_only()).gpu
    assert gpu is not None and gpu.ignore_null_values is True  # KEDA's default
    strict = parse_trigger(gpu_only(ignoreNullValues="false")).gpu
    assert strict is not None and strict.ignore_null_values is False
    with pytest.raises(ConfigError, match="ignoreNullValues"):
        parse_trigger(gpu_only(ignoreNullValues="sometimes"))
