"""What a room's shells (its home, the local room, signaling) ask of the worker they run on.

They are handed a `WorkerContext`, not the `Worker`: the operations below are all they use, so
each can be built and tested with a fake, and none of them imports `worker.py`. The worker
itself (placement, liveness, drain) is the one implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from server.media.room_media import RoomMedia
from server.settings import Settings
from server.sync.broker import Broker
from server.sync.fence import Fence
from server.sync.lease import Lease
from server.sync.store import RoomRecord, Store
from server.worker_wire import Deliver, ForwardMessage


class Tasks(Protocol):
    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background step owned by the worker; its failure is logged, not fatal."""

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Like spawn, for a long-lived step whose owner will cancel it."""


class WorkerContext(Tasks, Protocol):
    @property
    def id(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def store(self) -> Store: ...

    @property
    def lease(self) -> Lease: ...

    @property
    def fence(self) -> Fence: ...

    def alive(self, worker: str) -> bool:
        """Whether `worker` is heard from (a home declares the others' members gone)."""

    async def room_record(self, room_id: str) -> RoomRecord: ...

    async def home_of(self, record: RoomRecord) -> str | None:
        """The room's home worker for a request that is not a member's, perhaps this one."""

    def deliver_here(self, room_id: str, envelope: Deliver) -> None:
        """Hand what the room's home (here) sends to this worker's own connections."""

    def submit_home(self, room_id: str, message: ForwardMessage) -> bool:
        """Give an intent straight to the room's home if it is this worker; False if not."""

    def home_media(self, room_id: str) -> RoomMedia | None:
        """The room's media if this worker is its home."""

    async def rehome(self, room_id: str) -> None:
        """Find the room's next home (perhaps this worker) when the last one is gone."""
