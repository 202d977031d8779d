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

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from scaler.config import ConfigError, TriggerConfig, quoted

ALLOWED_HOSTS_FLAG = "--allowed-hosts (PREWARM_ALLOWED_HOSTS)"
AMBIENT_IDENTITY_FLAG = "--ambient-identity-namespaces (PREWARM_AMBIENT_IDENTITY_NAMESPACES)"


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Patterns:
    """Comma-separated patterns compared case-insensitively.

    A name pattern matches names only, never an IP literal: a first label that is
    `*` matches any run of characters, dots too (`*.svc.cluster.local`: any service
    in the cluster), and any other `*` a run within its label (`sqs.*.amazonaws.com`:
    SQS in any region, not `sqs.x.s3-website-...amazonaws.com`, a bucket anyone may
    name). An IP address (`10.0.0.7`, `fd00::1`, bare or in brackets) or a CIDR range
    (`10.0.0.0/16`, `fd00::/8`) matches IP literals only, compared as addresses. A lone
    `*` matches every host, names and addresses alike."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] = field(repr=False, compare=False)
    _networks: tuple[_Network, ...] = field(default=(), repr=False, compare=False)
    _everything: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, *, what: str) -> Patterns:
        """Raises ValueError naming the bad item (for the command line)."""
        items: list[str] = []
        names: list[str] = []
        networks: list[_Network] = []
        for raw in text.split(","):
            item = _unbracketed(raw.strip().lower())
            if not item:
                continue
            network = _network(item, what=what)
            if network is not None:
                networks.append(network)
            else:
                names.append(item)
            items.append(item)
        body = "|".join(_pattern_regex(name) for name in names)
        return cls(
            tuple(items),
            re.compile(f"(?:{body})" if names else r"(?!)"),
            tuple(networks),
            "*" in names,
        )

    def allows(self, name: str) -> bool:
        host = _unbracketed(name.lower())
        if self._everything:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return self._regex.fullmatch(host) is not None
        # An IPv4 address is never in an IPv6 range, nor the reverse (False, not an error).
        return any(address in network for network in self._networks)


def _unbracketed(host: str) -> str:
    """A host or pattern as compared: an IPv6 address may be written in brackets, as in a
    URL ("[fd00::1]", "[fd00::]/8"), and a trailing dot (a fully qualified name) is dropped."""
    found = re.fullmatch(r"\[([^\]]*)\](/.*)?", host)
    if found:
        host = found.group(1) + (found.group(2) or "")
    return host.rstrip(".")


def _network(item: str, *, what: str) -> _Network | None:
    """The addresses an IP address or CIDR pattern matches; None for a name pattern.
    Raises ValueError for a pattern that is neither, naming why."""
    if "/" in item and "://" not in item:
        try:
            return ipaddress.ip_network(item)
        except ValueError as exc:
            raise ValueError(
                f"{what}: expected an address range in CIDR notation, such as 10.0.0.0/16 or "
                f"fd00::/8, got {item!r} ({exc})"
            ) from None
    if not re.fullmatch(r"[a-z0-9.*_:-]+", item) or "://" in item:
        raise ValueError(
            f"{what}: expected names of letters, digits, '.', '-', '_' and '*', IP addresses "
            f"(IPv6 in brackets or bare) or CIDR ranges (no scheme, path or port), got {item!r}"
        )
    if ":" in item:
        if item.count(":") == 1:
            raise ValueError(
                f"{what}: patterns take no port (the host alone allows every port), got {item!r}"
            )
        try:
            return ipaddress.ip_network(ipaddress.ip_address(item))
        except ValueError:
            raise ValueError(
                f"{what}: expected an IPv6 address (a range is written in CIDR notation, such as "
                f"fd00::/8), got {item!r}"
            ) from None
    try:
        return ipaddress.ip_network(ipaddress.ip_address(item))
    except ValueError:
        pass
    labels = item.split(".")
    if (
        len(labels) > 1
        and any(c.isdigit() for c in item)
        and all(re.fullmatch(r"[0-9*]+", x) for x in labels)
    ):
        # Written as text, '10.0.*.*' would also allow the name 10.0.attacker.example,
        # which anyone may point at any address; and '10.1' is not an address here
        # but is one to most resolvers (10.0.0.1).
        hint = _cidr_hint(labels)
        raise ValueError(
            f"{what}: {item!r} is written like an IP address but is not one; name an address "
            f"range in CIDR notation{f' ({hint})' if hint else ', such as 10.0.0.0/16'}"
        )
    return None


def _cidr_hint(labels: list[str]) -> str | None:
    """'10.0.*.*' -> '10.0.0.0/16': the range a prefix of whole octets and then stars meant."""
    fixed = [label for label in labels if label != "*"]
    if (
        len(labels) != 4
        or labels[: len(fixed)] != fixed
        or not all(label.isdigit() and int(label) <= 255 for label in fixed)
    ):
        return None
    return ".".join([*fixed, *["0"] * (4 - len(fixed))]) + f"/{8 * len(fixed)}"


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

    def describe(self) -> dict[str, str]:
        """Each limit as the "serving" log line states it: its patterns, "any" when
        the limit is off, "none" when it is an empty list."""

        def shown(patterns: Patterns | None) -> str:
            if patterns is None:
                return "any"
            return ",".join(patterns.patterns) or "none"

        return {
            "allowed_hosts": shown(self.allowed_hosts),
            "ambient_identity_namespaces": shown(self.ambient_identity_namespaces),
        }


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
