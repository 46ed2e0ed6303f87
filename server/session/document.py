"""A room's shared document as one worker holds it (DESIGN §1): its content (DocState: bytes,
and a replica while clients write here), the connections editing it here, and the order of the
room's document log.

Entries other workers append arrive from the log's announcements, in log order; a gap (an
announcement whose `prev` is not the last entry we hold) is filled from the log itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from server import yjs_wire
from server.errors import ClientError, ServiceUnavailable
from server.rooms.roles import Permission
from server.session.connection import Connection
from server.session.doc_state import DocState
from server.sync.doclog import NO_ENTRY, DocEntry, DocLog, id_key

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 2.0  # at most this long to apply the log's tail before serving a client


class RoomDocument:
    def __init__(
        self,
        room_id: str,
        *,
        doclog: DocLog,
        writer_id: str,
        publish_awareness: Callable[[str, bytes], None],
    ) -> None:
        self.id = room_id
        self.doclog = doclog
        self.writer_id = writer_id  # this process's writer: its own entries are not applied twice
        self._publish_awareness = publish_awareness
        self.content = DocState(room_id)
        self.compact_jitter = random.uniform(0.75, 1.25)  # scales doc_compact_after for this room
        self.last = NO_ENTRY
        self.log_length = 0
        self.connections: dict[str, Connection] = {}
        self.awareness: dict[int, tuple[int, str]] = {}  # client id -> (clock, state JSON)
        self._aware_of: dict[str, set[int]] = {}  # connection -> the awareness ids it set
        self._inbox: asyncio.Queue[DocEntry] = asyncio.Queue()
        self.pending_writes = 0
        self.written = asyncio.Event()
        self.written.set()
        self.idle_since: float | None = None
        self.compacting = False
        # When the room last changed, and whether the log's tail was checked since: a lost
        # announcement of the *last* entry is revealed by no later `prev`, only by a look.
        self.active_at = time.monotonic()
        self.tail_checked = True
        self._advanced = asyncio.Event()

    # ---- loading ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop hearing the log's announcements (the room is unloaded here)."""
        await self.doclog.unsubscribe(self.id, self._inbox.put_nowait)

    async def load(self) -> None:
        # Subscribe first: an entry appended while we read the log is then queued, not lost.
        await self.doclog.subscribe(self.id, self._inbox.put_nowait)
        loaded = await self.doclog.load(self.id)
        if loaded.snapshot is not None:
            self.content.encoded = loaded.snapshot
        for entry in loaded.entries:
            self.content.commit(entry.update)
        self.last = loaded.last
        self.log_length = len(loaded.entries)

    async def consume(self) -> None:
        """Apply other workers' entries in log order, until cancelled."""
        while True:
            entry = await self._inbox.get()
            if id_key(entry.id) <= id_key(self.last):
                continue
            if entry.prev != self.last:
                log.warning("room %s: gap after %s, reading the log", self.id, self.last)
                for missed in await self._read_after(self.last):
                    self._take(missed)
                continue
            self._take(entry)

    async def _read_after(self, after: str) -> list[DocEntry]:
        delay = 0.05
        while True:
            try:
                return await self.doclog.read_after(self.id, after)
            except ServiceUnavailable as exc:
                log.warning("room %s: cannot read the log (%s); retrying", self.id, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 2.0)

    def check_tail(self, last: str) -> None:
        """The log ends at `last`: if we are behind, catch up (through the consumer, so entries
        are still taken one at a time in log order)."""
        self.tail_checked = True
        if id_key(last) > id_key(self.last):
            self._inbox.put_nowait(DocEntry(worker="", prev="?", id=last, update=b""))

    async def catch_up(self) -> None:
        """Apply every entry the log holds now: a reconnecting client's catch-up must be judged
        against everything others wrote, not against a replica that is a moment behind."""
        tail = await self.doclog.last_id(self.id)
        if id_key(tail) <= id_key(self.last):
            return
        self.check_tail(tail)
        async with asyncio.timeout(CATCH_UP_SECONDS):
            while id_key(self.last) < id_key(tail):
                self._advanced.clear()
                await self._advanced.wait()

    def touched(self) -> None:
        self.active_at = time.monotonic()
        self.tail_checked = False

    def _take(self, entry: DocEntry) -> None:
        if id_key(entry.id) <= id_key(self.last):
            return
        self.touched()
        self.last = entry.id
        self.log_length += 1
        self._advanced.set()
        if entry.worker == self.writer_id:
            return  # our own: committed when our client sent it
        if self.content.take_remote(entry.update, entry.id):
            self._relay(yjs_wire.sync_update(entry.update), exclude=None)

    # ---- clients ------------------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        self.connections[connection.member_id] = connection
        self.idle_since = None

    def remove(self, connection: Connection) -> None:
        self.connections.pop(connection.member_id, None)
        gone = self._aware_of.pop(connection.member_id, set())
        if gone:
            states = [(c, self.awareness[c][0] + 1, "null") for c in gone if c in self.awareness]
            for client in gone:
                self.awareness.pop(client, None)
            if states:
                message = yjs_wire.awareness(states)
                self._relay(message, exclude=None)
                self._publish_awareness(self.id, message)
        if not self.connections:
            self.idle_since = time.monotonic()

    def apply_client_update(
        self, update: bytes, user: str, permissions: frozenset[Permission]
    ) -> tuple[str | None, bool]:
        """Judge and apply one client's update: (why it was refused, whether it must be stored).
        An accepted update is relayed once it is in the log (Documents.run_writer)."""
        problem, store = self.content.apply_client_update(update, user, permissions)
        if store:
            self.touched()
        return problem, store

    def relay(self, update: bytes, exclude: str | None) -> None:
        self._relay(yjs_wire.sync_update(update), exclude=exclude)

    # ---- awareness ----------------------------------------------------------------------

    def local_awareness(self, sender: str, message: yjs_wire.AwarenessUpdate) -> None:
        mine = self._aware_of.setdefault(sender, set())
        for client, clock, state in message.states:
            self._remember(client, clock, state)
            if state == "null":
                mine.discard(client)
            else:
                mine.add(client)
        frame = bytes([yjs_wire.MessageType.AWARENESS]) + yjs_wire.var_bytes(message.payload)
        # Back to the sender too, as the stock y-websocket server does: a client alone in a
        # room hears nothing else, and y-websocket reconnects after 30 s of silence; its own
        # awareness, renewed every 15 s, keeps it connected.
        self._relay(frame, exclude=None)
        self._publish_awareness(self.id, frame)

    def remote_awareness(self, frame: bytes) -> None:
        try:
            message = yjs_wire.decode(frame)
        except ClientError as exc:
            log.error("room %s: undecodable awareness from another worker: %s", self.id, exc)
            return
        if isinstance(message, yjs_wire.AwarenessUpdate):
            for client, clock, state in message.states:
                self._remember(client, clock, state)
            self._relay(frame, exclude=None)

    def _remember(self, client: int, clock: int, state: str) -> None:
        if state == "null":
            self.awareness.pop(client, None)
        else:
            self.awareness[client] = (clock, state)

    def awareness_frame(self) -> bytes | None:
        if not self.awareness:
            return None
        return yjs_wire.awareness([(c, clock, s) for c, (clock, s) in self.awareness.items()])

    def _relay(self, frame: bytes, exclude: str | None) -> None:
        for key, connection in self.connections.items():
            if key != exclude:
                connection.deliver(frame)
