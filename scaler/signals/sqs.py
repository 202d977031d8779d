"""AWS SQS backlog via GetQueueAttributes (never ReceiveMessage).

ApproximateNumberOfMessages = waiting, ...NotVisible = in flight (received, not
yet deleted), ...Delayed = delayed. Credentials come from the default AWS chain
(IRSA, environment) unless the trigger gives keys, optionally assuming a role.
"""

from __future__ import annotations

import re
import threading
import time
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

from scaler.config import SqsConfig, quoted
from scaler.signals.base import QueueReading, SourceError
from scaler.signals.errors import connection_failure

WAITING = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
# What to check for SQS's error codes that mean the request's identity is wrong.
_CREDENTIAL_CODES = {
    "InvalidClientTokenId": "the access key ID",
    "UnrecognizedClientException": "the access key ID",
    "SignatureDoesNotMatch": "the secret access key",
    "InvalidSignatureException": "the secret access key",
    "ExpiredToken": "the session token (it has expired)",
    "AccessDenied": "the identity's sqs:GetQueueAttributes permission on the queue",
    "AccessDeniedException": "the identity's sqs:GetQueueAttributes permission on the queue",
}


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


def _advice(code: str) -> str:
    what = _CREDENTIAL_CODES.get(code)
    return f"; check {what}" if what else ""


# Refresh assumed-role credentials this long before they expire.
ROLE_REFRESH_MARGIN_S = 300.0


class SqsSource:
    def __init__(self, cfg: SqsConfig, *, timeout: float = 5.0) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._client: Any = None
        self._client_expires = float("inf")
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
    def attributes(self) -> tuple[str, ...]:
        """The attributes read, as KEDA's SQS scaler asks: waiting and in flight
        (the keep-alive guard reads in-flight work even when the metric leaves it
        out), delayed only when it counts."""
        return (WAITING, IN_FLIGHT, DELAYED) if self._cfg.scale_on_delayed else (WAITING, IN_FLIGHT)

    def read(self) -> QueueReading:
        with self._lock:
            try:
                attrs = self._sqs().get_queue_attributes(
                    QueueUrl=self._resolved_queue_url(), AttributeNames=list(self.attributes)
                )["Attributes"]
            except ClientError as exc:
                code, message = _client_error(exc)
                if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
                    raise SourceError(f"{self.description}: queue does not exist") from None
                raise SourceError(f"{self.description}: {code}: {message}{_advice(code)}") from None
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
        return QueueReading(
            waiting=self._count(attrs, WAITING),
            in_flight=self._count(attrs, IN_FLIGHT),
            delayed=self._count(attrs, DELAYED) if DELAYED in self.attributes else 0.0,
        )

    def _count(self, attrs: dict[str, str], name: str) -> float:
        """One attribute as a number. A missing one is an error, as in KEDA's own
        scaler: reading it as 0 would be a made-up zero (SQS-compatible servers
        do not all report every attribute)."""
        if name not in attrs:
            raise SourceError(
                f"{self.description}: the answer has no {name}; check that the server at "
                f"{self._endpoint_name()} reports it"
            )
        try:
            return float(attrs[name])
        except (TypeError, ValueError):
            raise SourceError(f"{self.description}: {name} is not a number ({attrs[name]!r})") from None

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
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _endpoint_name(self) -> str:
        return self._cfg.endpoint or f"SQS in {self._cfg.region}"

    def _boto_config(self) -> BotoConfig:
        # Bounded: one attempt each with short timeouts; the cache retries next TTL.
        return BotoConfig(
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
            # total_max_attempts counts the first try; max_attempts would allow one retry.
            retries={"total_max_attempts": 1, "mode": "standard"},
        )

    def _sqs(self) -> Any:
        if self._client is not None and time.monotonic() < self._client_expires:
            return self._client
        c = self._cfg
        session = boto3.session.Session(
            aws_access_key_id=c.access_key_id,
            aws_secret_access_key=c.secret_access_key,
            aws_session_token=c.session_token,
            region_name=c.region,
        )
        expires = float("inf")
        if c.role_arn:
            try:
                # awsEndpoint is the SQS endpoint (often a VPC endpoint for SQS only);
                # STS goes where the AWS SDK sends it: its regional endpoint, or
                # AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL in the scaler's environment.
                sts = session.client("sts", config=self._boto_config())
                creds = sts.assume_role(RoleArn=c.role_arn, RoleSessionName="prewarm-scaler")["Credentials"]
            except ClientError as exc:
                # The error code (AccessDenied, InvalidClientTokenId, ...) is the cause;
                # STS's message may quote the caller's identity, so it is left out.
                code = exc.response.get("Error", {}).get("Code", "error")
                raise SourceError(f"{self.description}: cannot assume role {c.role_arn}: {code}") from None
            except BotoCoreError as exc:
                raise SourceError(
                    f"{self.description}: cannot assume role {c.role_arn}: {type(exc).__name__}"
                ) from None
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=c.region,
            )
            remaining = creds["Expiration"].timestamp() - time.time()
            expires = time.monotonic() + max(0.0, remaining - ROLE_REFRESH_MARGIN_S)
        self._client = session.client("sqs", endpoint_url=c.endpoint, config=self._boto_config())
        self._client_expires = expires
        return self._client
