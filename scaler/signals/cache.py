"""Shared, coalesced readings: a TTL cache with single flight.

Every trigger reading the same source key shares one reading per TTL, and
concurrent callers for a key wait on one read instead of starting their own.
Reads run in a thread pool (the client libraries block) with a bounded timeout,
so one slow source never delays answers for others. Failures are cached for the
same TTL, so a down source answers fast instead of being hammered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from scaler.clock import Clock
from scaler.signals.base import Source, SourceError

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


ReadObserver = Callable[[Source, float, "SourceError | None"], None]


class ReadingCache:
    def __init__(
        self,
        clock: Clock,
        *,
        ttl: float = 2.0,
        timeout: float = 5.0,
        max_workers: int = 64,
        idle_evict_after: float = 600.0,
        on_read: ReadObserver | None = None,
    ) -> None:
        self._clock = clock
        self.ttl = ttl
        self.timeout = timeout
        self._entries: dict[str, _Entry] = {}
        self._sources: dict[str, Source] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="source-read"
        )
        self._idle_evict_after = idle_evict_after
        self._on_read = on_read
        self.reads = 0  # total source reads started (for tests and the benchmark)

    async def get(self, source: Source) -> Reading[object]:
        """The source's reading, at most `ttl` old. Raises SourceError."""
        now = self._clock.monotonic()
        key = source.key
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            self._sources[key] = source
        # Read through the first source object seen for this key, so its client
        # (connection, session) is reused instead of rebuilt per call.
        source = self._sources[key]
        entry.last_used = now
        if entry.pending is None and now - entry.finished_at >= self.ttl:
            entry.pending = asyncio.ensure_future(self._read(source, entry))
        if entry.pending is not None:
            # shield: one caller giving up must not cancel the read others wait on
            await asyncio.shield(entry.pending)
        if entry.error is not None:
            # A copy per caller: re-raising the one cached instance would chain every
            # caller's frames onto its traceback for as long as it stays cached.
            raise copy.copy(entry.error)
        assert entry.reading is not None
        return entry.reading

    def get_sync(self, source: Source) -> Reading[object]:
        """get() without the event loop and the thread pool: the read runs in the
        caller's thread, with no timeout. For drivers whose sources are in memory
        and never block (the simulator); same key sharing, TTL and error caching.
        Raises SourceError."""
        now = self._clock.monotonic()
        key = source.key
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            self._sources[key] = source
        source = self._sources[key]
        entry.last_used = now
        if now - entry.finished_at >= self.ttl:
            self.reads += 1
            try:
                entry.reading = Reading(source.read(), now)
                entry.error = None
            except SourceError as exc:
                entry.error = exc
            entry.finished_at = self._clock.monotonic()
        if entry.error is not None:
            raise copy.copy(entry.error)
        assert entry.reading is not None
        return entry.reading

    async def _read(self, source: Source, entry: _Entry) -> None:
        """Read once and store the outcome in the entry; never raises."""
        loop = asyncio.get_running_loop()
        started = self._clock.monotonic()
        self.reads += 1
        error: SourceError | None = None
        try:
            if entry.thread is not None and not entry.thread.done():
                raise SourceError(
                    f"{source.description}: the previous read has still not returned "
                    f"(no answer within {self.timeout:g}s)"
                )
            entry.thread = self._executor.submit(source.read)
            value = await asyncio.wait_for(asyncio.wrap_future(entry.thread, loop=loop), self.timeout)
            entry.reading = Reading(value, self._clock.monotonic())
            entry.error = None
        except TimeoutError:
            error = SourceError(f"{source.description}: no answer within {self.timeout:g}s")
        except SourceError as exc:
            error = exc
        except Exception as exc:  # a client library failure we did not map
            log.debug("unmapped error reading %s", source.description, exc_info=True)
            error = SourceError(f"{source.description}: {type(exc).__name__}")
        finally:
            entry.finished_at = self._clock.monotonic()
            entry.pending = None
        if error is not None:
            entry.error = error
        if self._on_read is not None:
            self._on_read(source, entry.finished_at - started, error)

    async def evict_idle(self) -> int:
        """Drop sources nobody asked for in a while, closing their clients in the
        pool (an AMQP close talks to the broker: never on the event loop)."""
        now = self._clock.monotonic()
        stale = [
            k
            for k, e in self._entries.items()
            if e.pending is None and now - e.last_used > self._idle_evict_after
        ]
        loop = asyncio.get_running_loop()
        closing = []
        for key in stale:
            del self._entries[key]
            closing.append(loop.run_in_executor(self._executor, self._close, self._sources.pop(key)))
        await asyncio.gather(*closing)
        return len(stale)

    def source(self, key: str) -> Source | None:
        """The source object reads go through for a key (None once evicted)."""
        return self._sources.get(key)

    def close(self) -> None:
        """Close every source and stop the pool. Blocking: call it off the event
        loop (the server does) or when nothing else runs on it (explain)."""
        for source in self._sources.values():
            self._close(source)
        self._sources.clear()
        self._entries.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _close(source: Source) -> None:
        try:
            source.close()
        except Exception:
            log.debug("closing %s failed", source.description, exc_info=True)
