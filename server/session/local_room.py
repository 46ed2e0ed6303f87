"""A room as one worker sees it: the members connected here, the room's home, and delivery of
what the home publishes to the connections here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import assert_never

import msgspec

from server.codec import encode
from server.errors import ServiceUnavailable
from server.rooms.member import Member
from server.session.connection import Connection
from server.session.context import WorkerContext
from server.sync.keys import home_channel, out_channel
from server.worker_wire import (
    Deliver,
    ForwardAnnounce,
    ForwardJoin,
    ForwardMessage,
    ForwardResync,
    HomeChanged,
    HomeLeaving,
    Resend,
    ToHome,
    WorkerLost,
    decode_outbound,
)

log = logging.getLogger(__name__)

MAX_HELD_INTENTS = 1000
REJOIN_AFTER = 1.0  # seconds without a welcome before a join is sent again


class LocalRoom:
    def __init__(self, context: WorkerContext, room_id: str) -> None:
        self.context = context
        self.id = room_id
        self.lock = asyncio.Lock()  # orders attach, detach and home changes
        self.pending = 0  # attaches waiting on the lock: the room must not be dropped under them
        self.subscribed = False
        self.home: str | None = None
        self.connections: dict[str, Connection] = {}
        self.members: dict[str, Member] = {}
        self._joined_at: dict[str, str] = {}  # member id -> the home its join was sent to
        self._join_sent: dict[str, float] = {}  # member id -> when its join was last sent
        # Intents sent while the room has no known home, flushed to the next one.
        self._held: deque[ForwardMessage] = deque()
        # Numbering, to notice lost pub/sub messages both ways (docs/operations.md).
        self._out_seq = 0
        self._forwarded_at = 0.0
        self._home_seq: int | None = None

    @property
    def empty(self) -> bool:
        return not self.connections and self.pending == 0

    async def subscribe(self) -> None:
        if not self.subscribed:
            await self.context.broker.subscribe(out_channel(self.id), self.on_outbound)
            self.subscribed = True

    async def unsubscribe(self) -> None:
        if self.subscribed:
            self.subscribed = False
            await self.context.broker.unsubscribe(out_channel(self.id), self.on_outbound)

    def add(self, connection: Connection, member: Member) -> None:
        self.connections[member.id] = connection
        self.members[member.id] = member

    def remove(self, member_id: str) -> None:
        self.connections.pop(member_id, None)
        self.members.pop(member_id, None)
        self._joined_at.pop(member_id, None)
        self._join_sent.pop(member_id, None)

    def update(self, member: Member) -> None:
        if member.id in self.members:
            self.members[member.id] = member

    async def join(self, member: Member) -> None:
        home = self.home
        if home is not None:
            self._joined_at[member.id] = home
        self._join_sent[member.id] = time.monotonic()
        await self.forward(ForwardJoin(member))

    async def forward(self, message: ForwardMessage) -> None:
        """Send a participant's intent to the room's home, wherever it is."""
        home = self.home
        if home is None:
            if len(self._held) >= MAX_HELD_INTENTS:
                log.warning("room %s: no home for too long, oldest held intent dropped", self.id)
                self._held.popleft()
            self._held.append(message)
            return
        if home == self.context.id and self.context.submit_home(self.id, message):
            return
        await self._send_to_home(message)

    async def _send_to_home(self, message: ForwardMessage | None) -> None:
        if message is not None:
            self._out_seq += 1
            self._forwarded_at = time.monotonic()
        envelope = ToHome(self.context.id, self._out_seq, message)
        try:
            await self.context.broker.publish(home_channel(self.id), encode(envelope))
        except ServiceUnavailable as exc:
            log.warning("room %s: intent to home %s lost: %s", self.id, self.home, exc)

    async def tick(self, now: float) -> None:
        """While active, tell a remote home our last number, so a lost last intent shows."""
        home = self.home
        if home is not None and home != self.context.id and now - self._forwarded_at < 2.0:
            await self._send_to_home(None)
        # A join or its welcome can be lost in transit too; joins are idempotent, so ask again.
        for member_id, sent in list(self._join_sent.items()):
            connection = self.connections.get(member_id)
            if connection is None or connection.welcomed:
                self._join_sent.pop(member_id, None)
            elif home is not None and now - sent > REJOIN_AFTER:
                await self.join(self.members[member_id])

    # ---- what the home publishes ---------------------------------------------------------

    def on_outbound(self, data: bytes) -> None:
        try:
            envelope = decode_outbound(data)
        except msgspec.DecodeError as exc:
            log.error("room %s: undecodable frame from a home: %s", self.id, exc)
            return
        message = envelope.message
        if isinstance(message, HomeChanged):
            self._home_seq = envelope.seq
        elif envelope.home == self.home and envelope.home != self.context.id:
            self._check_sequence(envelope.seq, tick=message is None)
        match message:
            case None:
                pass
            case Deliver():
                if message.origin != self.context.id:  # our own home delivered here directly
                    self.deliver(message)
            case HomeChanged(worker=worker):
                self.home = worker
                self.context.spawn(self.announce(worker), f"announce {self.id}")
            case WorkerLost(worker=worker) | Resend(worker=worker):
                if worker == self.context.id:
                    self.context.spawn(self.announce(self.home), f"announce {self.id}")
            case HomeLeaving(worker=worker):
                if self.home == worker:
                    self.home = None
                    self.context.spawn(self.context.rehome(self.id), f"rehome {self.id}")
            case _:
                assert_never(message)

    def _check_sequence(self, seq: int, *, tick: bool) -> None:
        # A frame carries the next number; a tick repeats the last one used.
        last = self._home_seq
        if last is None or seq > last:
            self._home_seq = seq
        if last is not None and seq > (last if tick else last + 1):
            log.warning("room %s: frames from home %s lost, resyncing", self.id, self.home)
            self.context.spawn(self.forward(ForwardResync(self.context.id)), f"resync {self.id}")

    def deliver(self, message: Deliver) -> None:
        if message.to is not None:
            connection = self.connections.get(message.to)
            if connection is not None:
                if message.welcome:
                    connection.welcomed = True
                connection.deliver(message.frame)
            return
        for member_id, connection in self.connections.items():
            if member_id != message.exclude:
                connection.deliver(message.frame)

    async def announce(self, home: str | None) -> None:
        """Tell a (new) home who is connected here, so it can rebuild the membership.

        A member whose join already went to this home counts as announced: the join is queued
        there, and leaving it out would make the home remove the member before welcoming it.
        """
        if home is None:
            return
        async with self.lock:
            known = [
                member
                for member_id, member in self.members.items()
                if self.connections[member_id].welcomed or self._joined_at.get(member_id) == home
            ]
            await self.forward(ForwardAnnounce(self.context.id, known))
            for member_id, member in self.members.items():
                if (
                    not self.connections[member_id].welcomed
                    and self._joined_at.get(member_id) != home
                ):
                    self._joined_at[member_id] = home
                    await self.forward(ForwardJoin(member))
            while self._held and self.home is not None:
                await self.forward(self._held.popleft())
