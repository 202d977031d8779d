"""Command line: `prewarm serve` (and `python -m scaler serve`), `prewarm explain`.

Every `serve` flag can also be set from an environment variable, PREWARM_<FLAG>
(for example PREWARM_PORT, PREWARM_LOG_FORMAT); a flag on the command line wins.
`serve` warns at start-up about a PREWARM_* variable that names no flag (a typo
would otherwise leave its setting at the default, silently).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaler import __version__
from scaler.access import AccessPolicy, Patterns
from scaler.argtypes import number, port, seconds, whole
from scaler.signals.cache import DEFAULT_TTL, POLLED_READING_AGE

if TYPE_CHECKING:
    from scaler.server import Settings

ENV_PREFIX = "PREWARM_"
# Every PREWARM_* variable a flag reads (filled in by _add as the parsers are built).
ENV_NAMES: set[str] = set()


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


@dataclass(frozen=True)
class _BadVariable:
    """A PREWARM_* variable whose value its flag refuses: kept as the flag's default
    and reported only when that flag's subcommand is the one run (a bad serve
    variable in the scaler's pod must not break `prewarm explain` or `--version`)."""

    message: str


class _Subcommand(argparse.ArgumentParser):
    """A subcommand's parser: refuses a bad PREWARM_* variable among its own defaults
    (_BadVariable) once parsed, unless its flag was given on the command line."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for value in vars(parsed).values():
            if isinstance(value, _BadVariable):
                self.error(value.message)
        return parsed, extras


def _add(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    type: Callable[[str], Any] = str,
    default: Any = None,
    help: str,
    **kwargs: Any,
) -> None:
    """A flag whose default comes from PREWARM_<FLAG> when that is set. Its help
    shows the built-in default (unless the help already says it) and the variable."""
    env = _env_name(flag)
    ENV_NAMES.add(env)
    if "default" not in help.lower():
        help += f" (default: {_shown(default)})"
    raw = os.environ.get(env)
    if raw is not None:
        try:
            default = type(raw)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            default = _BadVariable(f"environment variable {env}={raw!r}: {exc}")
        help += f" [env {env}, set to {raw!r}]"
    else:
        help += f" [env {env}]"
    # argparse %-formats help: a % in a value must not break --help.
    parser.add_argument(flag, type=type, default=default, help=help.replace("%", "%%"), **kwargs)


def _shown(default: Any) -> str:
    if default is None:
        return "none"
    return f"{default:g}" if isinstance(default, float) else str(default)


def _log_format(text: str) -> str:
    if text not in ("json", "text"):
        raise argparse.ArgumentTypeError(f"expected 'json' or 'text', got {text!r}")
    return text


def _log_level(text: str) -> str:
    if text.lower() not in ("debug", "info", "warning", "error"):
        raise argparse.ArgumentTypeError(f"expected debug, info, warning or error, got {text!r}")
    return text.lower()


def _tls_file(text: str) -> str:
    # An empty path is refused rather than read as unset: PREWARM_TLS_CLIENT_CA= meant
    # as "on" would otherwise turn mutual TLS off (or TLS itself, for the certificate).
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected the path of a PEM file (leave unset for none), got {text!r}"
        )
    return text


def _host_patterns(text: str) -> Patterns:
    try:
        patterns = Patterns.parse(text, what="host pattern")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not patterns.patterns:
        # An empty list would refuse every trigger; unset the flag to allow any host.
        raise argparse.ArgumentTypeError("expected at least one host pattern (leave unset to allow any)")
    return patterns


def _namespace_patterns(text: str) -> Patterns:
    try:
        return Patterns.parse(text, what="namespace pattern")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_access_flags(parser: argparse.ArgumentParser) -> None:
    """The operator's limits on what a trigger may make the scaler reach (AccessPolicy)."""
    _add(
        parser,
        "--allowed-hosts",
        type=_host_patterns,
        help="comma-separated hosts a trigger may name (host, queueURL, awsEndpoint, "
        "prometheusServerAddress): names, '*' matching within a label (a first label '*': any "
        "labels), which match names only, e.g. '*.svc.cluster.local,sqs.*.amazonaws.com'; IP "
        "addresses and CIDR ranges ('10.0.0.0/16', 'fd00::/8'), which match IP addresses only; "
        "'*' alone: every host. No port. Any other host is INVALID_ARGUMENT without a connection. "
        "Default: any host",
    )
    _add(
        parser,
        "--ambient-identity-namespaces",
        type=_namespace_patterns,
        help="comma-separated namespaces ('*' wildcard) whose triggers may use the scaler's own "
        "AWS identity (IRSA, Pod Identity, its environment) and assume awsRoleArn with it; "
        "others must bring keys. Empty: no namespace. Default: every namespace",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prewarm",
        description="KEDA external scaler for GPU inference (queue backlog, GPU duty cycle, forecast).",
    )
    parser.add_argument("--version", action="version", version=f"prewarm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Subcommand)

    serve = sub.add_parser("serve", help="run the gRPC external scaler")
    _add(serve, "--host", default="[::]", help="address to listen on")
    _add(serve, "--port", type=port, default=6000, help="gRPC port")
    _add(
        serve, "--metrics-port", type=port, default=8080, help="Prometheus /metrics HTTP port; 0 disables it"
    )
    _add(serve, "--log-format", type=_log_format, default="json", help="json or text")
    _add(serve, "--log-level", type=_log_level, default="info", help="debug, info, warning or error")
    _add(
        serve,
        "--cache-ttl",
        type=seconds,
        default=DEFAULT_TTL,
        help="seconds a source reading is shared before it is read again",
    )
    _add(
        serve,
        "--polled-reading-age",
        type=seconds,
        default=POLLED_READING_AGE,
        help="the oldest queue reading GetMetrics and IsActive answer from, in seconds "
        "(KEDA's own scalers read at each call; up to --cache-ttl shares more)",
    )
    _add(
        serve,
        "--source-timeout",
        type=seconds,
        default=5.0,
        help="seconds one source read may take before the answer is UNAVAILABLE",
    )
    _add(
        serve,
        "--stream-interval",
        type=seconds,
        default=1.0,
        help="seconds between StreamIsActive re-evaluations",
    )
    _add(
        serve,
        "--read-threads",
        type=whole(1, 1024),
        default=64,
        help="threads for blocking source reads (SQS, RabbitMQ's management API, Prometheus; "
        "AMQP reads run on the event loop): the most distinct sources read at once "
        "(a hung source holds one until its read returns)",
    )
    _add(
        serve,
        "--max-pending-calls",
        type=whole(1, 10_000_000),
        default=20_000,
        help="calls accepted but not yet picked up past which new ones are refused (CANCELLED): "
        "at random up to twice this, then all; KEDA opens every object's stream at once when it starts",
    )
    _add(
        serve,
        "--grace-period",
        type=seconds,
        default=10.0,
        help="seconds calls in flight get to finish on SIGTERM",
    )
    _add(
        serve,
        "--keepalive-time",
        type=seconds,
        default=30.0,
        help="seconds of silence on a client connection before the server pings it, so a "
        "stream whose client vanished (no FIN) ends",
    )
    _add(
        serve,
        "--keepalive-timeout",
        type=seconds,
        default=10.0,
        help="seconds the server waits for the ping's answer before closing the connection",
    )
    _add(serve, "--tls-cert", type=_tls_file, help="server certificate (PEM); enables TLS with --tls-key")
    _add(serve, "--tls-key", type=_tls_file, help="server private key (PEM)")
    _add(
        serve,
        "--tls-client-ca",
        type=_tls_file,
        help="CA bundle (PEM); when set, clients must present a certificate it signed (mTLS)",
    )
    _add(
        serve,
        "--max-connection-age",
        type=number(0, 86_400),
        help="seconds a client connection may stay open before the server asks the client to "
        "reconnect (GOAWAY; calls in flight get 30 s more, then the connection closes), so a "
        "rotated --tls-client-ca or an expired client certificate reaches every connection; "
        # server.MTLS_MAX_CONNECTION_AGE (test_cli checks the two agree)
        "0: no limit. Default: 3600 with --tls-client-ca, else no limit",
    )
    _add(
        serve,
        "--health-port",
        type=port,
        default=0,
        help="plaintext port serving only the gRPC health service (for kubelet probes when "
        "--tls-cert is set, since they cannot speak TLS); 0 disables it",
    )

    _add_access_flags(serve)

    explain = sub.add_parser(
        "explain",
        help="read a ScaledObject/ScaledJob manifest, query its sources live, and show the decision",
        description="Reads the manifest as written (resolving ...FromEnv metadata from this shell's "
        "environment), reads the live sources as the server would, and shows each signal, each term, "
        "the answer to KEDA, and what KEDA and the HPA would do. Exit status: 0 ok, 1 a source "
        "could not be read, 2 bad manifest, metadata or query.",
    )
    explain.add_argument(
        "-f",
        "--file",
        required=True,
        help="the manifest (YAML, multi-document ok: its first ScaledObject or ScaledJob), - for "
        "stdin, or a folder: every ScaledObject and ScaledJob in its .yaml, .yml and .json files "
        "(as kubectl apply -f reads a folder; sub-folders are not read)",
    )
    explain.add_argument(
        "--trigger",
        type=whole(0),
        default=None,
        help="index in spec.triggers (default: the first external or external-push trigger)",
    )
    explain.add_argument("--json", action="store_true", help="print one JSON document")
    explain.add_argument(
        "--running",
        type=whole(0),
        default=0,
        help="ScaledJob: unfinished Jobs now, pending ones included, as KEDA counts them (default 0)",
    )
    explain.add_argument(
        "--pending",
        type=whole(0),
        default=0,
        help="ScaledJob: of those, Jobs whose pods have not started (or not met pendingPodConditions) "
        "(default 0)",
    )
    explain.add_argument(
        "--timeout", type=seconds, default=5.0, help="seconds each source read may take (default 5)"
    )
    # The server's limits, from the same PREWARM_* variables: run in the scaler's pod
    # (kubectl exec), explain refuses what the server refuses, and says which limit.
    _add_access_flags(explain)
    from scaler.sim.main import add_parser as add_simulate

    add_simulate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "explain":
        return _explain(args)
    if args.command == "simulate":
        from scaler.sim.main import main as simulate

        return simulate(args)
    raise AssertionError(args.command)


def _explain(args: argparse.Namespace) -> int:
    import logging

    from scaler import explain

    # The report says everything; keep library and engine log lines off the terminal.
    logging.getLogger().addHandler(logging.NullHandler())
    if args.file != "-" and os.path.isdir(args.file):
        return _explain_directory(args)
    try:
        text = sys.stdin.read() if args.file == "-" else explain.read_manifest(args.file)
    except OSError as exc:
        print(f"prewarm explain: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return explain.EXIT_METADATA
    except explain.ExplainError as exc:  # not UTF-8, or unreadable (named by read_manifest)
        print(f"prewarm explain: {exc}", file=sys.stderr)
        return explain.EXIT_METADATA
    try:
        report = explain.run(
            text,
            trigger=args.trigger,
            environ=os.environ,
            timeout=args.timeout,
            running=args.running,
            pending=args.pending,
            access=access_policy(args),
        )
    except explain.ExplainError as exc:
        if args.json:
            print(
                explain.to_json({"ok": False, "error": {"status": "INVALID_ARGUMENT", "message": str(exc)}})
            )
        else:
            print(f"prewarm explain: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        explain.to_json(report) if args.json else explain.format_text(report),
        end="" if not args.json else "\n",
    )
    return explain.exit_code(report)


def _explain_directory(args: argparse.Namespace) -> int:
    """Each KEDA object in the folder explained in turn; the exit status is the worst."""
    from pathlib import Path

    from scaler import explain

    if args.trigger is not None:
        print(
            "prewarm explain: --trigger picks a trigger of one object; give the object's file, not a folder",
            file=sys.stderr,
        )
        return explain.EXIT_METADATA
    try:
        objects = explain.objects_in_directory(Path(args.file))
    except explain.ExplainError as exc:
        print(f"prewarm explain: {exc}", file=sys.stderr)
        return exc.exit_code
    reports: list[dict[str, Any]] = []
    worst = explain.EXIT_OK
    skipped = 0
    for index, (path, obj) in enumerate(objects):
        meta = obj.get("metadata") or {}
        title = f"{path}: {obj['kind']} {meta.get('namespace') or 'default'}/{meta.get('name') or 'unnamed'}"
        try:
            report = explain.run(
                obj,
                trigger=None,
                environ=os.environ,
                timeout=args.timeout,
                running=args.running,
                pending=args.pending,
                access=access_policy(args),
            )
            code = explain.exit_code(report)
        except explain.NoExternalTrigger as exc:
            # A folder may hold KEDA objects that do not use Prewarm (a cpu trigger beside
            # it): named and left out, not a failure.
            skipped += 1
            if args.json:
                reports.append({"file": str(path), "skipped": str(exc)})
            else:
                print(("\n" if index else "") + f"== {title}: skipped, {exc}")
            continue
        except explain.ExplainError as exc:
            report = {"ok": False, "error": {"status": "INVALID_ARGUMENT", "message": str(exc)}}
            code = exc.exit_code
            if not args.json:
                print(f"prewarm explain: {title}: {exc}", file=sys.stderr)
        worst = max(worst, code)
        if args.json:
            reports.append({"file": str(path), **report})
        elif "object" in report:
            print(("\n" if index else "") + f"== {path}\n" + explain.format_text(report), end="")
    if skipped == len(objects):
        worst = explain.EXIT_METADATA
        if not args.json:
            print(
                f"prewarm explain: {args.file}: no ScaledObject or ScaledJob there has an external "
                "or external-push trigger",
                file=sys.stderr,
            )
    if args.json:
        print(explain.to_json({"ok": worst == explain.EXIT_OK, "reports": reports}))
    return worst


def serve_settings(args: argparse.Namespace) -> Settings:
    """The server's settings from `prewarm serve`'s flags. With no flags and no
    PREWARM_* variables they equal Settings()'s defaults (test_cli checks this)."""
    from scaler.server import Settings

    return Settings(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port or None,
        cache_ttl=args.cache_ttl,
        polled_reading_age=args.polled_reading_age,
        source_timeout=args.source_timeout,
        stream_interval=args.stream_interval,
        grace_period=args.grace_period,
        keepalive_time=args.keepalive_time,
        keepalive_timeout=args.keepalive_timeout,
        read_threads=args.read_threads,
        max_pending_calls=args.max_pending_calls,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_connection_age=args.max_connection_age,
        health_port=args.health_port or None,
        access=access_policy(args),
    )


def access_policy(args: argparse.Namespace) -> AccessPolicy:
    return AccessPolicy(
        allowed_hosts=args.allowed_hosts, ambient_identity_namespaces=args.ambient_identity_namespaces
    )


# Variables Kubernetes sets for every Service in the pod's namespace (service links): a
# Service named prewarm gives PREWARM_SERVICE_HOST, PREWARM_PORT_6000_TCP_ADDR, ...
_SERVICE_LINK = re.compile(
    r"[A-Z0-9_]*_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_[A-Z]+)?)"
)
_SERVICE_LINK_VALUE = re.compile(r"(tcp|udp|sctp)://\S+")


def unknown_environment(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """PREWARM_* variables that name no flag, each with the closest flag's variable
    when one is an obvious match (None otherwise). Kubernetes' service-link variables
    are not ours and are left out. ENV_NAMES must be filled (build_parser)."""
    found: list[tuple[str, str | None]] = []
    suffixes = {name.removeprefix(ENV_PREFIX): name for name in ENV_NAMES}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in ENV_NAMES:
            continue
        if _SERVICE_LINK.fullmatch(name) or (
            name.endswith("_PORT") and _SERVICE_LINK_VALUE.fullmatch(environ[name])
        ):
            continue
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.75)
        found.append((name, suffixes[close[0]] if close else None))
    return found


def _tls_files_error(args: argparse.Namespace) -> str | None:
    """A one-line error naming the flag when the TLS files cannot be used at start-up."""
    from scaler import tls

    if args.tls_cert is None:
        return None
    try:
        tls.CertificateFiles(args.tls_cert, args.tls_key, args.tls_client_ca)
    except tls.TlsConfigError as exc:
        flags = [
            f"{flag} ({_env_name(flag)})"
            for flag, path in (
                ("--tls-cert", args.tls_cert),
                ("--tls-key", args.tls_key),
                ("--tls-client-ca", args.tls_client_ca),
            )
            if path in exc.paths
        ]
        return f"{' and '.join(flags) or 'TLS files'}: {exc}"
    return None


def _serve(args: argparse.Namespace) -> int:
    from scaler.observability import setup_logging
    from scaler.server import run

    if (args.tls_cert is None) != (args.tls_key is None):
        print("prewarm serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.tls_client_ca is not None and args.tls_cert is None:
        print("prewarm serve: --tls-client-ca needs --tls-cert and --tls-key", file=sys.stderr)
        return 2
    error = _tls_files_error(args)
    if error is not None:
        print(f"prewarm serve: {error}", file=sys.stderr)
        return 2
    setup_logging(args.log_format, args.log_level)
    log = logging.getLogger(__name__)
    for name, suggestion in unknown_environment(os.environ):
        # Named, never its value (it may be a secret).
        log.warning(
            "environment variable %s names no setting and is ignored%s",
            name,
            f"; did you mean {suggestion}?" if suggestion else "",
            extra={"variable": name, "suggestion": suggestion},
        )
    run(serve_settings(args))
    return 0
