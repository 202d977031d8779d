"""Plain causes for failed connections: what went wrong and what to check.

The client libraries (requests/urllib3, botocore, pika) each wrap the socket
error differently; `connection_failure` walks the wrapping down to the cause
(a name that does not resolve, a refused port, a timeout, a TLS failure, a
reset) and says it in words that name the endpoint and what to check. The
endpoint is host:port only, so no credential can appear in a message.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from urllib.parse import urljoin, urlsplit

import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout


class Failure(Enum):
    RESOLVE = "resolve"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TLS_VERIFY = "tls-verify"
    TLS = "tls"
    CLOSED = "closed"
    UNREACHABLE = "unreachable"
    OTHER_OS = "os"


def endpoint(host: str | None, port: int | None) -> str:
    """host:port as a reader writes it ([v6]:port), without user info."""
    host = host or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


DEFAULT_PORTS = {"http": 80, "https": 443, "amqp": 5672, "amqps": 5671}


def url_endpoint(url: str) -> str:
    """The server a URL reads, host:port (the scheme's port when none is written),
    without user info: a Source's `endpoint`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # refused at parse time; never a crash here
        return "?"
    return endpoint(parts.hostname, port or DEFAULT_PORTS.get(parts.scheme))


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps, outermost first (bounded)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        for name in ("__cause__", "__context__", "reason", "exception"):  # urllib3, pika connectors
            inner = getattr(current, name, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
        kwargs = getattr(current, "kwargs", None)  # botocore: error=<the urllib3 error>
        if isinstance(kwargs, dict) and isinstance(kwargs.get("error"), BaseException):
            pending.append(kwargs["error"])
        for arg in [*getattr(current, "args", ()), *getattr(current, "exceptions", ())]:
            if isinstance(arg, BaseException):
                pending.append(arg)
            elif isinstance(arg, list | tuple):  # pika's workflow: a list of attempts
                pending.extend(a for a in arg if isinstance(a, BaseException))


_CONNECT_TIMEOUT_NAMES = ("ConnectTimeoutError", "ConnectTimeout")
_TIMEOUT_NAMES = ("ReadTimeoutError", "ReadTimeout", *_CONNECT_TIMEOUT_NAMES)
_CLOSED_TYPES = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    pika.exceptions.StreamLostError,
    pika.exceptions.IncompatibleProtocolError,  # what pika says when a TLS port hangs up on plain AMQP
)

# Most specific first: a TLS error is also an OSError, a resolver error also a ConnectionError.
_KINDS: tuple[tuple[Failure, Callable[[BaseException], bool]], ...] = (
    (Failure.TLS_VERIFY, lambda e: isinstance(e, ssl.SSLCertVerificationError)),
    (Failure.TLS, lambda e: isinstance(e, ssl.SSLError)),
    (Failure.RESOLVE, lambda e: isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError"),
    (Failure.REFUSED, lambda e: isinstance(e, ConnectionRefusedError)),
    (
        Failure.TIMEOUT,
        lambda e: (
            isinstance(e, TimeoutError | AMQPConnectorStackTimeout) or type(e).__name__ in _TIMEOUT_NAMES
        ),
    ),
    (
        Failure.UNREACHABLE,
        lambda e: isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH),
    ),
    (
        Failure.CLOSED,
        lambda e: isinstance(e, _CLOSED_TYPES) or type(e).__name__ in ("ProtocolError", "RemoteDisconnected"),
    ),
    (Failure.OTHER_OS, lambda e: isinstance(e, OSError) and e.errno is not None),
)


def classify(exc: BaseException) -> tuple[Failure, BaseException] | None:
    """The kind of connection failure, and the exception that shows it; None when
    the exception is not a connection failure we recognise."""
    chain = list(causes(exc))
    for kind, matches in _KINDS:
        for candidate in chain:
            if matches(candidate):
                return kind, candidate
    return None


def connection_failure(
    exc: BaseException,
    *,
    host: str | None,
    port: int | None,
    timeout: float,
    host_key: str,
    server: str = "the server",
    tls_hint: str = "",
) -> str | None:
    """A plain cause for a connection to host:port that failed with `exc`, saying
    what to check; None when `exc` is not a connection failure.

    host_key: the metadata key that sets the host (named in the advice).
    server: what runs there ("RabbitMQ", "Prometheus"), for the advice.
    tls_hint: source-specific advice for an untrusted certificate.
    """
    found = classify(exc)
    if found is None:
        return None
    kind, cause = found
    where = endpoint(host, port)
    if kind is Failure.RESOLVE:
        return (
            f"cannot connect to {where}: the host name {host!r} does not resolve (DNS); "
            f"check the host in {host_key!r} and the cluster's DNS"
        )
    if kind is Failure.REFUSED:
        return (
            f"cannot connect to {where}: connection refused; check the port in {host_key!r} "
            f"and that {server} is running and listening there"
        )
    if kind is Failure.TIMEOUT:
        check = (
            f"check that {server} is up and reachable from the scaler (network policies, firewalls) "
            "and not overloaded"
        )
        if isinstance(cause, AMQPConnectorStackTimeout) or type(cause).__name__ in _CONNECT_TIMEOUT_NAMES:
            # Stuck setting the connection up (TCP, TLS or the protocol's handshake).
            return f"cannot connect to {where}: no answer within {timeout:g}s while connecting; {check}"
        return f"no answer from {where} within {timeout:g}s; {check}"
    if kind is Failure.TLS_VERIFY:
        assert isinstance(cause, ssl.SSLCertVerificationError)
        hint = tls_hint or "check that its certificate is signed by a CA the scaler trusts and names the host"
        reason = f"certificate verify failed: {cause.verify_message}"
        return f"cannot connect to {where}: TLS failed ({reason}); {hint}"
    if kind is Failure.TLS:
        assert isinstance(cause, ssl.SSLError)
        reason = str(cause.reason or "TLS error").replace("_", " ").lower()
        return (
            f"cannot connect to {where}: TLS failed ({reason}); check that the port serves TLS "
            f"(or use the plain scheme in {host_key!r})"
        )
    if kind is Failure.UNREACHABLE:
        return f"cannot connect to {where}: no route to the host; check the network path from the scaler"
    if kind is Failure.CLOSED:
        return (
            f"cannot connect to {where}: the server closed the connection; check that the port in "
            f"{host_key!r} is {server}'s and the scheme matches (TLS or plain)"
        )
    assert isinstance(cause, OSError)
    return f"cannot connect to {where}: {cause.strerror or type(cause).__name__}"


def unexpected(exc: BaseException) -> str:
    """A readable cause for an error no source mapped (a bug or a library surprise):
    the kind of failure if it is a connection failure, otherwise the error's type,
    never its text (which may quote a URL with credentials)."""
    found = classify(exc)
    if found is not None:
        kind, cause = found
        words = {
            Failure.RESOLVE: "a host name does not resolve (DNS)",
            Failure.REFUSED: "connection refused",
            Failure.TIMEOUT: "timed out",
            Failure.TLS_VERIFY: "TLS certificate verify failed",
            Failure.TLS: "TLS failed",
            Failure.UNREACHABLE: "no route to the host",
            Failure.CLOSED: "the server closed the connection",
            Failure.OTHER_OS: getattr(cause, "strerror", None) or "connection failed",
        }
        return f"cannot read the source: {words[kind]}"
    return f"unexpected error while reading ({type(exc).__name__}); the scaler's debug log has the details"


MAX_SERVER_MESSAGE = 200  # characters of a server's own error message shown
# A safety net for server messages that are shown: anything that looks like a
# signing header or parameter (a session token, a signature), an Authorization
# value (with its scheme: "Authorization: Basic <user:password in base64>"), a
# bearer token wherever it stands, or an AWS access key ID.
_SECRET_LOOKING = re.compile(
    r"(?i)\b(x-amz-security-token|x-amz-credential|x-amz-signature|credential|signature|authorization)"
    r"(\s*[:=]\s*)(?:(?:basic|bearer|digest|negotiate)\s+)?[^\s,;&'\"]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s,;&'\"]+")
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b")


def server_message(message: str, limit: int = MAX_SERVER_MESSAGE, secrets: Iterable[str | None] = ()) -> str:
    """What of a server's error message may be shown: its first line (what
    follows is detail, and may quote the request), with anything credential-like
    redacted, cut to `limit` characters. `secrets`: the credentials the request
    carried, redacted wherever they appear (a proxy may quote them)."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "<redacted>")
    lines = message.strip().splitlines()
    first = lines[0].strip() if lines else ""
    first = _SECRET_LOOKING.sub(r"\1\2<redacted>", first)
    first = _BEARER.sub(r"\1\2<redacted>", first)
    first = _ACCESS_KEY_ID.sub("<redacted>", first)
    return first if len(first) <= limit else first[: limit - 3] + "..."


MAX_REDIRECT_SHOWN = 120  # characters of a redirect's target shown


def redirected(status: int | None, location: str | None, request_url: str, host_key: str) -> str:
    """What to say about a 3xx answer. The scaler follows no redirect: the access
    policy (--allowed-hosts) checks only the configured address, so a redirect
    could send the read anywhere the scaler's network reaches. Names where it
    points (scheme, host:port and path; never user info, query or fragment) and
    the metadata key to set to the final address."""
    redirects = f"the server redirects (HTTP {status})" if status is not None else "the server redirects"
    advice = f"the scaler does not follow redirects; set {host_key!r} to the final address"
    if not location:
        return f"{redirects} without saying where; {advice}"
    try:
        parts = urlsplit(urljoin(request_url, location.strip()))
        host, port = parts.hostname, parts.port
    except ValueError:
        return f"{redirects} to a malformed address; {advice}"
    target = f"{parts.scheme}://{endpoint(host, port)}{parts.path}"
    if len(target) > MAX_REDIRECT_SHOWN:
        target = target[: MAX_REDIRECT_SHOWN - 3] + "..."
    return f"{redirects} to {target!r}; {advice}"
