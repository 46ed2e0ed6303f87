"""Lease: which worker is a room's home (DESIGN §1). Held for `ttl` seconds, renewed by its
holder; a lapsed lease goes to the next worker that asks.

A home takes its lease with `take`, which also hands out a fencing token: a number larger than
any given before for that room. Every write the home makes for its room goes through a `Fence`
(server/sync/fence.py) with that token, and is refused once another worker has taken the lease
since, so a home cut off from Redis cannot overwrite its successor's work when it comes back."""

from __future__ import annotations

import time
from typing import Protocol


class Lease(Protocol):
    async def acquire(self, room: str, worker: str, ttl: float) -> bool:
        """True when `worker` now holds the lease (it was free, lapsed, or already ours)."""

    async def take(self, room: str, worker: str, ttl: float) -> int:
        """Acquire with a fencing token: a new one at every success, larger than any before
        for `room`, even if `worker` held the lease already; 0 when another worker holds it."""

    async def renew(self, room: str, worker: str, ttl: float) -> bool:
        """True when `worker` still held the lease and it now lasts `ttl` more seconds."""

    async def release(self, room: str, worker: str) -> None:
        """Give the lease up, if `worker` holds it."""

    async def holder(self, room: str) -> str | None: ...


class MemoryLease:
    """Embedded mode. Same contract, expiry included, so one contract suite covers both."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, int] = {}

    def _current(self, room: str) -> str | None:
        held = self._held.get(room)
        if held is None:
            return None
        if held[1] <= time.monotonic():
            del self._held[room]
            return None
        return held[0]

    def holds(self, room: str, worker: str, token: int) -> bool:
        """Whether `worker` holds the lease under `token` (the embedded fence's check)."""
        return self._current(room) == worker and self._tokens.get(room) == token

    async def acquire(self, room: str, worker: str, ttl: float) -> bool:
        current = self._current(room)
        if current not in (None, worker):
            return False
        self._held[room] = (worker, time.monotonic() + ttl)
        return True

    async def take(self, room: str, worker: str, ttl: float) -> int:
        if not await self.acquire(room, worker, ttl):
            return 0
        token = self._tokens[room] = self._tokens.get(room, 0) + 1
        return token

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
