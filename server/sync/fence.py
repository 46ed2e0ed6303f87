"""Fence: the writes a room's home makes for its room, each refused (`StaleHome`) unless the
home still holds the room's lease under the fencing token it took it with (server/sync/lease.py).

A home cut off from Redis stops acting before its lease can lapse, but what it had already sent
may still be in flight and arrive after another worker took over. The check and the write are
one step on Redis's side (a Lua call), so no such late write lands."""

from __future__ import annotations

from typing import Protocol

from server.errors import StaleHome
from server.sync.broker import Broker
from server.sync.lease import MemoryLease
from server.sync.store import Store


class Fence(Protocol):
    async def save_room_state(self, room: str, worker: str, token: int, data: bytes) -> None:
        """Persist the room's state (what `Store.load_room_state` gives the next home)."""

    async def publish(
        self, room: str, worker: str, token: int, channel: str, message: bytes
    ) -> None: ...

    async def append_talk(self, room: str, worker: str, token: int, data: bytes) -> bool:
        """`Store.append_talk`, as the room's home: False when the talk record is full."""


class MemoryFence:
    """Embedded mode: one worker, so the check and the write cannot be overtaken; the contract
    is still the same, so one suite covers both."""

    def __init__(self, lease: MemoryLease, store: Store, broker: Broker) -> None:
        self._lease = lease
        self._store = store
        self._broker = broker

    def _check(self, room: str, worker: str, token: int) -> None:
        if not self._lease.holds(room, worker, token):
            raise StaleHome(f"room {room!r}: worker {worker} no longer holds the lease")

    async def save_room_state(self, room: str, worker: str, token: int, data: bytes) -> None:
        self._check(room, worker, token)
        await self._store.save_room_state(room, data)

    async def publish(
        self, room: str, worker: str, token: int, channel: str, message: bytes
    ) -> None:
        self._check(room, worker, token)
        await self._broker.publish(channel, message)

    async def append_talk(self, room: str, worker: str, token: int, data: bytes) -> bool:
        self._check(room, worker, token)
        return await self._store.append_talk(room, data)
