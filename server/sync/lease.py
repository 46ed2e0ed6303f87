"""Lease: which worker is a room's home (DESIGN §1). Held for `ttl` seconds, renewed by its
holder; a lapsed lease goes to the next worker that asks."""

from __future__ import annotations

import time
from typing import Protocol


class Lease(Protocol):
    async def acquire(self, room: str, worker: str, ttl: float) -> bool:
        """True when `worker` now holds the lease (it was free, lapsed, or already ours)."""

    async def renew(self, room: str, worker: str, ttl: float) -> bool:
        """True when `worker` still held the lease and it now lasts `ttl` more seconds."""

    async def release(self, room: str, worker: str) -> None:
        """Give the lease up, if `worker` holds it."""

    async def holder(self, room: str) -> str | None: ...


class MemoryLease:
    """Embedded mode. Same contract, expiry included, so one contract suite covers both."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    def _current(self, room: str) -> str | None:
        held = self._held.get(room)
        if held is None:
            return None
        if held[1] <= time.monotonic():
            del self._held[room]
            return None
        return held[0]

    async def acquire(self, room: str, worker: str, ttl: float) -> bool:
        current = self._current(room)
        if current not in (None, worker):
            return False
        self._held[room] = (worker, time.monotonic() + ttl)
        return True

    async def renew(self, room: str, worker: str, ttl: float) -> bool:
        if self._current(room) != worker:
            return False
        self._held[room] = (worker, time.monotonic() + ttl)
        return True

    async def release(self, room: str, worker: str) -> None:
        if self._current(room) == worker:
            del self._held[room]

    async def holder(self, room: str) -> str | None:
        return self._current(room)
