"""scaler.access: host patterns, the hosts a trigger names, and the access check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import urllib3

from scaler.access import (
    AccessPolicy,
    Patterns,
    ambient_identity_key,
    check_access,
    trigger_hosts,
)
from scaler.config import ConfigError, parse_trigger

SQS = {
    "source": "sqs",
    "queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/prompts",
}
SQS_KEYS = {**SQS, "awsAccessKeyID": "AKIDEXAMPLE", "awsSecretAccessKey": "s3cr3t-value"}
RABBIT = {
    "source": "rabbitmq",
    "host": "amqp://user:pw@rabbit.queues.svc.cluster.local:5672/",
    "queueName": "q",
}
GPU = {
    "prometheusServerAddress": "http://prometheus.monitoring.svc.cluster.local:9090",
    "gpuSelector": 'namespace="ai"',
}


def hosts_policy(text: str) -> AccessPolicy:
    return AccessPolicy(allowed_hosts=Patterns.parse(text, what="host pattern"))


def identity_policy(text: str) -> AccessPolicy:
    return AccessPolicy(ambient_identity_namespaces=Patterns.parse(text, what="namespace pattern"))


@pytest.mark.parametrize(
    ("patterns", "host", "allowed"),
    [
        ("*.svc.cluster.local", "rabbit.queues.svc.cluster.local", True),
        ("*.svc.cluster.local", "svc.cluster.local.evil.example", False),
        ("sqs.*.amazonaws.com", "sqs.eu-west-1.amazonaws.com", True),
        ("sqs.*.amazonaws.com", "sqs.us-east-1.amazonaws.com.evil.example", False),
        ("rabbit.example.com", "RABBIT.example.com.", True),  # case, trailing dot
        ("rabbit.example.com", "xrabbit.example.com", False),  # a whole-name match, not a suffix
        ("a.example, b.example", "b.example", True),
        ("[fd00::1]", "fd00::1", True),
        ("127.0.0.0/24", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.10", False),
        ("*", "anything.at.all", True),
        ("*.svc.cluster.local", "a.b.svc.cluster.local", True),  # a first label "*" spans labels
        # a later label's star stays within it: SQS in any region, not an S3 website
        # bucket (a name anyone can take) under amazonaws.com
        ("sqs.*.amazonaws.com", "sqs.attacker.s3-website-us-east-1.amazonaws.com", False),
        ("127.0.0.0/24", "127.0.0.1.evil.example", False),
        ("rabbit-*.example.com", "rabbit-a.example.com", True),
        ("rabbit-*.example.com", "rabbit-a.evil.example.com", False),
    ],
)
def test_patterns(patterns: str, host: str, allowed: bool) -> None:
    assert Patterns.parse(patterns, what="host pattern").allows(host) is allowed


@pytest.mark.parametrize("bad", ["http://rabbit", "rabbit/vhost", "rabbit.example.com:5672/x", "a b"])
def test_pattern_rejects_urls_and_junk(bad: str) -> None:
    with pytest.raises(ValueError, match="host pattern"):
        Patterns.parse(bad, what="host pattern")


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("10.0.*.*", "10.0.0.0/16"),
        ("192.168.1.*", "192.168.1.0/24"),
        ("10.*.*.*", "10.0.0.0/8"),
        ("10.*", "such as 10.0.0.0/16"),
        ("*.1", "such as 10.0.0.0/16"),
        ("1*.0.0.1", "such as 10.0.0.0/16"),
        ("10.1", "such as 10.0.0.0/16"),  # not an address to ipaddress, 10.0.0.1 to a resolver
        ("fd00::*", "fd00::/8"),
    ],
)
def test_an_ip_shaped_wildcard_is_refused_pointing_to_cidr(pattern: str, hint: str) -> None:
    """As text, '10.0.*.*' also allowed the name 10.0.attacker.example, which its owner
    may point at any address (the cloud metadata service, another tenant's broker)."""
    with pytest.raises(ValueError, match="CIDR") as info:
        Patterns.parse(f"*.svc.cluster.local,{pattern}", what="host pattern")
    assert hint in str(info.value) and repr(pattern) in str(info.value)


@pytest.mark.parametrize(
    ("patterns", "host", "allowed"),
    [
        ("10.0.0.0/16", "10.0.1.7", True),
        ("10.0.0.0/16", "10.1.0.1", False),
        ("10.0.0.0/16", "10.0.attacker.example", False),  # a range matches addresses only
        ("10.0.0.0/16", "10.0.1", False),  # a resolver's 10.0.0.1, not an address here
        ("fd00::/8", "fd12:3456::1", True),
        ("[fd00::]/8", "[FD12::1]", True),
        ("fd00::/8", "fe80::1", False),
        ("127.0.0.0/8", "::ffff:127.0.0.1", False),  # IPv4-mapped IPv6: another family
        ("fd00::1", "fd00:0:0::1", True),  # addresses compared as addresses
        ("10.0.0.7", "10.0.0.7", True),
        # Name patterns match names only: a name with '*' never matches an IP literal...
        ("*.svc.cluster.local", "10.0.0.1", False),
        ("*.*.*.*", "10.0.0.1", False),
        # ...but '*' alone is every host, addresses too, as before.
        ("*", "10.0.0.1", True),
        ("*", "fd00::1", True),
        ("10.0.0.0/8,*.svc.cluster.local", "rabbit.q.svc.cluster.local", True),
        ("10.0.0.0/8,*.svc.cluster.local", "10.9.9.9", True),
    ],
)
def test_cidr_ranges_match_ip_literals_and_names_match_names(patterns: str, host: str, allowed: bool) -> None:
    assert Patterns.parse(patterns, what="host pattern").allows(host) is allowed


def test_a_cidr_range_holds_the_parsed_hosts_ip() -> None:
    policy = hosts_policy("10.0.0.0/16")
    check_access(parse_trigger({**RABBIT, "host": "amqp://u:p@10.0.1.7/"}), "team-a", policy)
    with pytest.raises(ConfigError, match=r"10\.0\.attacker\.example"):
        check_access(parse_trigger({**RABBIT, "host": "amqp://u:p@10.0.attacker.example/"}), "team-a", policy)


@pytest.mark.parametrize("bad", ["10.0.0.1/16", "10.0.0.0/33", "rabbit/24", "fd00::/129"])
def test_a_bad_cidr_range_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"host pattern: expected an address range in CIDR notation"):
        Patterns.parse(bad, what="host pattern")


@pytest.mark.parametrize("bad", ["rabbit.example.com:5672", "10.0.0.7:5672", "*.svc.cluster.local:9090"])
def test_a_pattern_with_a_port_is_refused_saying_patterns_take_no_port(bad: str) -> None:
    """It was accepted and then matched no host, so every trigger was refused."""
    with pytest.raises(ValueError, match="patterns take no port"):
        Patterns.parse(bad, what="host pattern")
    # IPv6 addresses have colons and no port.
    assert Patterns.parse("fd00::1,[::1]", what="host pattern").allows("::1")


@pytest.mark.parametrize(("pattern", "host"), [("rabbit.example.com.", "rabbit.example.com"),
                                               ("rabbit.example.com.", "rabbit.example.com."),
                                               ("*.svc.cluster.local.", "a.svc.cluster.local"),
                                               ("10.0.0.7.", "10.0.0.7")])  # fmt: skip
def test_a_patterns_trailing_dot_is_dropped_as_a_hosts_is(pattern: str, host: str) -> None:
    patterns = Patterns.parse(pattern, what="host pattern")
    assert patterns.allows(host)
    assert patterns.patterns == (pattern.rstrip("."),)


def test_describe_states_each_limit() -> None:
    assert AccessPolicy().describe() == {"allowed_hosts": "any", "ambient_identity_namespaces": "any"}
    policy = AccessPolicy(
        allowed_hosts=Patterns.parse("*.svc.cluster.local, [fd00::]/8", what="host pattern"),
        ambient_identity_namespaces=Patterns.parse("", what="namespace pattern"),
    )
    assert policy.describe() == {
        "allowed_hosts": "*.svc.cluster.local,fd00::/8",
        "ambient_identity_namespaces": "none",
    }


def test_empty_patterns_allow_nothing() -> None:
    assert not Patterns.parse("", what="namespace pattern").allows("default")
    assert not Patterns.parse(" , ", what="namespace pattern").allows("")


def test_trigger_hosts_name_every_host_the_scaler_would_reach() -> None:
    with_endpoint = parse_trigger(
        {**SQS_KEYS, "awsEndpoint": "https://vpce-1.sqs.us-east-1.vpce.amazonaws.com"}
    )
    assert trigger_hosts(with_endpoint) == [
        ("queueURL", "sqs.us-east-1.amazonaws.com"),
        ("awsEndpoint", "vpce-1.sqs.us-east-1.vpce.amazonaws.com"),
    ]
    regional = parse_trigger({**SQS_KEYS, "awsRegion": "eu-west-1"})
    assert ("awsRegion", "sqs.eu-west-1.amazonaws.com") in trigger_hosts(regional)
    both = parse_trigger({**RABBIT, **GPU})
    assert trigger_hosts(both) == [
        ("host", "rabbit.queues.svc.cluster.local"),  # no user info
        ("prometheusServerAddress", "prometheus.monitoring.svc.cluster.local"),
    ]


def test_a_queue_named_by_its_short_name_is_checked_by_its_endpoint() -> None:
    # KEDA's `queueURL: myQueue`: no host in it; GetQueueUrl goes to the endpoint.
    named = parse_trigger({**SQS_KEYS, "queueURL": "prompts", "awsRegion": "us-east-1"})
    assert trigger_hosts(named) == [("awsRegion", "sqs.us-east-1.amazonaws.com")]
    policy = hosts_policy("*.svc.cluster.local,sqs.*.amazonaws.com")
    check_access(named, "default", policy)
    elsewhere = parse_trigger(
        {**SQS_KEYS, "queueURL": "prompts", "awsRegion": "us-east-1", "awsEndpoint": "http://10.0.0.9"}
    )
    with pytest.raises(ConfigError) as refused:
        check_access(elsewhere, "default", policy)
    assert refused.value.key == "awsEndpoint"


def test_open_policy_refuses_nothing() -> None:
    for metadata in (SQS, SQS_KEYS, RABBIT, GPU):
        check_access(parse_trigger(metadata), "any", AccessPolicy())


@pytest.mark.parametrize(
    ("metadata", "key", "host"),
    [
        ({**RABBIT, "host": "http://u:pw@10.0.0.1:15672"}, "host", "10.0.0.1"),
        ({**SQS_KEYS, "awsEndpoint": "http://169.254.169.254"}, "awsEndpoint", "169.254.169.254"),
        (
            {**SQS_KEYS, "queueURL": "https://evil.example/1/q", "awsRegion": "us-east-1"},
            "queueURL",
            "evil.example",
        ),
        (
            {**GPU, "prometheusServerAddress": "http://u:pw@metadata.google.internal"},
            "prometheusServerAddress",
            "metadata.google.internal",
        ),
    ],
)
def test_a_host_outside_the_list_is_refused_naming_key_host_and_flag(
    metadata: dict[str, str], key: str, host: str
) -> None:
    policy = hosts_policy("*.svc.cluster.local,sqs.*.amazonaws.com")
    with pytest.raises(ConfigError) as refused:
        check_access(parse_trigger(metadata), "default", policy)
    message = str(refused.value)
    assert refused.value.key == key
    assert repr(host) in message
    assert "--allowed-hosts" in message and "PREWARM_ALLOWED_HOSTS" in message
    assert "pw" not in message.replace(host, "")  # the URL's password is never quoted


def test_hosts_inside_the_list_pass() -> None:
    policy = hosts_policy("*.svc.cluster.local,sqs.*.amazonaws.com")
    for metadata in (SQS_KEYS, RABBIT, GPU, {**RABBIT, **GPU}):
        check_access(parse_trigger(metadata), "default", policy)


# Authorities that urllib3 (requests), pika or botocore would read with another host
# than urlsplit, which the policy reads: "\\" ends urllib3's host, so the first would
# pass *.svc.cluster.local and connect to 127.0.0.1.
ODD_AUTHORITIES = [
    "127.0.0.1\\.prom.monitoring.svc.cluster.local",
    "evil.example\\@prom.monitoring.svc.cluster.local",
    "u:p@evil.example\\@prom.monitoring.svc.cluster.local",
    "evil.example%40prom.monitoring.svc.cluster.local",
    "prom.monitoring.svc.cluster.local\u3002evil.example",
    "prom.monitoring.svc.cluster.local\x00.evil.example",
]


@pytest.mark.parametrize("authority", ODD_AUTHORITIES)
@pytest.mark.parametrize(
    ("key", "metadata"),
    [
        ("prometheusServerAddress", lambda a: {**GPU, "prometheusServerAddress": f"http://{a}:9090"}),
        ("host", lambda a: {**RABBIT, "host": f"amqp://{a}:5672/"}),
        ("host", lambda a: {**RABBIT, "protocol": "http", "host": f"http://{a}:15672/"}),
        ("awsEndpoint", lambda a: {**SQS_KEYS, "awsEndpoint": f"http://{a}:4566"}),
        ("queueURL", lambda a: {**SQS_KEYS, "queueURL": f"https://{a}/123456789012/q"}),
    ],
)
def test_an_authority_clients_read_differently_is_refused_before_any_policy(
    authority: str, key: str, metadata: Callable[[str], dict[str, str]]
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_trigger(metadata(authority))
    assert refused.value.key == key
    assert "DNS name or an IP address" in str(refused.value)
    assert "evil" not in str(refused.value) and "127.0.0.1" not in str(refused.value)


@pytest.mark.parametrize(
    "address",
    [
        "http://prom.monitoring.svc.cluster.local:9090",
        "http://user:p%40ss@prom.monitoring.svc.cluster.local:9090/prefix",
        "https://10.0.0.7",
        "http://[fd00::1]:9090",
        "http://prom_1.monitoring.svc.cluster.local.:9090",
    ],
)
def test_the_policy_reads_the_host_the_http_client_connects_to(address: str) -> None:
    cfg = parse_trigger({**GPU, "prometheusServerAddress": address})
    ((_, host),) = trigger_hosts(cfg)
    connected = urllib3.util.parse_url(address).host or ""
    assert host == connected.strip("[]").rstrip(".").lower()


def test_a_long_host_is_cut_in_the_message() -> None:
    host = "a" * 60 + "." + "b" * 60 + ".example"
    cfg = parse_trigger({**RABBIT, "host": f"amqp://{host}/"})
    with pytest.raises(ConfigError) as refused:
        check_access(cfg, "default", hosts_policy("*.svc.cluster.local"))
    assert host not in str(refused.value)
    assert f"{host[:97]}...' ({len(host)} characters)" in str(refused.value)  # config.quoted


@pytest.mark.parametrize(
    ("metadata", "key"),
    [
        (SQS, "awsAccessKeyID"),  # IRSA / the scaler's environment
        ({**SQS, "awsRoleArn": "arn:aws:iam::123456789012:role/team-a-queue"}, "awsRoleArn"),
        (SQS_KEYS, None),  # the tenant's own keys
        ({**SQS_KEYS, "awsRoleArn": "arn:aws:iam::123456789012:role/x"}, None),  # assumed as the tenant
        (RABBIT, None),
        (GPU, None),
    ],
)
def test_ambient_identity_key(metadata: dict[str, str], key: str | None) -> None:
    assert ambient_identity_key(parse_trigger(metadata)) == key


def test_ambient_identity_only_for_listed_namespaces() -> None:
    policy = identity_policy("diffusion,team-a-*")
    ambient = parse_trigger(SQS)
    role = parse_trigger({**SQS, "awsRoleArn": "arn:aws:iam::123456789012:role/team-a-queue"})
    for namespace in ("diffusion", "team-a-prod"):
        check_access(ambient, namespace, policy)
        check_access(role, namespace, policy)
    with pytest.raises(ConfigError) as refused:
        check_access(ambient, "team-b", policy)
    assert refused.value.key == "awsAccessKeyID"
    assert "'team-b'" in str(refused.value) and "--ambient-identity-namespaces" in str(refused.value)
    with pytest.raises(ConfigError) as refused_role:
        check_access(role, "team-b", policy)
    assert refused_role.value.key == "awsRoleArn"
    assert "assume awsRoleArn" in str(refused_role.value)
    # Keys of its own: any namespace; so are sources with no cloud identity.
    check_access(parse_trigger(SQS_KEYS), "team-b", policy)
    check_access(parse_trigger(RABBIT), "team-b", policy)


def test_empty_namespace_list_refuses_ambient_identity_everywhere() -> None:
    with pytest.raises(ConfigError):
        check_access(parse_trigger(SQS), "diffusion", identity_policy(""))


def test_a_refused_key_given_as_from_env_is_named_as_written() -> None:
    """The access check runs on the parsed config, which has lost whether `host`
    came as `hostFromEnv`: the engine names the key the user wrote."""
    from scaler.clock import ManualClock
    from scaler.engine import Engine, ObjectRef
    from scaler.signals.cache import ReadingCache

    clock = ManualClock()
    engine = Engine(ReadingCache(clock), clock, access=hosts_policy("*.svc.cluster.local"))
    metadata = {k: v for k, v in RABBIT.items() if k != "host"}
    metadata["hostFromEnv"] = "http://u:pw@10.0.0.1:15672"
    with pytest.raises(ConfigError) as refused:
        engine.config(ObjectRef("default", "so"), metadata)
    assert refused.value.key == "hostFromEnv"
    assert "'hostFromEnv'" in str(refused.value) and "--allowed-hosts" in str(refused.value)
    plain = {**metadata, "host": metadata.pop("hostFromEnv")}
    with pytest.raises(ConfigError) as refused_plain:
        engine.config(ObjectRef("default", "so"), plain)
    assert refused_plain.value.key == "host"
