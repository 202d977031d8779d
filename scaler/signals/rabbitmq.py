"""RabbitMQ backlog, over AMQP (passive queue declare) or the management HTTP API.

AMQP sees only the ready count (`in_flight` is None: the protocol cannot tell);
the management API also reports unacknowledged messages and publish/deliver
rates. Neither path ever consumes, gets or acknowledges a message.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
import requests

from scaler.config import RabbitConfig, RabbitProtocol, quote_vhost, rabbit_http_prefix, rabbit_vhost
from scaler.signals.base import QueueReading, SourceError


class _RabbitQueueSource:
    """What both protocols share: the cache key and the description of one queue."""

    _cfg: RabbitConfig

    @cached_property  # hashed once; read on every call
    def key(self) -> str:
        c = self._cfg
        return f"rabbitmq|{c.protocol.value}|{c.credential_identity()}|{rabbit_vhost(c)}|{c.queue_name}"

    @property
    def description(self) -> str:
        c = self._cfg
        return f"rabbitmq queue {c.queue_name!r} (vhost {rabbit_vhost(c)!r}) at {c.safe_url}"


class AmqpConnections:
    """AMQP connections shared by every queue read on the same broker, vhost and
    credentials: a hundred queues on one broker cost one connection per scaler
    replica, not a hundred. A connection closes when the last source using it
    closes (the cache closes idle sources)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, _SharedConnection] = {}

    @staticmethod
    def _key(cfg: RabbitConfig) -> str:
        # credential_identity hashes the whole URL: host, port, user, password, vhost path.
        return f"{cfg.credential_identity()}|{rabbit_vhost(cfg)}"

    def acquire(self, cfg: RabbitConfig, user: object, timeout: float) -> _SharedConnection:
        with self._lock:
            shared = self._shared.get(self._key(cfg))
            if shared is None:
                shared = self._shared[self._key(cfg)] = _SharedConnection(cfg, timeout)
            shared.users.add(id(user))
            return shared

    def release(self, cfg: RabbitConfig, user: object) -> None:
        with self._lock:
            shared = self._shared.get(self._key(cfg))
            if shared is None:
                return
            shared.users.discard(id(user))
            if shared.users:
                return
            del self._shared[self._key(cfg)]
        shared.close()

    def __len__(self) -> int:
        return len(self._shared)


class _SharedConnection:
    """One BlockingConnection and channel; pika is not thread-safe, so reads of
    the queues sharing it take turns (a passive declare takes about a millisecond)."""

    def __init__(self, cfg: RabbitConfig, timeout: float) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self.users: set[int] = set()

    def message_count(self, queue: str) -> int:
        """Ready messages in `queue`, by passive declare. Raises pika's errors."""
        with self._lock:
            try:
                return self._declare_passive(queue)
            except (
                pika.exceptions.StreamLostError,
                pika.exceptions.ConnectionClosed,
                pika.exceptions.ChannelWrongStateError,
            ):
                # The kept connection died between reads (broker restart, idle
                # timeout): reconnect once, then report.
                self._drop()
                try:
                    return self._declare_passive(queue)
                except (pika.exceptions.AMQPError, OSError):
                    self._drop()
                    raise
            except pika.exceptions.ChannelClosedByBroker:
                # The queue (404) or the permission (403) is the problem, not the
                # connection: keep it for the other queues, open a new channel next time.
                self._channel = None
                raise
            except (pika.exceptions.AMQPError, OSError):
                self._drop()
                raise

    def _declare_passive(self, queue: str) -> int:
        channel = self._open_channel()
        # passive=True only checks that the queue exists and returns its counts.
        frame = channel.queue_declare(queue=queue, passive=True)
        return int(frame.method.message_count)

    def _open_channel(self) -> Any:
        if self._connection is None or not self._connection.is_open:
            params = pika.URLParameters(self._cfg.url)
            if self._cfg.vhost is not None:
                params.virtual_host = self._cfg.vhost
            params.socket_timeout = self._timeout
            params.stack_timeout = self._timeout
            params.blocked_connection_timeout = self._timeout
            params.connection_attempts = 1
            params.retry_delay = 0
            self._connection = pika.BlockingConnection(params)
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
        return self._channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # already broken; nothing to salvage
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()


class RabbitAmqpSource(_RabbitQueueSource):
    def __init__(
        self, cfg: RabbitConfig, *, timeout: float = 5.0, connections: AmqpConnections | None = None
    ) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._connections = connections if connections is not None else AmqpConnections()

    def read(self) -> QueueReading:
        shared = self._connections.acquire(self._cfg, self, self._timeout)
        try:
            waiting = shared.message_count(self._cfg.queue_name)
        except pika.exceptions.AMQPError as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise SourceError(f"{self.description}: {type(exc).__name__}") from None
        return QueueReading(waiting=float(waiting), in_flight=None)

    def _error(self, exc: Exception) -> SourceError:
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
            if exc.reply_code == 404:
                return SourceError(f"{self.description}: queue does not exist")
            if exc.reply_code == 403:
                return SourceError(f"{self.description}: access refused")
            return SourceError(f"{self.description}: channel closed ({exc.reply_code})")
        if isinstance(exc, pika.exceptions.ProbableAuthenticationError):
            return SourceError(f"{self.description}: authentication failed")
        if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
            # The broker closes the handshake alike for a missing vhost and a denied one.
            return SourceError(f"{self.description}: the vhost does not exist or access to it is denied")
        if isinstance(exc, pika.exceptions.AMQPConnectionError):
            return SourceError(f"{self.description}: cannot connect")
        return SourceError(f"{self.description}: {type(exc).__name__}")

    def close(self) -> None:
        self._connections.release(self._cfg, self)


class RabbitHttpSource(_RabbitQueueSource):
    """The management API: GET /api/queues/<vhost>/<queue>."""

    def __init__(self, cfg: RabbitConfig, *, timeout: float = 5.0) -> None:
        self._cfg = cfg
        self._timeout = timeout
        parts = urlsplit(cfg.url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._base = f"{parts.scheme}://{netloc}{rabbit_http_prefix(cfg)}"
        self._auth = (
            (requests.utils.unquote(parts.username or ""), requests.utils.unquote(parts.password or ""))
            if parts.username is not None
            else None
        )
        self._session = requests.Session()

    def read(self) -> QueueReading:
        url = (
            f"{self._base}/api/queues/{quote_vhost(rabbit_vhost(self._cfg))}/"
            f"{quote_vhost(self._cfg.queue_name)}"
        )
        try:
            response = self._session.get(
                url,
                auth=self._auth,
                timeout=self._timeout,
                # Only the fields we use: cheaper for the broker on big queues.
                params={"columns": "messages_ready,messages_unacknowledged,message_stats"},
            )
        except requests.Timeout:
            raise SourceError(f"{self.description}: no answer within {self._timeout:g}s") from None
        except requests.ConnectionError:
            raise SourceError(f"{self.description}: cannot connect") from None
        except requests.RequestException as exc:
            raise SourceError(f"{self.description}: {type(exc).__name__}") from None
        if response.status_code == 401:
            raise SourceError(f"{self.description}: authentication failed (HTTP 401)")
        if response.status_code == 404:
            raise SourceError(f"{self.description}: queue or vhost does not exist (HTTP 404)")
        if response.status_code != 200:
            raise SourceError(f"{self.description}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{self.description}: unexpected answer from the management API") from None
        if not isinstance(body, dict) or "messages_ready" not in body:
            # A queue the broker has not emitted statistics for yet (new, or just
            # after a restart): the API has no counts (with `columns`, it answers
            # `[]`). Reporting 0 would be a made-up zero.
            raise SourceError(
                f"{self.description}: the management API has no message counts for the queue yet "
                "(statistics are collected every few seconds)"
            )
        try:
            stats = body.get("message_stats") or {}
            return QueueReading(
                waiting=float(body.get("messages_ready", 0) or 0),
                in_flight=float(body.get("messages_unacknowledged", 0) or 0),
                publish_rate=_rate(stats, "publish_details"),
                deliver_rate=_rate(stats, "deliver_get_details"),
            )
        except (ValueError, AttributeError, TypeError):
            raise SourceError(f"{self.description}: unexpected answer from the management API") from None

    def close(self) -> None:
        self._session.close()


def _rate(stats: dict[str, Any], field: str) -> float | None:
    details = stats.get(field)
    if isinstance(details, dict) and "rate" in details:
        return float(details["rate"])
    return None


def rabbitmq_source(
    cfg: RabbitConfig, *, timeout: float, connections: AmqpConnections | None = None
) -> RabbitAmqpSource | RabbitHttpSource:
    if cfg.protocol is RabbitProtocol.AMQP:
        return RabbitAmqpSource(cfg, timeout=timeout, connections=connections)
    return RabbitHttpSource(cfg, timeout=timeout)
