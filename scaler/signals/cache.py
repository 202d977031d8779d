"""Shared, coalesced readings: a TTL cache with single flight.

Every trigger reading the same source key shares one reading per TTL, and
concurrent callers for a key wait on one read instead of starting their own.
Reads run in a thread pool (the client libraries block), or on the event loop for a
source whose client runs there (AMQP), with a bounded timeout, so one slow source
never delays answers for others. Failures are cached for the
same TTL, so a down source answers fast instead of being hammered.

Two refinements keep callers off the read's path without reading more often:

- stale while refreshing (`stale_grace`): a reading past its TTL, but by less
  than the grace, is still answered while the one refresh it started is in
  flight. A key is still read at most once per TTL (a refresh starts only once
  the TTL has run out); a caller waits only when the reading is older than TTL
  + grace (a slow or hung refresh), and never for an error past its TTL.
- `newer_than`: a caller that must not answer twice from the same reading (a
  stream waiting to wake from zero) asks for a reading taken after the one it
  last used, and a polled answer (GetMetrics, IsActive) for one taken within the
  last half-second; concurrent callers still share one read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scaler.clock import Clock
from scaler.signals.base import Source, SourceError, without_frames
from scaler.signals.errors import unexpected

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Reading(Generic[T]):
    """A value read from a source and the (monotonic) time it was read."""

    value: T
    read_at: float

    def age(self, now: float) -> float:
        return max(0.0, now - self.read_at)


@dataclass
class _Entry:
    reading: Reading[object] | None = None
    error: SourceError | None = None
    finished_at: float = float("-inf")
    pending: asyncio.Future[None] | None = None
    last_used: float = 0.0
    # The pool thread of the last read. It can outlive the read's timeout (a
    # client stuck past its own timeouts); no new thread starts for the key
    # until it returns, so a hung source holds at most one thread.
    thread: concurrent.futures.Future[object] | None = None
    # Since when (monotonic) reads have been failing; None while they succeed. The
    # change either way is logged once, not every failed read.
    failing_since: float | None = None


def _outcome(entry: _Entry) -> Reading[object] | SourceError | None:
    """The entry's outcome: its reading, or a copy of its error (a copy per caller:
    the cached instance would collect every caller's frames on its traceback)."""
    if entry.error is not None:
        return copy.copy(entry.error)
    return entry.reading


def _older(entry: _Entry, newer_than: float | None) -> bool:
    """Whether the entry holds a reading taken at or before `newer_than` (a
    cached error is answered as it is: it is retried once its TTL runs out)."""
    return (
        newer_than is not None
        and entry.error is None
        and (entry.reading is None or entry.reading.read_at <= newer_than)
    )


@dataclass
class _Endpoint:
    """The read threads now running against one endpoint (see Source.endpoint), and
    an event set (and replaced) each time one of them returns."""

    running: int = 0
    freed: asyncio.Event | None = None


def _reads_on_the_loop(source: Source) -> bool:
    """Whether the source's read is a coroutine, awaited on the event loop (its client
    runs there), rather than a blocking call for the read pool."""
    return inspect.iscoroutinefunction(source.read)


ReadObserver = Callable[[Source, float, "SourceError | None"], None]

# The share of the read pool one endpoint's reads may hold at once (see _wait_endpoint).
ENDPOINT_SHARE = 4


# How long a reading is shared before the next caller reads the source again: the
# server's default (--cache-ttl), which the simulator's Prewarm runs with too.
DEFAULT_TTL = 2.0
# A polled answer (GetMetrics at an HPA sync, IsActive at a KEDA poll) is made from a
# queue reading at most this old, as KEDA's own queue scalers read the queue at each
# call: the shared reading (up to the cache's TTL old) put a scale-up off by one sync
# where it was taken a second before the sync (docs/decisions.md, "Polled answers read
# the queue afresh"). The slack lets the objects on one queue whose calls come within
# it share a read. The stream's ticks use the cache's TTL.
POLLED_READING_AGE = 0.5


class ReadingCache:
    def __init__(
        self,
        clock: Clock,
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = 5.0,
        max_workers: int = 64,
        idle_evict_after: float = 600.0,
        on_read: ReadObserver | None = None,
        stale_grace: float = 0.0,
    ) -> None:
        self._clock = clock
        self.ttl = ttl
        self.stale_grace = stale_grace
        self.timeout = timeout
        self._entries: dict[str, _Entry] = {}
        self._sources: dict[str, Source] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="source-read"
        )
        self._max_workers = max_workers
        # Pool threads still inside a client past their read's deadline (see _submit).
        self._stuck = 0
        self._stuck_lock = threading.Lock()
        self._idle_evict_after = idle_evict_after
        self._on_read = on_read
        self._endpoints: dict[str, _Endpoint] = {}
        self.endpoint_limit = max(1, max_workers // ENDPOINT_SHARE)
        self.reads = 0  # total source reads started (for tests and the benchmark)

    def _entry(self, source: Source, now: float) -> tuple[_Entry, Source]:
        """The key's entry (made on first use) and the source object reads go
        through: the first one seen for the key, so its client (connection,
        session) is reused instead of rebuilt per call."""
        key = source.key
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            self._sources[key] = source
        entry.last_used = now
        return entry, self._sources[key]

    async def get(self, source: Source, newer_than: float | None = None) -> Reading[object]:
        """The source's reading, at most `ttl` old (`ttl + stale_grace` while its
        refresh is in flight), and read after `newer_than` (a Reading.read_at) when
        given. Raises SourceError."""
        now = self._clock.monotonic()
        entry, source = self._entry(source, now)
        age = now - entry.finished_at
        if entry.pending is None and (age >= self.ttl or _older(entry, newer_than)):
            entry.pending = asyncio.ensure_future(self._read(source, entry))
        if entry.pending is not None and not self._usable(entry, age, newer_than):
            # shield: one caller giving up must not cancel the read others wait on
            await asyncio.shield(entry.pending)
        if entry.error is not None:
            # A copy per caller: re-raising the one cached instance would chain every
            # caller's frames onto its traceback for as long as it stays cached.
            raise copy.copy(entry.error)
        assert entry.reading is not None
        return entry.reading

    def _usable(self, entry: _Entry, age: float, newer_than: float | None) -> bool:
        """Whether the entry's outcome answers a caller now, while a read is
        pending: within the TTL, or a reading within the stale grace; and taken
        after `newer_than` when given."""
        if _older(entry, newer_than):
            return False
        if age < self.ttl:
            return True
        return entry.error is None and entry.reading is not None and age < self.ttl + self.stale_grace

    def fresh(self, source: Source) -> Reading[object] | SourceError | None:
        """The cached outcome while it is within the TTL (a reading, or a copy of
        the error), else None: get() would return or raise the same. The hot path
        answers from it without scheduling a task."""
        entry = self._entries.get(source.key)
        if entry is None:
            return None
        now = self._clock.monotonic()
        if now - entry.finished_at >= self.ttl:
            return None
        entry.last_used = now
        return _outcome(entry)

    def last(self, source: Source) -> Reading[object] | SourceError | None:
        """The source's last outcome however old (a reading, or a copy of the error);
        None until its first read has finished. For a caller that answers from it
        while a refresh runs (the engine's optional reads)."""
        entry = self._entries.get(source.key)
        return None if entry is None else _outcome(entry)

    def get_sync(self, source: Source, newer_than: float | None = None) -> Reading[object]:
        """get() without the event loop and the thread pool: the read runs in the
        caller's thread, with no timeout. For drivers whose sources are in memory
        and never block (the simulator); same key sharing, TTL, `newer_than` and
        error caching. Raises SourceError."""
        if _reads_on_the_loop(source):
            raise TypeError(f"{source.description} reads on an event loop: use get()")
        now = self._clock.monotonic()
        entry, source = self._entry(source, now)
        if now - entry.finished_at >= self.ttl or _older(entry, newer_than):
            self.reads += 1
            try:
                entry.reading = Reading(source.read(), now)
                entry.error = None
            except SourceError as exc:
                entry.error = exc
            entry.finished_at = self._clock.monotonic()
            self._log_change(source, entry, entry.error)
        if entry.error is not None:
            raise copy.copy(entry.error)
        assert entry.reading is not None
        return entry.reading

    async def _read(self, source: Source, entry: _Entry) -> None:
        """Read once and store the outcome in the entry; never raises."""
        loop = asyncio.get_running_loop()
        started = self._clock.monotonic()
        # The sources bound their own reads by the timeout and say why they failed
        # (which host, what to check); this backstop, up to half a second later, only catches a
        # client stuck past its own timeouts.
        deadline = loop.time() + self.timeout + min(0.5, self.timeout / 2)
        self.reads += 1
        error: SourceError | None = None
        try:
            if _reads_on_the_loop(source):
                # A client driven by the event loop itself (an AMQP connection): no
                # thread and no turn here (the source takes its own turns); the
                # deadline cancels it.
                read: Awaitable[object] = source.read()  # type: ignore[assignment]
                async with asyncio.timeout_at(deadline):  # in this task: no task of its own
                    value = await read
            else:
                value = await self._read_in_thread(source, entry, deadline)
            entry.reading = Reading(value, self._clock.monotonic())
            entry.error = None
        except TimeoutError:
            error = SourceError(f"{source.description}: no answer within {self.timeout:g}s")
            if entry.thread is not None:
                self._count_stuck(entry.thread)
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a client library failure we did not map
            log.debug("unmapped error reading %s", source.description, exc_info=True)
            error = SourceError(f"{source.description}: {unexpected(exc)}")
        finally:
            entry.finished_at = self._clock.monotonic()
            entry.pending = None
        if error is not None:
            # Kept for its message only: its traceback holds this frame, which holds
            # the entry, which holds the error.
            entry.error = without_frames(error)
        self._log_change(source, entry, error)
        if self._on_read is not None:
            self._on_read(source, entry.finished_at - started, error)

    async def _read_in_thread(self, source: Source, entry: _Entry, deadline: float) -> object:
        """A blocking read in the pool: at most one thread per key, and a share of the
        pool per endpoint (the waiting on the loop)."""
        loop = asyncio.get_running_loop()
        if entry.thread is not None and not entry.thread.done():
            raise SourceError(
                f"{source.description}: the previous read has still not returned "
                f"(no answer within {self.timeout:g}s)"
            )
        endpoint = getattr(source, "endpoint", None)
        if endpoint is not None:
            await self._wait_endpoint(source, endpoint, deadline)
        entry.thread = self._submit(source.read)
        if endpoint is not None:
            self._hold_endpoint(endpoint, entry.thread, loop)
        remaining = max(deadline - loop.time(), 0.0)
        return await asyncio.wait_for(asyncio.wrap_future(entry.thread, loop=loop), remaining)

    def _submit(self, read: Callable[[], object]) -> concurrent.futures.Future[object]:
        """Run `read` in the pool, or, while half the pool is stuck in clients past
        their deadlines, in a thread of its own. Each key holds at most one thread,
        but distinct keys behind one tarpitting endpoint could take every pool
        thread, and a healthy source's read would then wait in the pool's queue
        until its own deadline and fail, blamed on it."""
        if self._stuck < self._max_workers // 2:
            return self._executor.submit(read)
        future: concurrent.futures.Future[object] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(read())
            except BaseException as exc:  # handed to the waiting read, as the pool does
                future.set_exception(exc)

        threading.Thread(target=run, name="source-read-overflow", daemon=True).start()
        return future

    def _count_stuck(self, thread: concurrent.futures.Future[object]) -> None:
        """Count `thread` as stuck until it returns (its read timed out)."""
        with self._stuck_lock:
            if thread.done():
                return
            self._stuck += 1

        def returned(_: object) -> None:
            with self._stuck_lock:
                self._stuck -= 1

        thread.add_done_callback(returned)

    async def _wait_endpoint(self, source: Source, endpoint: str, deadline: float) -> None:
        """Wait, on the event loop, until fewer than `endpoint_limit` reads run against
        the source's endpoint, and count this one.

        A source that fails slowly (an unreachable or overloaded server, each read
        ending at the client's own timeout) holds a pool thread for most of every
        TTL; its distinct keys (one per query or queue) could hold every thread, and
        a healthy source's read would wait in the pool's queue until its deadline,
        blamed on itself. One endpoint holds at most a quarter of the pool; its
        reads past that wait here, costing no thread, and fail at their deadline."""
        loop = asyncio.get_running_loop()
        while (state := self._endpoints.setdefault(endpoint, _Endpoint())).running >= self.endpoint_limit:
            if state.freed is None:
                state.freed = asyncio.Event()
            try:
                await asyncio.wait_for(state.freed.wait(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise SourceError(
                    f"{source.description}: no answer within {self.timeout:g}s "
                    f"({state.running} reads of the same server still running)"
                ) from None
        state.running += 1

    def _hold_endpoint(
        self, endpoint: str, thread: concurrent.futures.Future[object], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Count the endpoint's read as running until its thread returns."""

        def finished(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed first (shutdown)
                loop.call_soon_threadsafe(self._release_endpoint, endpoint)

        thread.add_done_callback(finished)

    def _release_endpoint(self, endpoint: str) -> None:
        state = self._endpoints.get(endpoint)
        if state is None:
            return
        state.running -= 1
        if state.freed is not None:
            state.freed.set()  # every waiter checks again; the first takes the place
            state.freed = None
        if state.running <= 0:
            del self._endpoints[endpoint]

    def _log_change(self, source: Source, entry: _Entry, error: SourceError | None) -> None:
        """Log when a source starts failing and when it recovers: once each, so a
        down source does not log every read. Messages name the source without
        credentials (SourceError's contract)."""
        now = self._clock.monotonic()
        if error is not None and entry.failing_since is None:
            entry.failing_since = now
            log.warning("source failing: %s", error, extra={"source": source.description})
        elif error is None and entry.failing_since is not None:
            failed_for = now - entry.failing_since
            entry.failing_since = None
            log.info(
                "source recovered: %s (failed for %.0fs)",
                source.description,
                failed_for,
                extra={"source": source.description, "failed_for_s": round(failed_for, 1)},
            )

    async def evict_idle(self) -> int:
        """Drop sources nobody asked for in a while, closing their clients in the
        pool (an HTTP session's close may block: never on the event loop; an AMQP
        connection hands its close back to its loop).

        A source whose last read is still in its client (a server dripping bytes
        keeps a read alive past every timeout) is left for a later pass: its close
        would wait for the read's lock. The closes are awaited at most a timeout, so
        one that hangs anyway cannot stop the housekeeping that calls this."""
        now = self._clock.monotonic()
        stale = [
            k
            for k, e in self._entries.items()
            if e.pending is None
            and (e.thread is None or e.thread.done())
            and now - e.last_used > self._idle_evict_after
        ]
        loop = asyncio.get_running_loop()
        closing = []
        for key in stale:
            del self._entries[key]
            closing.append(loop.run_in_executor(self._executor, self._close, self._sources.pop(key)))
        if closing:
            _, hung = await asyncio.wait(closing, timeout=self.timeout)
            if hung:
                log.warning("%d evicted source(s) still closing after %gs", len(hung), self.timeout)
        return len(stale)

    def source(self, key: str) -> Source | None:
        """The source object reads go through for a key (None once evicted)."""
        return self._sources.get(key)

    def close(self, timeout: float | None = None) -> bool:
        """Close every source and stop the pool, waiting at most `timeout` seconds
        (None: until done). Blocking: call it off the event loop (the server does)
        or when nothing else runs on it (explain).

        Returns False when a close or a read is still stuck in a client library
        after the wait (a frozen connection): its thread cannot be interrupted, and
        the caller decides whether to wait for it (the server exits without)."""
        pending: list[concurrent.futures.Future[Any]] = [
            e.thread for e in self._entries.values() if e.thread is not None
        ]
        pending += [self._executor.submit(self._close, source) for source in self._sources.values()]
        _, not_done = concurrent.futures.wait(pending, timeout=timeout)
        self._sources.clear()
        self._entries.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        return not not_done

    @staticmethod
    def _close(source: Source) -> None:
        try:
            source.close()
        except Exception:
            log.debug("closing %s failed", source.description, exc_info=True)
