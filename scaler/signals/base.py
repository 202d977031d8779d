"""The interface every signal source implements, and the readings they return.

A source does blocking I/O in `read()`, which the engine runs off the event loop,
or asynchronous I/O in an `async def read()` on it; either way behind the shared
cache (see cache.py), with a bounded timeout. A source only
inspects: it never receives, consumes or acknowledges a message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import requests
import requests.adapters


class SourceError(Exception):
    """A source could not be read. The message names the source and the cause
    and must never contain a credential."""


class SourceRejectedQuery(SourceError):
    """The source answered, and said the configured query itself is invalid (a
    PromQL syntax error): a metadata problem, reported as INVALID_ARGUMENT, that
    no retry will fix."""


E = TypeVar("E", bound=BaseException)


def without_frames(exc: E) -> E:
    """`exc` with its traceback, context and cause dropped, for an error kept or
    answered for its message only: its traceback holds the frames it was raised
    through, which hold it in turn (a reference cycle per failed call for the
    collector, whose passes stop the event loop, all through an outage)."""
    exc.__traceback__ = exc.__context__ = exc.__cause__ = None
    return exc


@dataclass(frozen=True)
class QueueReading:
    """Messages in a queue, by state."""

    waiting: float  # visible / ready: nobody has taken them yet
    in_flight: float | None  # taken but not acknowledged; None where the protocol cannot tell
    delayed: float = 0.0  # not yet visible (SQS delay queues)
    publish_rate: float | None = None  # messages/s, where the source reports it
    deliver_rate: float | None = None


@dataclass(frozen=True)
class GpuReading:
    """Busy GPUs: the sum of GPU utilisation in GPU units (two GPUs at 50 % = 1.0)."""

    busy_gpus: float
    series: int  # series in the query's answer: 0 (nothing matched, read as 0 busy) or 1


@dataclass(frozen=True)
class ArrivalReading:
    """Requests per second into the workload (the user's arrivalQuery)."""

    rate: float


@dataclass(frozen=True)
class ColdStartReading:
    """The measured cold start of the workload's pods, in seconds (coldStartQuery)."""

    seconds: float


class Source(Protocol):
    """A readable signal source.

    `key` identifies what is read (endpoint + queue + credential identity): all
    triggers with the same key share one cached reading. `description` names the
    source for errors and logs, with no credentials in it.

    `read` is blocking, and the cache runs it in its read pool; or it is a
    coroutine (`async def read`), which the cache awaits on the event loop, for a
    client that runs there (the AMQP source: a thread waits for the GIL after every
    socket call while the event loop is busy). Sources that share a client that is
    not thread-safe (an AMQP connection) take their own turns on it.

    And an `endpoint` (str, host:port, no credentials): the server it reads. The
    cache lets one endpoint's reads hold at most a share of its read threads, so a
    server that fails slowly cannot starve the reads of the others.
    """

    @property
    def key(self) -> str: ...

    @property
    def description(self) -> str: ...

    def read(self) -> object:
        """Blocking read, or a coroutine function (see above). Raises SourceError (or
        any exception) on failure."""
        ...

    def close(self) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class SharedByKey(Generic[C]):
    """One resource per key (an AMQP connection, an SQS client), shared by the
    sources that use it and closed when the last of them lets go (the cache closes
    idle sources)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, tuple[C, set[int]]] = {}

    def acquire(self, key: str, user: object, make: Callable[[], C]) -> C:
        with self._lock:
            entry = self._shared.get(key)
            if entry is None:
                entry = self._shared[key] = (make(), set())
            entry[1].add(id(user))
            return entry[0]

    def release(self, key: str, user: object) -> None:
        with self._lock:
            entry = self._shared.get(key)
            if entry is None:
                return
            entry[1].discard(id(user))
            if entry[1]:
                return
            del self._shared[key]
        entry[0].close()

    def __contains__(self, key: str) -> bool:
        return key in self._shared

    def __len__(self) -> int:
        return len(self._shared)


# Hosts whose connection pools are kept at once, and the connections kept per host by
# default: as many as the reading cache lets read one endpoint at once (its endpoint
# limit, 64 read threads / 4; the server passes its own), so none is opened only to be
# dropped.
HTTP_POOL_HOSTS = 32
HTTP_POOL_PER_HOST = 16


class SharedHTTPPools(requests.adapters.HTTPAdapter):
    """One set of HTTP connection pools, one pool per host, for every HTTP source (the
    source factory keeps it; RabbitMQ's management API and Prometheus): a session per
    source kept a connection per queue or query, so a scaler reading a thousand
    queues held a thousand connections to the broker, which stopped answering
    (bench/bench_memory.py --via http), and Prometheus accepts 512 by default
    (--web.max-connections). Shared, a host gets at most `per_host` kept
    connections. Credentials go with each request (basic auth, a bearer header), so
    sharing connections across them shares no identity; TLS settings key the pools.
    No retries, as each source's own adapter had: the cache's TTL paces the next read.

    A session's close() leaves them open: every source closes its own session when
    the cache evicts it, and the others (and the same source, if its key comes back)
    still read through them. Their owner closes them with close_all()."""

    def __init__(self, per_host: int = HTTP_POOL_PER_HOST) -> None:
        super().__init__(pool_connections=HTTP_POOL_HOSTS, pool_maxsize=per_host, max_retries=0)

    def close(self) -> None:
        """A session closing: the pools are not its to close."""

    def close_all(self) -> None:
        """Close the pools' idle connections (the server's stop). Each pool is closed
        itself: urllib3 2's PoolManager.clear only forgets its pools, whose connections
        then close whenever the pools are garbage-collected."""
        container = self.poolmanager.pools
        for key in list(container.keys()):  # its keys(), as it has no iteration
            pool = container.get(key)
            if pool is not None:
                pool.close()
        super().close()


def mount_shared_pools(session: requests.Session, pools: SharedHTTPPools, *prefixes: str) -> None:
    """Send the session's requests to these URL prefixes through the shared pools."""
    for prefix in prefixes:
        session.mount(prefix, pools)
