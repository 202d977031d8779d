"""What a trigger may make the scaler do: which hosts it may name, and whether
it may use the scaler's own cloud identity.

Whoever may create a ScaledObject writes the trigger metadata, so without limits
they choose where the scaler connects (any URL its network reaches) and, for SQS
without keys of their own, whose identity reads the queue (the scaler's IRSA
role, and any role that role may assume). `AccessPolicy` is the operator's limit
on both; `check_access` is a pure function of the parsed config, the object's
namespace (set by KEDA, not by the tenant) and the policy, applied by the engine
before any source is built, so a refused trigger never causes a connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scaler.config import ConfigError, TriggerConfig, quoted

ALLOWED_HOSTS_FLAG = "--allowed-hosts (PREWARM_ALLOWED_HOSTS)"
AMBIENT_IDENTITY_FLAG = "--ambient-identity-namespaces (PREWARM_AMBIENT_IDENTITY_NAMESPACES)"


@dataclass(frozen=True)
class Patterns:
    """Comma-separated names compared case-insensitively, where a first label that
    is `*` matches any run of characters, dots too (`*.svc.cluster.local`: any
    service in the cluster), and any other `*` a run within its label
    (`sqs.*.amazonaws.com`: SQS in any region, not `sqs.x.s3-website-...amazonaws.com`,
    a bucket anyone may name)."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, *, what: str) -> Patterns:
        """Raises ValueError naming the bad item (for the command line)."""
        # An IPv6 host may be written in brackets, as in a URL: "[fd00::1]".
        items = tuple(item.strip().lower().strip("[]") for item in text.split(",") if item.strip())
        for item in items:
            if not re.fullmatch(r"[a-z0-9.*_:-]+", item) or "://" in item:
                raise ValueError(
                    f"{what}: expected names of letters, digits, '.', '-', '_' and '*' "
                    f"(no scheme, path or port; IPv6 in brackets or bare), got {item!r}"
                )
        body = "|".join(_pattern_regex(item) for item in items)
        return cls(items, re.compile(f"(?:{body})" if items else r"(?!)"))

    def allows(self, name: str) -> bool:
        return self._regex.fullmatch(name.lower().rstrip(".")) is not None


def _pattern_regex(pattern: str) -> str:
    first, *rest = pattern.split(".")
    # A first label that is a lone star spans labels; any other star stays in its label.
    head = ".*" if first == "*" else "[^.]*".join(re.escape(part) for part in first.split("*"))
    tail = ["[^.]*".join(re.escape(part) for part in label.split("*")) for label in rest]
    return r"\.".join([head, *tail])


@dataclass(frozen=True)
class AccessPolicy:
    """The operator's limits. None: no limit (the default)."""

    # Hosts a trigger may name (queue URLs, endpoints, Prometheus addresses).
    allowed_hosts: Patterns | None = None
    # Namespaces whose triggers may use the scaler's ambient cloud identity
    # (IRSA, Pod Identity, its environment) and assume roles with it.
    ambient_identity_namespaces: Patterns | None = None

    @property
    def open(self) -> bool:
        return self.allowed_hosts is None and self.ambient_identity_namespaces is None


def trigger_hosts(cfg: TriggerConfig) -> list[tuple[str, str]]:
    """(metadata key, host) for every host the trigger makes the scaler reach.
    A source that reads a new kind of address must add it here."""
    hosts: list[tuple[str, str]] = []
    if cfg.sqs is not None:
        if not cfg.sqs.is_name_only:  # a queue's short name names no host; the endpoint below is reached
            hosts.append(("queueURL", _host(cfg.sqs.queue_url)))
        if cfg.sqs.endpoint is not None:
            hosts.append(("awsEndpoint", _host(cfg.sqs.endpoint)))
        else:
            # Without awsEndpoint the SDK reads SQS's regional endpoint for awsRegion.
            hosts.append(("awsRegion", f"sqs.{cfg.sqs.region}.amazonaws.com"))
    if cfg.rabbitmq is not None:
        hosts.append(("host", _host(cfg.rabbitmq.url)))
    if cfg.gpu is not None:
        hosts.append(("prometheusServerAddress", _host(cfg.gpu.server_address)))
    forecast = cfg.forecast
    for query in (forecast.arrival_query, forecast.cold_start_query):
        if query is not None and cfg.gpu is None:  # the GPU's address was added above
            hosts.append(("prometheusServerAddress", _host(query.server_address)))
            break
    return hosts


def ambient_identity_key(cfg: TriggerConfig) -> str | None:
    """The metadata key through which the trigger would use the scaler's own cloud
    identity, or None when it brings its own credentials (or needs none)."""
    sqs = cfg.sqs
    if sqs is None or sqs.access_key_id is not None:
        # Static keys, even with awsRoleArn: the role is assumed as the tenant's own principal.
        return None
    return "awsRoleArn" if sqs.role_arn is not None else "awsAccessKeyID"


def check_access(cfg: TriggerConfig, namespace: str, policy: AccessPolicy) -> None:
    """Raise ConfigError (INVALID_ARGUMENT) when the policy refuses the trigger."""
    if policy.open:
        return
    if policy.allowed_hosts is not None:
        for key, host in trigger_hosts(cfg):
            if not policy.allowed_hosts.allows(host):
                raise ConfigError(key, f"a host that {ALLOWED_HOSTS_FLAG} allows", host)  # quoted, cut
    if policy.ambient_identity_namespaces is not None:
        identity_key = ambient_identity_key(cfg)
        if identity_key is not None and not policy.ambient_identity_namespaces.allows(namespace):
            use = "assume awsRoleArn with" if identity_key == "awsRoleArn" else "use"
            raise ConfigError(
                identity_key,
                "the queue's own credentials (awsAccessKeyIDFromEnv and awsSecretAccessKeyFromEnv, "
                "from the workload's environment: KEDA does not pass a TriggerAuthentication to "
                f"an external scaler): namespace {quoted(namespace)} may not {use} "
                f"the scaler's own AWS identity ({AMBIENT_IDENTITY_FLAG})",
            )


def _host(url: str) -> str:
    # The parser has validated every URL, so there is a host (user info excluded).
    return (urlsplit(url).hostname or "").rstrip(".")
