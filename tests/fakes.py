"""Fakes of the seams the worker hands its parts (`MediaHost`, `WorkerContext`), so a room's
media and its home are built and tested without a worker. Each records what was asked of it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.media.host import Recording
from server.media.room_media import RoomMedia
from server.settings import Settings
from server.sync.audit import Actor, AuditAction, DetailValue
from server.sync.broker import MemoryBroker
from server.sync.fence import MemoryFence
from server.sync.lease import MemoryLease
from server.sync.store import RoomRecord
from server.worker_wire import Deliver, ForwardMessage


@dataclass
class Audited:
    action: AuditAction
    actor: Actor
    room: str | None
    video: str | None
    detail: dict[str, DetailValue]


@dataclass
class FakeAudit:
    events: list[Audited] = field(default_factory=list)

    def record(
        self,
        action: AuditAction,
        actor: Actor,
        *,
        room: str | None = None,
        video: str | None = None,
        remote: str | None = None,
        **detail: DetailValue,
    ) -> None:
        self.events.append(Audited(action, actor, room, video, detail))

    def actions(self) -> list[str]:
        return [event.action for event in self.events]


@dataclass
class FakeRecordings:
    directory: Path
    begun: list[tuple[str, str, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)

    async def begin(self, room: str, owner: str, title: str) -> Recording:
        self.begun.append((room, owner, title))
        video = f"v{len(self.begun):012x}"
        return Recording(video, self.directory / f"{video}.webm")

    async def finish(self, video: str) -> str | None:
        self.finished.append(video)
        return video


class Spawner:
    """Owns the tasks a fake spawns, and ends them when the test is done."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []
        self.names: list[str] = []

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.names.append(name)
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        self.spawn(coro, name)
        return self.tasks[-1]

    async def settle(self) -> None:
        """Let every spawned step finish (they are short in these tests)."""
        while pending := [t for t in self.tasks if not t.done()]:
            await asyncio.wait(pending, timeout=5)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class FakeMediaHost(Spawner):
    def __init__(self, settings: Settings, recordings: FakeRecordings, viewers: int = 0) -> None:
        super().__init__()
        self._settings = settings
        self.fake_audit = FakeAudit()
        self._recordings = recordings
        self.viewers = viewers

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def audit(self) -> FakeAudit:
        return self.fake_audit

    @property
    def recordings(self) -> FakeRecordings:
        return self._recordings

    def viewer_count(self) -> int:
        return self.viewers


class FakeStore:
    """The part of a Store a room's home uses: its saved state. Records the order of saves."""

    def __init__(self, log: list[str]) -> None:
        self.states: dict[str, bytes] = {}
        self.log = log

    async def load_room_state(self, room_id: str) -> bytes | None:
        return self.states.get(room_id)

    async def save_room_state(self, room_id: str, data: bytes) -> None:
        self.log.append("persist")
        self.states[room_id] = data


class FakeContext(Spawner):
    """A `WorkerContext`: one worker, `w1`, whose peers are alive while in `alive_workers`."""

    def __init__(self, settings: Settings, records: dict[str, RoomRecord]) -> None:
        super().__init__()
        self._settings = settings
        self.log: list[str] = []
        self.fake_store = FakeStore(self.log)
        self._broker = MemoryBroker()
        self._lease = MemoryLease()
        self._fence = MemoryFence(self._lease, self.fake_store, self._broker)  # type: ignore[arg-type]
        self.records = records
        self.alive_workers = {"w1"}
        self.delivered: list[Deliver] = []
        self.submitted: list[tuple[str, ForwardMessage]] = []
        self.rehomed: list[str] = []

    @property
    def id(self) -> str:
        return "w1"

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def broker(self) -> MemoryBroker:
        return self._broker

    @property
    def store(self) -> Any:  # only the room-state part of a Store (FakeStore)
        return self.fake_store

    @property
    def lease(self) -> MemoryLease:
        return self._lease

    @property
    def fence(self) -> MemoryFence:
        return self._fence

    def alive(self, worker: str) -> bool:
        return worker in self.alive_workers

    async def room_record(self, room_id: str) -> RoomRecord:
        return self.records[room_id]

    async def home_of(self, record: RoomRecord) -> str | None:
        return self.id

    def deliver_here(self, room_id: str, envelope: Deliver) -> None:
        self.log.append("deliver")
        self.delivered.append(envelope)

    def submit_home(self, room_id: str, message: ForwardMessage) -> bool:
        self.submitted.append((room_id, message))
        return True

    def home_media(self, room_id: str) -> RoomMedia | None:
        return None

    async def rehome(self, room_id: str) -> None:
        self.rehomed.append(room_id)
