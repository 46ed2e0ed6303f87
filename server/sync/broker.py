"""Broker: publish/subscribe between workers. Callbacks are plain functions that must not block:
they decode and hand the message to a bounded queue; the one subscriber per worker fans out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

Callback = Callable[[bytes], None]
M = TypeVar("M")


class Broker(Protocol):
    @property
    def reconnects(self) -> int:
        """Times the connection to the broker was lost and re-established (for /metrics)."""

    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """Returns once messages published from now on will reach `callback`."""

    async def unsubscribe(self, channel: str, callback: Callback) -> None: ...

    async def ping(self) -> None:
        """Raises ServiceUnavailable when the broker cannot be reached."""


class Fanout(Generic[M]):
    """The channel -> callbacks table the brokers and logs share."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[M], None]]] = {}

    def add(self, channel: str, callback: Callable[[M], None]) -> bool:
        """Add; True when this is the channel's first callback (the broker must subscribe)."""
        callbacks = self._callbacks.setdefault(channel, [])
        callbacks.append(callback)
        return len(callbacks) == 1

    def remove(self, channel: str, callback: Callable[[M], None]) -> bool:
        """Remove; True when the channel has no callbacks left (the broker may unsubscribe)."""
        callbacks = self._callbacks.get(channel)
        if not callbacks or callback not in callbacks:
            return False
        callbacks.remove(callback)
        if callbacks:
            return False
        del self._callbacks[channel]
        return True

    def channels(self) -> list[str]:
        return list(self._callbacks)

    def dispatch(self, channel: str, message: M) -> None:
        for callback in tuple(self._callbacks.get(channel, ())):
            try:
                callback(message)
            except Exception:
                # One room's bad message must not stop the worker's one subscriber, which
                # every room on the worker depends on.
                log.exception("a %s subscriber failed", channel)


class MemoryBroker:
    """Embedded mode: one process, so publish is a function call."""

    def __init__(self) -> None:
        self._fanout: Fanout[bytes] = Fanout()
        self.reconnects = 0  # nothing to lose in one process

    async def publish(self, channel: str, message: bytes) -> None:
        self._fanout.dispatch(channel, message)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        self._fanout.add(channel, callback)

    async def unsubscribe(self, channel: str, callback: Callback) -> None:
        self._fanout.remove(channel, callback)

    async def ping(self) -> None:
        return None
