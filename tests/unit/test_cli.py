"""`prewarm serve` flags, their PREWARM_* environment variables, and bad values."""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

import pytest

import scaler.observability
import scaler.server
from scaler import cli


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(cli.ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "100")  # --help wraps at this width whatever the terminal


def parse(*argv: str):  # -> argparse.Namespace
    return cli.build_parser().parse_args(["serve", *argv])


def test_defaults() -> None:
    args = parse()
    assert args.command == "serve"
    assert args.host == "[::]"
    assert args.port == 6000
    assert args.metrics_port == 8080
    assert args.log_format == "json"
    assert args.log_level == "info"
    assert args.cache_ttl == 2.0
    assert args.source_timeout == 5.0
    assert args.stream_interval == 1.0
    assert args.grace_period == 10.0
    assert (args.tls_cert, args.tls_key, args.tls_client_ca) == (None, None, None)


def test_serve_defaults_are_the_servers_defaults() -> None:
    # The flags' defaults are written in cli.py and Settings' in server.py: one
    # place must not drift from the other.
    assert cli.serve_settings(parse()) == scaler.server.Settings()


def test_simulated_push_interval_is_serves_default() -> None:
    from scaler.sim.policies import STREAM_INTERVAL_S

    assert scaler.server.Settings().stream_interval == STREAM_INTERVAL_S


def test_flags_parse() -> None:
    args = parse(
        "--host", "127.0.0.1",
        "--port", "7000",
        "--metrics-port", "0",
        "--log-format", "text",
        "--log-level", "DEBUG",
        "--cache-ttl", "0.5",
        "--polled-reading-age", "0.25",
        "--source-timeout", "1.5",
        "--stream-interval", "0.25",
        "--grace-period", "3",
        "--max-pending-calls", "5000",
        "--tls-cert", "/certs/tls.crt",
        "--tls-key", "/certs/tls.key",
        "--tls-client-ca", "/certs/ca.crt",
    )  # fmt: skip
    assert args.host == "127.0.0.1"
    assert args.port == 7000
    assert args.metrics_port == 0
    assert args.log_format == "text"
    assert args.log_level == "debug"
    assert args.cache_ttl == 0.5
    assert args.polled_reading_age == 0.25
    assert cli.serve_settings(args).polled_reading_age == 0.25
    assert args.source_timeout == 1.5
    assert args.stream_interval == 0.25
    assert args.grace_period == 3.0
    assert cli.serve_settings(args).max_pending_calls == 5000
    assert (args.tls_cert, args.tls_key, args.tls_client_ca) == (
        "/certs/tls.crt",
        "/certs/tls.key",
        "/certs/ca.crt",
    )


ENV_CASES = [
    ("PREWARM_HOST", "127.0.0.1", "host", "127.0.0.1"),
    ("PREWARM_PORT", "7001", "port", 7001),
    ("PREWARM_METRICS_PORT", "9100", "metrics_port", 9100),
    ("PREWARM_LOG_FORMAT", "text", "log_format", "text"),
    ("PREWARM_LOG_LEVEL", "warning", "log_level", "warning"),
    ("PREWARM_CACHE_TTL", "0.75", "cache_ttl", 0.75),
    ("PREWARM_POLLED_READING_AGE", "1.5", "polled_reading_age", 1.5),
    ("PREWARM_SOURCE_TIMEOUT", "2", "source_timeout", 2.0),
    ("PREWARM_STREAM_INTERVAL", "0.5", "stream_interval", 0.5),
    ("PREWARM_GRACE_PERIOD", "4", "grace_period", 4.0),
    ("PREWARM_TLS_CERT", "/c/tls.crt", "tls_cert", "/c/tls.crt"),
    ("PREWARM_TLS_KEY", "/c/tls.key", "tls_key", "/c/tls.key"),
    ("PREWARM_TLS_CLIENT_CA", "/c/ca.crt", "tls_client_ca", "/c/ca.crt"),
    ("PREWARM_MAX_CONNECTION_AGE", "600", "max_connection_age", 600.0),
    ("PREWARM_MAX_PENDING_CALLS", "40000", "max_pending_calls", 40000),
]


@pytest.mark.parametrize(("env", "value", "attr", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_env_var_sets_the_default(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, attr: str, expected: object
) -> None:
    monkeypatch.setenv(env, value)
    assert getattr(parse(), attr) == expected


@pytest.mark.parametrize(
    ("env", "value", "flag", "flag_value", "attr", "expected"),
    [
        ("PREWARM_PORT", "7001", "--port", "7002", "port", 7002),
        ("PREWARM_LOG_FORMAT", "text", "--log-format", "json", "log_format", "json"),
        ("PREWARM_CACHE_TTL", "9", "--cache-ttl", "0.1", "cache_ttl", 0.1),
        ("PREWARM_HOST", "127.0.0.2", "--host", "127.0.0.1", "host", "127.0.0.1"),
    ],
)
def test_flag_wins_over_env(
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    value: str,
    flag: str,
    flag_value: str,
    attr: str,
    expected: object,
) -> None:
    monkeypatch.setenv(env, value)
    assert getattr(parse(flag, flag_value), attr) == expected


def test_help_names_each_flags_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--help")
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for env, *_ in ENV_CASES:
        assert f"[env {env}]" in text


def serve_help_entries(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """`prewarm serve --help` as printed: each flag -> its help text, unwrapped."""
    with pytest.raises(SystemExit) as info:
        parse("--help")
    assert info.value.code == 0
    entries: dict[str, str] = {}
    flag = ""
    for line in capsys.readouterr().out.split("\n"):
        found = re.match(r"^  (--[a-z-]+)(?: [A-Z_]+)?(?:\s{2,}(.*))?$", line)
        if found:
            flag = found.group(1)
            entries[flag] = found.group(2) or ""
        elif flag and line.startswith(" " * 10):
            entries[flag] += " " + line.strip()
    return entries


def test_help_shows_each_flags_default(capsys: pytest.CaptureFixture[str]) -> None:
    (serve,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    flags = {a.option_strings[-1]: a.default for a in serve.choices["serve"]._actions if a.dest != "help"}
    entries = serve_help_entries(capsys)
    assert set(entries) == set(flags)
    for flag, default in flags.items():
        if default is None and "Default:" in entries[flag]:
            continue  # the help says what unset means, in words
        shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else default
        assert f"(default: {shown})" in entries[flag], f"{flag}: {entries[flag]}"
    assert "(default: 6000)" in entries["--port"] and "(default: 2)" in entries["--cache-ttl"]
    assert "(default: [::])" in entries["--host"] and "(default: 64)" in entries["--read-threads"]


def test_help_shows_a_value_set_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREWARM_PORT", "7001")
    monkeypatch.setenv("PREWARM_HOST", "10%.example")  # argparse %-formats help text
    entries = serve_help_entries(capsys)
    assert "(default: 6000) [env PREWARM_PORT, set to '7001']" in entries["--port"]
    assert "[env PREWARM_HOST, set to '10%.example']" in entries["--host"]


HUGE = "9" * 400  # a whole number past any float (about 1.8e308)

BAD_FLAGS = [
    ("--port", "abc"),
    ("--port", "70000"),
    ("--port", "-1"),
    ("--metrics-port", "65536"),
    ("--log-format", "xml"),
    ("--log-level", "verbose"),
    ("--cache-ttl", "0"),
    ("--cache-ttl", "soon"),
    ("--source-timeout", "-1"),
    ("--stream-interval", "nan"),
    ("--grace-period", "0"),
    # inf is a float but no bound: a read that may take forever, readings never refreshed.
    ("--source-timeout", "inf"),
    ("--cache-ttl", "inf"),
    ("--polled-reading-age", "0"),
    ("--polled-reading-age", "-0.5"),
    ("--polled-reading-age", "inf"),
    ("--read-threads", "0"),
    ("--max-pending-calls", "0"),
    ("--max-pending-calls", "1.5"),
    ("--grace-period", "inf"),
    # Finite but past a day: 1e300 overflowed socket timeouts on every read.
    ("--source-timeout", "1e300"),
    ("--keepalive-time", "86401"),
    # int() reads any number of digits; one too large for a float once raised OverflowError.
    pytest.param("--port", HUGE, id="--port-huge"),
    pytest.param("--metrics-port", HUGE, id="--metrics-port-huge"),
    pytest.param("--health-port", HUGE, id="--health-port-huge"),
    pytest.param("--read-threads", HUGE, id="--read-threads-huge"),
    # Twice it is grpc's hard limit, an int channel argument.
    pytest.param("--max-pending-calls", "10000001", id="--max-pending-calls-past-the-bound"),
    ("--max-connection-age", "-1"),
    ("--max-connection-age", "inf"),
    # An empty path is refused, not read as unset: PREWARM_TLS_CLIENT_CA= would turn mTLS off.
    ("--tls-cert", ""),
    ("--tls-key", " "),
    ("--tls-client-ca", ""),
]


@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS)
def test_bad_flag_value_exits_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(flag, value)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert repr(value) in err


@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS)
def test_bad_env_value_exits_naming_the_env_var(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    env = "PREWARM_" + flag.removeprefix("--").replace("-", "_").upper()
    monkeypatch.setenv(env, value)
    with pytest.raises(SystemExit) as info:
        parse()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"environment variable {env}={value!r}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--trigger", "--running", "--pending"])
def test_explain_refuses_a_huge_number_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["explain", "-f", str(tmp_path / "so.yaml"), flag, HUGE])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected a whole number >= 0, got {HUGE!r}" in err


@pytest.fixture
def captured_run(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """main() without starting a server or touching the process's logging."""
    calls: list[object] = []
    monkeypatch.setattr(scaler.server, "run", calls.append)
    monkeypatch.setattr(scaler.observability, "setup_logging", lambda fmt, level: calls.append((fmt, level)))
    return calls


def test_main_serve_builds_settings_from_flags_and_env(
    monkeypatch: pytest.MonkeyPatch, captured_run: list[object]
) -> None:
    monkeypatch.setenv("PREWARM_CACHE_TTL", "0.5")
    code = cli.main(["serve", "--port", "7003", "--metrics-port", "0", "--log-format", "text"])
    assert code == 0
    logging_call, settings = captured_run
    assert logging_call == ("text", "info")
    assert isinstance(settings, scaler.server.Settings)
    assert settings.port == 7003
    assert settings.metrics_port is None  # 0 disables /metrics
    assert settings.cache_ttl == 0.5
    assert settings.source_timeout == 5.0
    assert settings.tls_cert is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-cert", "/c/tls.crt"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "/c/tls.key"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "/c/ca.crt"], "--tls-client-ca needs --tls-cert and --tls-key"),
    ],
)
def test_main_rejects_incomplete_tls_flags(
    capsys: pytest.CaptureFixture[str], captured_run: list[object], argv: list[str], message: str
) -> None:
    assert cli.main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err
    assert captured_run == []  # nothing started


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"prewarm {scaler.__version__}\n"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "serve" in capsys.readouterr().err


def test_explain_a_folder_without_keda_objects_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["explain", "-f", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no ScaledObject or ScaledJob" in err and "Is a directory" not in err
    assert cli.main(["explain", "-f", str(tmp_path), "--trigger", "1"]) == 2
    assert "--trigger picks a trigger of one object; give the object's file" in capsys.readouterr().err


def test_explain_a_folder_whose_keda_objects_do_not_use_prewarm_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "web.yaml").write_text(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\n"
        "spec:\n  scaleTargetRef: {name: web}\n  triggers:\n    - type: cpu\n      metadata: {value: '60'}\n"
    )
    assert cli.main(["explain", "-f", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "web.yaml: ScaledObject default/web: skipped, no trigger of type external" in out
    assert "no ScaledObject or ScaledJob there has an external or external-push trigger" in err


SQS_OBJECT = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: sd-worker, namespace: ai}
spec:
  scaleTargetRef: {name: sd-worker}
  triggers:
    - type: external
      metadata:
        scalerAddress: prewarm.keda:6000
        source: sqs
        queueURL: http://127.0.0.1:9/000000000000/prompts
        awsRegion: us-east-1
        awsEndpoint: http://127.0.0.1:9
"""


@pytest.mark.parametrize("from_env", [False, True])
def test_explain_refuses_what_the_servers_limits_refuse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], from_env: bool
) -> None:
    """Run in the scaler's pod, explain reads the same PREWARM_* limits as the server:
    a trigger the server would refuse is INVALID_ARGUMENT (exit 2), naming the limit,
    before any connection (an allowed read of this closed port would exit 1)."""
    (tmp_path / "so.yaml").write_text(SQS_OBJECT)
    argv = ["explain", "-f", str(tmp_path / "so.yaml"), "--timeout", "0.5"]
    if from_env:
        monkeypatch.setenv("PREWARM_ALLOWED_HOSTS", "*.svc.cluster.local")
    else:
        argv += ["--allowed-hosts", "*.svc.cluster.local"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--allowed-hosts (PREWARM_ALLOWED_HOSTS)" in err and "'127.0.0.1'" in err, err

    monkeypatch.delenv("PREWARM_ALLOWED_HOSTS", raising=False)
    identity = ["explain", "-f", str(tmp_path / "so.yaml"), "--timeout", "0.5"]
    assert cli.main([*identity, "--ambient-identity-namespaces", "batch"]) == 2
    err = capsys.readouterr().err
    assert "namespace 'ai' may not use the scaler's own AWS identity" in err, err

    # Without limits the same trigger is read (and this closed port is UNAVAILABLE).
    assert cli.main(identity) == 1


def test_max_connection_age_is_unset_by_default_and_0_means_no_limit() -> None:
    assert parse().max_connection_age is None
    assert cli.serve_settings(parse("--max-connection-age", "0")).max_connection_age == 0
    assert cli.serve_settings(parse("--max-connection-age", "90")).max_connection_age == 90


def test_max_connection_age_help_names_the_servers_mtls_default(capsys: pytest.CaptureFixture[str]) -> None:
    help_text = serve_help_entries(capsys)["--max-connection-age"]
    default = f"{scaler.server.MTLS_MAX_CONNECTION_AGE:g}"
    assert f"Default: {default} with --tls-client-ca, else no limit" in help_text, help_text


@pytest.mark.parametrize(
    ("env", "suggestion"),
    [
        ("PREWARM_ALLOWED_HOST", "PREWARM_ALLOWED_HOSTS"),
        ("PREWARM_AMBIENT_IDENTITY_NAMESPACE", "PREWARM_AMBIENT_IDENTITY_NAMESPACES"),
        ("PREWARM_TLS_CLIENTCA", "PREWARM_TLS_CLIENT_CA"),
        ("PREWARM_SOMETHING_ELSE", None),
    ],
)
def test_serve_warns_about_a_variable_that_names_no_flag(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    captured_run: list[object],
    env: str,
    suggestion: str | None,
) -> None:
    """A typo left its limit off silently: the scaler served with no host limit."""
    monkeypatch.setenv(env, "secret-looking-value")
    # Kubernetes' service links for a Service named prewarm (and prewarm-metrics) are not ours.
    for link in (
        "PREWARM_SERVICE_HOST",
        "PREWARM_SERVICE_PORT",
        "PREWARM_SERVICE_PORT_GRPC",
        "PREWARM_PORT_6000_TCP",
        "PREWARM_PORT_6000_TCP_PROTO",
        "PREWARM_PORT_6000_TCP_ADDR",
        "PREWARM_METRICS_SERVICE_HOST",
    ):
        monkeypatch.setenv(link, "10.0.0.1")
    monkeypatch.setenv("PREWARM_METRICS_PORT_TCP_LINK", "x")  # not a link's shape: warned about
    monkeypatch.setenv("PREWARM_METRICS_PORT", "9100")  # a flag
    monkeypatch.setenv("PREWARM_OTHER_PORT", "tcp://10.0.0.1:80")  # a link's value
    with caplog.at_level(logging.WARNING, logger="scaler.cli"):
        assert cli.main(["serve"]) == 0
    warned = {r.variable: r for r in caplog.records if hasattr(r, "variable")}
    assert set(warned) == {env, "PREWARM_METRICS_PORT_TCP_LINK"}, caplog.text
    record = warned[env]
    assert record.levelno == logging.WARNING and env in record.getMessage()
    assert record.suggestion == suggestion
    if suggestion is not None:
        assert f"did you mean {suggestion}?" in record.getMessage()
    assert "secret-looking-value" not in caplog.text  # named, never its value


def test_serve_warns_about_nothing_when_every_variable_is_a_flag(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, captured_run: list[object]
) -> None:
    monkeypatch.setenv("PREWARM_ALLOWED_HOSTS", "*.svc.cluster.local")
    monkeypatch.setenv("PREWARM_MAX_CONNECTION_AGE", "0")
    with caplog.at_level(logging.WARNING):
        assert cli.main(["serve"]) == 0
    assert not caplog.records, caplog.text


@pytest.mark.parametrize(
    ("which", "flag"),
    [("cert", "--tls-cert (PREWARM_TLS_CERT)"), ("key", "--tls-key (PREWARM_TLS_KEY)"),
     ("ca", "--tls-client-ca (PREWARM_TLS_CLIENT_CA)")],
)  # fmt: skip
def test_a_missing_tls_file_is_one_line_naming_the_flag(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    captured_run: list[object],
    which: str,
    flag: str,
) -> None:
    paths = _tls_files(tmp_path)
    paths[which] = str(tmp_path / "nope.pem")
    code = cli.main(
        ["serve", "--tls-cert", paths["cert"], "--tls-key", paths["key"], "--tls-client-ca", paths["ca"]]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err == f"prewarm serve: {flag}: {tmp_path / 'nope.pem'}: No such file or directory\n", err
    assert captured_run == []  # nothing started, no logging set up


def test_an_empty_or_unusable_tls_file_is_one_line_naming_the_flags(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    captured_run: list[object],
) -> None:
    paths = _tls_files(tmp_path)
    (tmp_path / "empty.pem").write_bytes(b"")
    monkeypatch.setenv("PREWARM_TLS_CERT", str(tmp_path / "empty.pem"))
    monkeypatch.setenv("PREWARM_TLS_KEY", paths["key"])
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prewarm serve: --tls-cert (PREWARM_TLS_CERT) and --tls-key (PREWARM_TLS_KEY): ")
    assert "not a PEM certificate chain" in err and err.count("\n") == 1, err
    monkeypatch.setenv("PREWARM_TLS_CERT", paths["cert"])
    monkeypatch.setenv("PREWARM_TLS_CLIENT_CA", str(tmp_path / "empty.pem"))
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prewarm serve: --tls-client-ca (PREWARM_TLS_CLIENT_CA): "), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert captured_run == []
    # Usable files start the server.
    monkeypatch.setenv("PREWARM_TLS_CLIENT_CA", paths["ca"])
    assert cli.main(["serve"]) == 0


def test_an_empty_tls_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREWARM_TLS_CERT", "")
    monkeypatch.setenv("PREWARM_TLS_KEY", "")
    with pytest.raises(SystemExit) as info:
        cli.main(["serve"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "environment variable PREWARM_TLS_CERT='': expected the path of a PEM file" in err, err


def _tls_files(directory: Path) -> dict[str, str]:
    """A self-signed certificate (its own client CA too) and its key, written by openssl-free
    `cryptography`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prewarm-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {
        "cert": str(directory / "tls.crt"),
        "key": str(directory / "tls.key"),
        "ca": str(directory / "tls.crt"),
    }


def test_a_bad_serve_variable_breaks_serve_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `prewarm explain` runs in the scaler's pod (kubectl exec), with serve's variables set:
    # a bad one failed every subcommand, --version too, with serve's usage.
    monkeypatch.setenv("PREWARM_PORT", "abc")
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert "prewarm" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["explain", "-f", "-"])
    assert args.command == "explain"
    with pytest.raises(SystemExit) as info:
        cli.main(["serve"])
    assert info.value.code == 2
    assert "environment variable PREWARM_PORT='abc'" in capsys.readouterr().err
    # The flag given on the command line wins over the bad variable.
    assert cli.build_parser().parse_args(["serve", "--port", "7000"]).port == 7000


def test_explain_names_a_manifest_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "object.yaml"
    bad.write_bytes(b"\xff\xfe" + b"kind: ScaledObject\n")
    assert cli.main(["explain", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and str(bad) in err and "Traceback" not in err
