"""AWS SQS backlog via GetQueueAttributes (never ReceiveMessage).

ApproximateNumberOfMessages = waiting, ...NotVisible = in flight (received, not
yet deleted), ...Delayed = delayed. Credentials come from the default AWS chain
(IRSA, environment) unless the trigger gives keys, optionally assuming a role.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from scaler.config import SqsConfig, quoted, redact_url
from scaler.signals.base import QueueReading, SharedByKey, SourceError
from scaler.signals.errors import connection_failure, server_message, url_endpoint

WAITING = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
# SQS's error codes that mean the request's credentials are wrong, and what to
# check. Their messages are never shown: SignatureDoesNotMatch's quotes the
# canonical request, whose signed headers hold the session token.
_CREDENTIAL_CODES = {
    "InvalidClientTokenId": "the access key ID",
    "UnrecognizedClientException": "the access key ID",
    "SignatureDoesNotMatch": "the secret access key",
    "InvalidSignatureException": "the secret access key",
    "IncompleteSignature": "the secret access key",
    "ExpiredToken": "the session token (it has expired)",
    "ExpiredTokenException": "the session token (it has expired)",
}
# Codes that mean the identity may not read the queue: the message says which
# action on which resource was denied, so its first line is kept (sanitised),
# and the hint names the action of the call denied.
_PERMISSION_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
# The calls a source makes: GetQueueUrl only for a queue given by its name.
_ACTIONS = {"GetQueueUrl": "sqs:GetQueueUrl", "GetQueueAttributes": "sqs:GetQueueAttributes"}

log = logging.getLogger(__name__)


def _client_error(exc: ClientError) -> tuple[str, str]:
    """The error code and message. An SQS-compatible server (moto among them) may
    answer a JSON-protocol request with a query-protocol XML error, which botocore
    leaves as the HTTP status and the raw XML: take the code and message from it."""
    err = exc.response.get("Error", {})
    code, message = str(err.get("Code", "error")), str(err.get("Message", ""))
    if code.isdigit() and "<Code>" in message:
        found_code = re.search(r"<Code>([^<]*)</Code>", message)
        found_message = re.search(r"<Message>([^<]*)</Message>", message)
        code = found_code.group(1) if found_code else code
        message = found_message.group(1) if found_message else ""
    return code, message


def _error_detail(code: str, message: str, operation: str = "GetQueueAttributes") -> str:
    """The code, what of the message may be shown, and what to check. `operation`:
    the SQS call that failed (botocore's operation name)."""
    if code in _CREDENTIAL_CODES:
        return f"{code}; check {_CREDENTIAL_CODES[code]}"
    shown = server_message(message)
    detail = f"{code}: {shown}" if shown else code
    if code in _PERMISSION_CODES:
        action = _ACTIONS.get(operation, "sqs:GetQueueAttributes")
        detail += f"; check the identity's {action} permission on the queue"
    return detail


# Refresh assumed-role credentials this long before they expire.
ROLE_REFRESH_MARGIN_S = 300.0
# A refresh that failed (STS down or throttling) is tried again after this long,
# while reads keep the current client until its credentials expire.
ROLE_REFRESH_RETRY_S = 30.0
# Connections a shared client keeps to its endpoint. The queues sharing it are
# read at the same time (the read pool has 64 threads by default); past its pool
# size urllib3 still connects, but drops each extra connection with a warning.
MAX_POOL_CONNECTIONS = 64


def _boto_config(timeout: float) -> BotoConfig:
    # Bounded: one attempt each with short timeouts; the cache retries next TTL.
    return BotoConfig(
        connect_timeout=timeout,
        read_timeout=timeout,
        # total_max_attempts counts the first try; max_attempts would allow one retry.
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


class SqsClients:
    """SQS clients shared by every queue read with the same endpoint, region and
    credentials (botocore clients are thread-safe): a hundred queues of one
    account cost one client, not a hundred. A client closes when the last source
    using it closes (the cache closes idle sources).

    Every client is made from one boto3 Session, which parses the service model
    and endpoint data once: a Session of its own cost each queue about 8 MiB and
    0.25 s of CPU.
    """

    def __init__(self) -> None:
        self._shared: SharedByKey[SharedSqsClient] = SharedByKey()
        self._session: boto3.session.Session | None = None
        self._session_lock = threading.Lock()  # a boto3 Session is not thread-safe

    @staticmethod
    def key(cfg: SqsConfig, timeout: float) -> str:
        """What makes a client: endpoint, region, credentials (a role with the keys
        that assume it) and timeout. Hashed in full: the key holds no credential."""
        material = "\0".join(
            x or ""
            for x in (
                cfg.endpoint,
                cfg.region,
                cfg.access_key_id,
                cfg.secret_access_key,
                cfg.session_token,
                cfg.role_arn,
                repr(float(timeout)),
            )
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def acquire(self, cfg: SqsConfig, user: object, timeout: float) -> SharedSqsClient:
        return self._shared.acquire(self.key(cfg, timeout), user, lambda: SharedSqsClient(cfg, timeout, self))

    def release(self, cfg: SqsConfig, user: object, timeout: float) -> None:
        self._shared.release(self.key(cfg, timeout), user)

    def make_client(self, service: str, **kwargs: Any) -> Any:
        with self._session_lock:
            if self._session is None:
                self._session = boto3.session.Session()
            # (the stubs type client() per literal service name)
            return self._session.client(service, **kwargs)  # type: ignore[call-overload]

    def __len__(self) -> int:
        return len(self._shared)


@dataclass(frozen=True)
class _Built:
    """A client and when to remake it (monotonic seconds): `refresh_at`, the
    refresh margin before its credentials expire (or the next retry of a refresh
    that failed), never after `expires_at`, when they really expire. Both are
    infinite without a role."""

    client: Any
    refresh_at: float
    expires_at: float


class SharedSqsClient:
    """The client of one endpoint, region and set of credentials. With a role,
    it is remade from new AssumeRole credentials before they expire, and the old
    one closed (a read still using it finishes: a closed botocore client only
    drops its idle connections). While a refresh is under way, or after one
    failed, reads keep the current client as long as its credentials outlast the
    read; a failed refresh is tried again ROLE_REFRESH_RETRY_S later."""

    def __init__(self, cfg: SqsConfig, timeout: float, clients: SqsClients) -> None:
        self._cfg = cfg  # every user's config has the same endpoint, region and credentials
        self._timeout = timeout
        self._clients = clients
        self._lock = threading.Lock()  # one build at a time
        self._current: _Built | None = None

    def _usable(self, current: _Built | None, now: float) -> bool:
        """The credentials still valid at the end of a read started now."""
        return current is not None and now + self._timeout < current.expires_at

    def client(self, description: str) -> Any:
        """The client, made (or remade) on the way if needed. `description` is the
        reading source's, for its errors. Raises SourceError."""
        current = self._current
        now = time.monotonic()
        if current is not None and now < current.refresh_at:
            return current.client
        if self._usable(current, now):
            assert current is not None
            if not self._lock.acquire(blocking=False):
                return current.client  # another read is refreshing it
        elif not self._lock.acquire(timeout=self._timeout):
            doing = f"assuming role {self._cfg.role_arn}" if self._cfg.role_arn else "making the SQS client"
            check = "; check that STS answers" if self._cfg.role_arn else ""
            raise SourceError(
                f"{description}: another read with the same credentials has been {doing} "
                f"for over {self._timeout:g}s{check}"
            )
        try:
            current = self._current
            now = time.monotonic()
            if current is not None and now < current.refresh_at:
                return current.client  # made while this read waited
            try:
                self._current = self._build(description)
            except SourceError as exc:
                now = time.monotonic()  # after the failed AssumeRole, which may have taken a while
                if current is None or not self._usable(current, now):
                    raise
                # The credentials are still valid: read with them, and try again later.
                retry_at = min(now + ROLE_REFRESH_RETRY_S, current.expires_at - self._timeout)
                self._current = replace(current, refresh_at=retry_at)
                log.warning(
                    "%s; the current credentials expire in %.0fs: "
                    "reading with them, refreshing again in %.0fs",
                    exc,
                    current.expires_at - now,
                    retry_at - now,
                )
                return current.client
            client = self._current.client
        finally:
            self._lock.release()
        if current is not None:
            current.client.close()
        return client

    def _build(self, description: str) -> _Built:
        c = self._cfg
        config = _boto_config(self._timeout)
        keys = {
            "aws_access_key_id": c.access_key_id,
            "aws_secret_access_key": c.secret_access_key,
            "aws_session_token": c.session_token,
        }
        refresh = expires = math.inf
        if c.role_arn:
            creds = self._assume_role(description, keys, config)
            keys = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
            remaining = creds["Expiration"].timestamp() - time.time()
            now = time.monotonic()
            expires = now + max(0.0, remaining)
            # The refresh margin before expiry, and always a read's time before it.
            refresh = now + max(0.0, remaining - max(ROLE_REFRESH_MARGIN_S, self._timeout))
        client = self._clients.make_client(
            "sqs", region_name=c.region, endpoint_url=c.endpoint, config=config, **keys
        )
        return _Built(client, refresh, expires)

    def _assume_role(self, description: str, keys: dict[str, str | None], config: BotoConfig) -> Any:
        role_arn = self._cfg.role_arn
        # awsEndpoint is the SQS endpoint (often a VPC endpoint for SQS only); STS
        # goes where the AWS SDK sends it: its regional endpoint, or
        # AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL in the scaler's environment.
        sts = self._clients.make_client("sts", region_name=self._cfg.region, config=config, **keys)
        try:
            return sts.assume_role(RoleArn=role_arn, RoleSessionName="prewarm-scaler")["Credentials"]
        except ClientError as exc:
            # The error code (AccessDenied, InvalidClientTokenId, ...) is the cause;
            # STS's message may quote the caller's identity, so it is left out.
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SourceError(f"{description}: cannot assume role {role_arn}: {code}") from None
        except BotoCoreError as exc:
            raise SourceError(f"{description}: cannot assume role {role_arn}: {type(exc).__name__}") from None
        finally:
            sts.close()  # used once an hour at most: not kept

    def close(self) -> None:
        with self._lock:  # not under a build
            current, self._current = self._current, None
        if current is not None:
            current.client.close()


# The process's clients: every SqsSource shares them unless given its own.
SHARED_CLIENTS = SqsClients()


class SqsSource:
    def __init__(self, cfg: SqsConfig, *, timeout: float = 5.0, clients: SqsClients | None = None) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._clients = clients if clients is not None else SHARED_CLIENTS
        self._shared: SharedSqsClient | None = None  # taken on the first read, given back by close()
        self._lock = threading.Lock()
        # queueURL as given, or, for a queue given by name, its URL once looked up.
        self._queue_url: str | None = None if cfg.is_name_only else cfg.queue_url

    @cached_property  # hashed once; read on every call
    def key(self) -> str:
        c = self._cfg
        # The attributes asked for are part of the reading (delayed only when it counts).
        attributes = "+delayed" if c.scale_on_delayed else ""
        return f"sqs|{c.endpoint or ''}|{c.region}|{c.queue_url}|{c.credential_identity()}{attributes}"

    @property
    def description(self) -> str:
        return f"sqs queue {quoted(self._cfg.queue_name)} in {self._cfg.region}"  # the name cut

    @cached_property
    def endpoint(self) -> str:
        """The server read (Source.endpoint): awsEndpoint's host:port, else the region's."""
        c = self._cfg
        return url_endpoint(c.endpoint) if c.endpoint else f"sqs.{c.region}:443"

    @cached_property
    def attributes(self) -> tuple[str, ...]:
        """The attributes read, as KEDA's SQS scaler asks: waiting and in flight
        (the keep-alive guard reads in-flight work even when the metric leaves it
        out), delayed only when it counts."""
        return (WAITING, IN_FLIGHT, DELAYED) if self._cfg.scale_on_delayed else (WAITING, IN_FLIGHT)

    def read(self) -> QueueReading:
        with self._lock:
            try:
                response = self._sqs().get_queue_attributes(
                    QueueUrl=self._resolved_queue_url(), AttributeNames=list(self.attributes)
                )
            except ClientError as exc:
                code, message = _client_error(exc)
                if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                    raise SourceError(f"{self.description}: queue does not exist") from None
                detail = _error_detail(code, message, exc.operation_name)
                raise SourceError(f"{self.description}: {detail}") from None
            except NoCredentialsError:
                raise SourceError(
                    f"{self.description}: no AWS credentials found (IRSA, environment, or "
                    "awsAccessKeyID/awsSecretAccessKey)"
                ) from None
            except BotoCoreError as exc:
                # The client is kept: its connection pool drops a broken connection by
                # itself, and rebuilding the client costs more than a read's timeout
                # slack on a busy node.
                raise SourceError(f"{self.description}: {self._connection_failed(exc)}") from None
        # An answer without Attributes lacks every count: _count names the first.
        attrs = response.get("Attributes")
        if not isinstance(attrs, dict):
            attrs = {}
        return QueueReading(
            waiting=self._count(attrs, WAITING),
            in_flight=self._count(attrs, IN_FLIGHT),
            delayed=self._count(attrs, DELAYED) if DELAYED in self.attributes else 0.0,
        )

    def _count(self, attrs: dict[str, Any], name: str) -> float:
        """One attribute as a count. A missing one is an error, as in KEDA's own
        scaler: reading it as 0 would be a made-up zero (SQS-compatible servers
        do not all report every attribute). So is NaN, infinite or negative: the
        engine would read NaN as an idle queue."""
        if name not in attrs:
            raise SourceError(
                f"{self.description}: the answer has no {name}; check that the server at "
                f"{self._endpoint_name()} reports it"
            )
        try:
            value = float(attrs[name])
        except (TypeError, ValueError):
            raise SourceError(f"{self.description}: {name} is not a number ({attrs[name]!r})") from None
        if not (math.isfinite(value) and value >= 0):
            raise SourceError(
                f"{self.description}: {name} is {value:g}; expected a count of messages (finite, "
                f"not negative); check the server at {self._endpoint_name()}"
            )
        return value

    def _connection_failed(self, exc: BotoCoreError) -> str:
        endpoint_url = self._cfg.endpoint or f"https://sqs.{self._cfg.region}.amazonaws.com"
        parts = urlsplit(endpoint_url)
        described = connection_failure(
            exc,
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            timeout=self._timeout,
            host_key="awsEndpoint" if self._cfg.endpoint else "awsRegion",
            server="SQS",
        )
        if described is not None:
            return described
        if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
            return f"no answer from {self._endpoint_name()} within {self._timeout:g}s"
        if isinstance(exc, EndpointConnectionError):
            return f"cannot connect to {self._endpoint_name()}"
        return f"request to {self._endpoint_name()} failed ({type(exc).__name__})"

    def _resolved_queue_url(self) -> str:
        """The queue's URL; a queue given by its name (KEDA allows it) is looked
        up once with GetQueueUrl (needs sqs:GetQueueUrl), under the read lock."""
        if self._queue_url is None:
            self._queue_url = str(self._sqs().get_queue_url(QueueName=self._cfg.queue_url)["QueueUrl"])
        return self._queue_url

    def close(self) -> None:
        with self._lock:  # not under a read in progress
            shared, self._shared = self._shared, None
        if shared is not None:
            self._clients.release(self._cfg, self, self._timeout)

    def _endpoint_name(self) -> str:
        # awsEndpoint may carry user info (botocore ignores it): never shown.
        return redact_url(self._cfg.endpoint) if self._cfg.endpoint else f"SQS in {self._cfg.region}"

    def _sqs(self) -> Any:
        if self._shared is None:
            self._shared = self._clients.acquire(self._cfg, self, self._timeout)
        return self._shared.client(self.description)
