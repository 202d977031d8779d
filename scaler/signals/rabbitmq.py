"""RabbitMQ backlog, over AMQP (passive queue declare) or the management HTTP API.

AMQP sees only the ready count (`in_flight` is None: the protocol cannot tell);
the management API also reports unacknowledged messages and publish/deliver
rates. Neither path ever consumes, gets or acknowledges a message.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from contextlib import suppress
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pika
import pika.exceptions
import requests
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

from scaler.config import (
    MAX_QUOTED,
    RabbitConfig,
    RabbitProtocol,
    quote_vhost,
    quoted,
    rabbit_http_prefix,
    rabbit_vhost,
)
from scaler.signals.base import (
    QueueReading,
    SharedByKey,
    SharedHTTPPools,
    SourceError,
    mount_shared_pools,
)
from scaler.signals.errors import connection_failure, endpoint, redirected, url_endpoint


class _RabbitQueueSource:
    """What both protocols share: the cache key and the description of one queue."""

    _cfg: RabbitConfig

    @cached_property  # hashed once; read on every call
    def key(self) -> str:
        c = self._cfg
        return f"rabbitmq|{c.protocol.value}|{c.credential_identity()}|{rabbit_vhost(c)}|{c.queue_name}"

    @cached_property  # read on every call (each SignalRead names its source); parses the URL
    def description(self) -> str:
        c = self._cfg
        # Names quoted cut: this starts every error about the queue.
        return f"rabbitmq queue {quoted(c.queue_name)} (vhost {quoted(rabbit_vhost(c))}) at {c.safe_url}"

    @cached_property
    def endpoint(self) -> str:
        """The server read (Source.endpoint): the broker, or its management API."""
        return url_endpoint(self._cfg.url)


class AmqpConnections:
    """AMQP connections shared by every queue read on the same broker, vhost and
    credentials: a hundred queues on one broker cost one connection per scaler
    replica, not a hundred. A connection closes when the last source using it
    closes (the cache closes idle sources).

    `failure_ttl`: how long a broker's connection failure is remembered, so its
    other queues fail at once instead of each trying (and waiting) again; the
    server passes the cache TTL, after which a read tries the broker again.
    """

    def __init__(self, failure_ttl: float = 2.0) -> None:
        self._shared: SharedByKey[_SharedConnection] = SharedByKey()
        self.failure_ttl = failure_ttl

    @staticmethod
    def key(cfg: RabbitConfig) -> str:
        # credential_identity hashes the whole URL: host, port, user, password, vhost path.
        return f"{cfg.credential_identity()}|{rabbit_vhost(cfg)}"

    def acquire(self, cfg: RabbitConfig, user: object, timeout: float) -> _SharedConnection:
        return self._shared.acquire(
            self.key(cfg), user, lambda: _SharedConnection(cfg, timeout, self.failure_ttl)
        )

    def release(self, cfg: RabbitConfig, user: object) -> None:
        self._shared.release(self.key(cfg), user)

    def __len__(self) -> int:
        return len(self._shared)


class BrokerError(Exception):
    """A read through a shared connection failed. The message is the cause, with
    the broker's host:port and no queue and no credential: each queue's source
    puts its own description in front."""


class _ReadDeadline(pika.exceptions.AMQPConnectionError):
    """The broker did not answer an operation on an open connection in time."""


class _SharedConnection:
    """One AMQP connection and channel, driven by pika's asyncio adapter on the
    event loop that reads through it; the queues sharing it take turns (a passive
    declare is one frame out and one in, about 0.2 ms against a local broker).

    Why on the event loop, not in a read thread: a thread needs the GIL back after
    each of pika's socket calls, and a busy event loop, which lets the GIL go and
    takes it back around every poll of its own, keeps winning it. A passive declare
    that takes 0.2 ms took 5 ms with another thread computing, and seconds with an
    event loop kept busy (docs/decisions.md, *AMQP reads run on the event loop*).

    Every step has a deadline, so a broker that stops answering costs one read
    the source timeout and no more: the connect (pika's stack timeout), the wait
    for the turn, and each operation on an open connection (past it the connection
    is ended, as pika's own heartbeat check ends one). A connection failure is
    remembered for `failure_ttl`: the broker's other queues fail at once with the
    same cause instead of queueing behind it.
    """

    def __init__(self, cfg: RabbitConfig, timeout: float, failure_ttl: float = 2.0) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._failure_ttl = failure_ttl
        # The loop the connection runs on, and its turn: made on the first read, and
        # again if a read comes from another loop (a connection cannot move).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn: asyncio.Lock | None = None
        self._connection: Any = None
        self._channel: Any = None
        # The operation waiting for the broker's answer, failed at once when the
        # connection or the channel closes under it.
        self._waiting: asyncio.Future[Any] | None = None
        self._failed: tuple[float, str] | None = None  # (until, cause): the last connection failure
        parts = urlsplit(cfg.url)
        default_port = 5671 if parts.scheme.lower() == "amqps" else 5672
        self.host = parts.hostname
        self.port = parts.port or default_port
        self.where = endpoint(self.host, self.port)

    async def message_count(self, queue: str) -> int:
        """Ready messages in `queue`, by passive declare. Raises BrokerError
        (QueueMissing/QueueDenied for the queue itself)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        self._raise_remembered()
        if self._loop is not loop:
            self.close()  # one made on another loop (closed, or not ours to use)
            self._loop, self._turn = loop, asyncio.Lock()
        turn = self._turn
        assert turn is not None
        try:
            async with asyncio.timeout_at(deadline):
                await turn.acquire()
        except TimeoutError:
            raise BrokerError(
                f"another read on the connection to {self.where} has not returned within "
                f"{self._timeout:g}s; check that RabbitMQ answers"
            ) from None
        try:
            self._raise_remembered()  # the read we waited for may just have failed
            kept = self._connection is not None and self._connection.is_open
            try:
                return await self._declare_passive(queue, deadline)
            except (
                pika.exceptions.StreamLostError,
                pika.exceptions.ConnectionClosed,
                pika.exceptions.ChannelWrongStateError,
            ) as exc:
                self._drop()
                if not kept or loop.time() >= deadline:
                    raise self._connection_failed(exc) from None
                # The kept connection died between reads (broker restart, idle
                # timeout): reconnect once, then report.
                try:
                    return await self._declare_passive(queue, deadline)
                except pika.exceptions.ChannelClosedByBroker as retry_exc:
                    self._channel = None
                    raise _queue_error(retry_exc) from None
                except Exception as retry_exc:
                    self._drop()
                    raise self._connection_failed(retry_exc) from None
            except pika.exceptions.ChannelClosedByBroker as exc:
                # The queue (404) or the permission (403) is the problem, not the
                # connection: keep it for the other queues, open a new channel next time.
                self._channel = None
                raise _queue_error(exc) from None
            except Exception as exc:  # pika's, the socket's, the TLS layer's, the stack timeout
                self._drop()
                raise self._connection_failed(exc) from None
        finally:
            turn.release()

    def _raise_remembered(self) -> None:
        failed = self._failed
        if failed is not None and time.monotonic() < failed[0]:
            raise BrokerError(failed[1])

    def _connection_failed(self, exc: BaseException) -> BrokerError:
        """The cause, remembered for the broker's other queues."""
        cause = self._cause(exc)
        self._failed = (time.monotonic() + self._failure_ttl, cause)
        return BrokerError(cause)

    def _cause(self, exc: BaseException) -> str:
        if isinstance(exc, _ReadDeadline):
            return (
                f"no answer from {self.where} within {self._timeout:g}s on an open connection; check that "
                "RabbitMQ is not overloaded or blocked (memory or disk alarm) and still reachable"
            )
        if isinstance(exc, pika.exceptions.ProbableAuthenticationError):
            return f"authentication failed at {self.where}; check the user name and password in the host URL"
        if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
            # The broker closes the handshake alike for a missing vhost and a denied one.
            return (
                f"the vhost {rabbit_vhost(self._cfg)!r} does not exist at {self.where} or access to it is "
                "denied; check vhostName (or the URL's path) and the user's permissions"
            )
        if isinstance(exc, pika.exceptions.ConnectionClosedByBroker):
            return (
                f"{self.where} closed the connection ({exc.reply_code} {exc.reply_text}); "
                "check the broker's log"
            )
        described = connection_failure(
            exc,
            host=self.host,
            port=self.port,
            timeout=self._timeout,
            host_key="host",
            server="RabbitMQ",
        )
        if described is not None:
            return described
        return f"cannot connect to {self.where}: unexpected AMQP error ({type(exc).__name__})"

    async def _declare_passive(self, queue: str, deadline: float) -> int:
        if self._connection is None or not self._connection.is_open:
            await self._connect(deadline)
        if self._channel is None or not self._channel.is_open:
            connection = self._connection
            self._channel = await self._answer(
                deadline, lambda done: connection.channel(on_open_callback=done)
            )
            self._channel.add_on_close_callback(self._channel_closed)
        channel = self._channel
        # passive=True only checks that the queue exists and returns its counts.
        frame = await self._answer(
            deadline, lambda done: channel.queue_declare(queue=queue, passive=True, callback=done)
        )
        return int(frame.method.message_count)

    async def _answer(self, deadline: float, start: Callable[[Callable[[Any], None]], object]) -> Any:
        """Start an operation that calls back with the broker's answer, and wait for
        it until `deadline`; past it the connection is ended (_ReadDeadline)."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[Any] = loop.create_future()

        def done(answer: Any) -> None:
            if not waiting.done():
                waiting.set_result(answer)

        self._waiting = waiting
        try:
            start(done)
            async with asyncio.timeout_at(deadline):
                return await waiting
        except TimeoutError:
            self._end(_ReadDeadline(f"no answer within {self._timeout:g}s"))
            raise _ReadDeadline(f"no answer within {self._timeout:g}s") from None
        finally:
            self._waiting = None

    async def _connect(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        remaining = max(deadline - loop.time(), 0.001)
        params = pika.URLParameters(amqp_url_for_pika(self._cfg.url))
        if self._cfg.vhost is not None:
            params.virtual_host = self._cfg.vhost
        params.socket_timeout = remaining
        params.stack_timeout = remaining  # TCP, TLS and the AMQP handshake together
        params.blocked_connection_timeout = self._timeout
        params.connection_attempts = 1
        params.retry_delay = 0
        opened: asyncio.Future[None] = loop.create_future()

        def on_open(_: object) -> None:
            if not opened.done():
                opened.set_result(None)

        def on_open_error(_: object, exc: BaseException) -> None:
            if isinstance(exc, pika.exceptions.ConnectionOpenAborted):
                # How pika's stack timeout ends a handshake the broker never answered:
                # it closes the opening connection (this class closes one opening only
                # after giving up on its connect, whose future nobody awaits then).
                exc = AMQPConnectorStackTimeout(str(exc))
            if not opened.done():
                opened.set_exception(exc)

        self._drop()  # one left opening by a connect that was cancelled
        self._connection = AsyncioConnection(
            params,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=self._connection_closed,
            custom_ioloop=loop,
        )
        try:
            # pika's stack timeout ends the attempt at `deadline` with its own error;
            # this backstop, a moment later, only catches an adapter that did not.
            async with asyncio.timeout_at(deadline + 0.25):
                await opened
        except TimeoutError:
            self._end(AMQPConnectorStackTimeout(f"no connection within {remaining:g}s"))
            raise pika.exceptions.AMQPConnectionError(AMQPConnectorStackTimeout()) from None

    def _connection_closed(self, connection: object, reason: BaseException) -> None:
        """pika's close callback: fail the operation waiting on the connection."""
        if connection is not self._connection:
            return  # one dropped already
        self._connection = self._channel = None
        self._fail_waiting(reason)

    def _channel_closed(self, channel: object, reason: BaseException) -> None:
        """The broker closed the channel (a missing or refused queue: 404, 403)."""
        if channel is not self._channel:
            return
        self._channel = None
        self._fail_waiting(reason)

    def _fail_waiting(self, reason: BaseException) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(reason)

    def _end(self, error: BaseException) -> None:
        """End the connection now, without the close handshake (a broker that stopped
        answering would not answer that either). Private pika API, as its heartbeat
        check uses it; pinned by the frozen-broker test."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with suppress(Exception):  # already gone
                connection._terminate_stream(error)

    def _drop(self) -> None:
        """Let the connection go after a failure: closed politely if it is open (the
        broker answers CloseOk on the loop; nothing waits for it), ended if it was
        still opening (a connect cancelled half-way)."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close(connection)

    def close(self) -> None:
        """Close the connection (the cache closes sources from its pool threads:
        the close is handed to the connection's event loop)."""
        loop, connection = self._loop, self._connection
        self._connection = self._channel = None
        if loop is not None and connection is not None:
            self._close_on(loop, connection)

    @staticmethod
    def _close_on(loop: asyncio.AbstractEventLoop, connection: Any) -> None:
        with suppress(RuntimeError):  # the loop has closed: the process is ending with it
            loop.call_soon_threadsafe(_close, connection)


def _close(connection: Any) -> None:
    """Close an AMQP connection unless it is closing or closed already (pika refuses
    a second close); one still opening is ended without the handshake."""
    with suppress(Exception):  # already broken; nothing to salvage
        if not (connection.is_closing or connection.is_closed):
            connection.close()


# URL query parameters pika reads with ast.literal_eval into TLS or socket
# settings: ssl_options loads the CA, certificate and key files it names from the
# scaler's own filesystem (a tenant could probe for files, or make the scaler
# present a client certificate mounted in its pod), tcp_options sets socket options.
_UNSAFE_QUERY_KEYS = frozenset({"ssl_options", "tcp_options"})


def amqp_url_for_pika(url: str) -> str:
    """The URL to give pika: `url` without ssl_options or tcp_options in its
    query. Configuration refuses them; this holds whatever reaches the source."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name.strip().lower() not in _UNSAFE_QUERY_KEYS]
    if len(kept) == len(pairs):
        return url
    return parts._replace(query=urlencode(kept)).geturl()


def _queue_error(exc: pika.exceptions.ChannelClosedByBroker) -> BrokerError:
    if exc.reply_code == 404:
        return BrokerError("queue does not exist")
    if exc.reply_code == 403:
        return BrokerError("access refused; check the user's permissions on the queue")
    return BrokerError(f"channel closed by the broker ({exc.reply_code} {exc.reply_text})")


class RabbitAmqpSource(_RabbitQueueSource):
    def __init__(
        self, cfg: RabbitConfig, *, timeout: float = 5.0, connections: AmqpConnections | None = None
    ) -> None:
        self._cfg = cfg
        self._timeout = timeout
        self._connections = connections if connections is not None else AmqpConnections()

    async def read(self) -> QueueReading:
        """On the event loop (the cache awaits a source whose read is a coroutine);
        the queues of one connection take turns on it."""
        shared = self._connections.acquire(self._cfg, self, self._timeout)
        try:
            waiting = await shared.message_count(self._cfg.queue_name)
        except BrokerError as exc:
            raise SourceError(f"{self.description}: {exc}") from None
        return QueueReading(waiting=float(waiting), in_flight=None)

    def close(self) -> None:
        self._connections.release(self._cfg, self)


class RabbitHttpSource(_RabbitQueueSource):
    """The management API: GET /api/queues/<vhost>/<queue>. `pools`: the HTTP
    connection pools shared by every such source (base.SharedHTTPPools); without,
    the source keeps its own."""

    def __init__(
        self, cfg: RabbitConfig, *, timeout: float = 5.0, pools: SharedHTTPPools | None = None
    ) -> None:
        self._cfg = cfg
        self._timeout = timeout
        parts = urlsplit(cfg.url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._base = f"{parts.scheme}://{netloc}{rabbit_http_prefix(cfg)}"
        # UTF-8 bytes, as RabbitMQ and KEDA read them (and pika sends them over
        # AMQP): requests would encode a str as latin-1, which fails (or changes)
        # a non-ASCII password.
        self._auth = (
            requests.auth.HTTPBasicAuth(
                requests.utils.unquote(parts.username or "").encode(),
                requests.utils.unquote(parts.password or "").encode(),
            )
            if parts.username is not None
            else None
        )
        self._session = requests.Session()
        if pools is not None:
            mount_shared_pools(self._session, pools, "http://", "https://")

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
                # No redirect is followed: --allowed-hosts checks only the configured
                # address, and a redirect could send the read anywhere the scaler's
                # network reaches. A 3xx is reported instead.
                allow_redirects=False,
                # Only the fields we use: cheaper for the broker on big queues.
                params={"columns": "messages_ready,messages_unacknowledged,message_stats"},
            )
        except requests.RequestException as exc:
            raise SourceError(f"{self.description}: {self._request_failed(exc)}") from None
        if 300 <= response.status_code < 400:
            cause = redirected(response.status_code, response.headers.get("Location"), url, "host")
            raise SourceError(f"{self.description}: {cause}")
        if response.status_code == 401:
            raise SourceError(
                f"{self.description}: authentication failed (HTTP 401); check the user name and "
                "password in the host URL"
            )
        if response.status_code == 403:
            raise SourceError(
                f"{self.description}: access denied (HTTP 403); the user needs the 'monitoring' "
                "(or 'management') tag and permissions on the vhost"
            )
        if response.status_code == 404:
            raise SourceError(f"{self.description}: queue or vhost does not exist (HTTP 404)")
        if response.status_code != 200:
            raise SourceError(
                f"{self.description}: HTTP {response.status_code} from the management API; check that the "
                "host URL points at RabbitMQ's management API (port 15672 by default), and the broker's log"
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{self.description}: unexpected answer from the management API") from None
        if (
            not isinstance(body, dict)
            or body.get("messages_ready") is None
            or (body.get("messages_unacknowledged") is None)
        ):
            # A queue the broker has not emitted statistics for yet (new, or just
            # after a restart): the API has no counts (with `columns`, it answers
            # `[]`), or not both. Reporting 0 would be a made-up zero.
            raise SourceError(
                f"{self.description}: the management API has no message counts for the queue yet "
                "(statistics are collected every few seconds)"
            )
        stats = body.get("message_stats")
        if not isinstance(stats, dict):
            stats = {}
        return QueueReading(
            waiting=self._count(body, "messages_ready"),
            in_flight=self._count(body, "messages_unacknowledged"),
            publish_rate=self._rate(stats, "publish_details"),
            deliver_rate=self._rate(stats, "deliver_get_details"),
        )

    def _count(self, body: dict[str, Any], field: str) -> float:
        """A message count from the answer: a number, finite and not negative (the
        engine would read NaN as an idle queue)."""
        value = body[field]
        # JSON's true/false would pass float(); a count is a JSON number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SourceError(
                f"{self.description}: unexpected answer from the management API ({field} is not a number)"
            )
        if not (math.isfinite(value) and value >= 0):
            raise SourceError(
                f"{self.description}: the management API reports {field} = {float(value):g}; expected a "
                "count of messages (finite, not negative)"
            )
        return float(value)

    def _rate(self, stats: dict[str, Any], field: str) -> float | None:
        """A rate the broker reports; None only where it reports none (no
        `field`: RabbitMQ leaves publish_details out until a message is
        published, and all rates out with rates_mode none). A rate that is there
        but not a rate (NaN, infinite, negative, not a number) is an error, as
        for a count: read as None it made MessageRate answer 0, inactive."""
        if field not in stats:
            return None
        details = stats[field]
        if not isinstance(details, dict) or "rate" not in details:
            raise SourceError(
                f"{self.description}: unexpected answer from the management API (message_stats.{field} "
                f"has no rate: {_shown(details)})"
            )
        rate = details["rate"]
        # JSON's true/false would pass float(); a rate is a JSON number.
        number = isinstance(rate, int | float) and not isinstance(rate, bool)
        if not (number and math.isfinite(rate) and rate >= 0):
            raise SourceError(
                f"{self.description}: the management API reports message_stats.{field}.rate = "
                f"{_shown(rate)}; expected a rate of messages per second (a finite number, not negative)"
            )
        return float(rate)

    def _request_failed(self, exc: requests.RequestException) -> str:
        parts = urlsplit(self._base)
        described = connection_failure(
            exc,
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            timeout=self._timeout,
            host_key="host",
            server="RabbitMQ's management API",
        )
        return described or f"request failed ({type(exc).__name__})"

    def close(self) -> None:
        self._session.close()  # the shared pools stay open (SharedHTTPPools.close)


def _shown(value: Any) -> str:
    """A value from the answer as JSON writes it, cut as errors quote values."""
    text = json.dumps(value)
    return text if len(text) <= MAX_QUOTED else f"{text[: MAX_QUOTED - 3]}... ({len(text)} characters)"


def rabbitmq_source(
    cfg: RabbitConfig,
    *,
    timeout: float,
    connections: AmqpConnections | None = None,
    http_pools: SharedHTTPPools | None = None,
) -> RabbitAmqpSource | RabbitHttpSource:
    if cfg.protocol is RabbitProtocol.AMQP:
        return RabbitAmqpSource(cfg, timeout=timeout, connections=connections)
    return RabbitHttpSource(cfg, timeout=timeout, pools=http_pools)
