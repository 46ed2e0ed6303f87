"""A room's shared document as one worker holds it (DESIGN §1): a pycrdt replica, the
connections editing it here, and the order of the room's document log.

A client's update is judged on a candidate replica first (server/documents/rules.py); one that
may stand is applied, relayed to the other clients here, and handed to the worker's batched
writer. Entries other workers append arrive from the log's announcements, in log order; a gap
(an announcement whose `prev` is not the last entry we hold) is filled from the log itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, get_update

from server import yjs_wire
from server.documents.rules import ChangeWatch, declare_roots, judge
from server.errors import ClientError, ServiceUnavailable
from server.rooms.roles import Permission
from server.session.connection import Connection
from server.sync.doclog import NO_ENTRY, DocEntry, id_key

if TYPE_CHECKING:
    from server.session.documents import Documents

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 2.0  # at most this long to apply the log's tail before serving a client
# What pycrdt raises for bytes that are not an update it can apply: ValueError when they do not
# decode, RuntimeError when they decode but do not fit (found by tests/test_fuzz.py).
BAD_UPDATE = (ValueError, RuntimeError)


class RoomDocument:
    def __init__(self, documents: Documents, room_id: str) -> None:
        self.documents = documents
        self.id = room_id
        self.doc: Doc[Any] = Doc()
        _, self.timeline, self.meta = declare_roots(self.doc)
        self.candidate: Doc[Any] = Doc()
        self.watch = ChangeWatch(self.candidate)
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
        # Yjs clients that sent a refused change: they keep it, so their later changes would
        # leave a gap that Yjs clients hold back and pycrdt does not. Refusing those too keeps
        # every other client in agreement until that client starts a new document.
        self.tainted: set[int] = set()

    # ---- loading ------------------------------------------------------------------------

    async def load(self) -> None:
        # Subscribe first: an entry appended while we read the log is then queued, not lost.
        await self.documents.doclog.subscribe(self.id, self._inbox.put_nowait)
        loaded = await self.documents.doclog.load(self.id)
        if loaded.snapshot is not None:
            self.doc.apply_update(loaded.snapshot)
        for entry in loaded.entries:
            self.doc.apply_update(entry.update)
        self._rebuild_candidate()
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
                return await self.documents.doclog.read_after(self.id, after)
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
        tail = await self.documents.doclog.last_id(self.id)
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
        if entry.worker == self.documents.writer_id:
            return  # our own: applied when our client sent it
        try:
            self._apply_both(entry.update)
        except BAD_UPDATE as exc:
            # Only judged updates reach the log, so this is a damaged entry: skip it rather
            # than stop applying everything after it.
            log.error("room %s: log entry %s does not apply: %s", self.id, entry.id, exc)
            return
        self._relay(yjs_wire.sync_update(entry.update), exclude=None)

    def _apply_both(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self.candidate.apply_update(update)

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
                self.documents.publish_awareness(self.id, message)
        if not self.connections:
            self.idle_since = time.monotonic()

    def sync_step2_for(self, state_vector: bytes) -> bytes:
        return yjs_wire.sync_step2(self.doc.get_update(state_vector))

    def apply_client_update(
        self, update: bytes, user: str, permissions: frozenset[Permission]
    ) -> tuple[str | None, bool]:
        """Judge and apply one client's update: (why it was refused, whether it must be stored).
        An accepted update is relayed once it is in the log (Documents.run_writer)."""
        if self.tainted and self._carries(update, self.tainted):
            return (
                "this client's document holds a change the room refused: start a new document"
                " (reload) to go on",
                False,
            )
        before = self.candidate.get_state()
        self.watch.reset()
        try:
            self.candidate.apply_update(update)
        except BAD_UPDATE as exc:
            self._rebuild_candidate()
            return f"not a Yjs update: {exc}", False
        touched = self.watch.plan_touched or self.watch.meta_keys or self.watch.notes
        if not touched and self.candidate.get_state() == before:
            return None, False  # nothing new (a reconnecting client's echo): nothing to store
        writer = Permission.EDIT in permissions or Permission.ANNOTATE in permissions
        problem = judge(self.watch, self.timeline, user, permissions)
        if problem is None and not writer:
            problem = "your role may read the document, not change it"
        if problem is not None:
            self._taint(update, before)
            self._rebuild_candidate()
            return problem, False
        self.doc.apply_update(update)
        self.touched()
        return None, True

    def _taint(self, update: bytes, before: bytes) -> None:
        # The clients whose changes were refused: the update's author, and any client whose
        # clock the refused update moved.
        known = yjs_wire.decode_state_vector(before)
        grown = yjs_wire.decode_state_vector(self.candidate.get_state())
        self.tainted |= {c for c, clock in grown.items() if clock > known.get(c, 0)}
        author = yjs_wire.first_client(update)
        if author is not None:
            self.tainted.add(author)

    @staticmethod
    def _carries(update: bytes, clients: set[int]) -> bool:
        """Whether `update` holds structs of any of `clients`: removing what a client could
        ever have written changes it exactly then."""
        whole = get_update(update, yjs_wire.EMPTY_STATE)
        return any(get_update(update, yjs_wire.covering(c)) != whole for c in clients)

    def relay(self, update: bytes, exclude: str | None) -> None:
        self._relay(yjs_wire.sync_update(update), exclude=exclude)

    def _rebuild_candidate(self) -> None:
        """Make the candidate a copy of the replica (after loading, or after it took an update
        we refused). The watch is attached after the copy: its observers need not see it."""
        self.candidate = Doc()
        self.candidate.apply_update(self.doc.get_update())
        self.watch = ChangeWatch(self.candidate)

    def seed(
        self, title: str, framework: dict[str, Any] | None, video: str | None = None
    ) -> bytes | None:
        """Fill in the room's details once, as map keys: concurrent seeding by two workers
        resolves to one value and never duplicates content."""
        meta = self.meta
        if (
            "title" in meta
            and ("framework" in meta or framework is None)
            and ("video" in meta or video is None)
        ):
            return None
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        with self.doc.transaction():
            if "title" not in meta:
                meta["title"] = title
            if framework is not None and "framework" not in meta:
                meta["framework"] = framework
            if video is not None and "video" not in meta:
                meta["video"] = video
        self.doc.unobserve(subscription)
        for update in updates:
            self.candidate.apply_update(update)
        return updates[0] if updates else None

    def set_meta(self, key: str, value: str) -> bytes | None:
        """A server-side edit of one `meta` key (a finished live recording becomes the room's
        video): an ordinary CRDT update, stored and relayed like a client's."""
        if self.meta.get(key) == value:
            return None
        updates: list[bytes] = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        self.meta[key] = value
        self.doc.unobserve(subscription)
        for update in updates:
            self.candidate.apply_update(update)
        return updates[0] if updates else None

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
        self.documents.publish_awareness(self.id, frame)

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

    # ---- reading ------------------------------------------------------------------------

    def snapshot_doc(self) -> Doc[Any]:
        """A copy for readers (exports) that must not see later edits mid-read."""
        copy: Doc[Any] = Doc()
        declare_roots(copy)
        copy.apply_update(self.doc.get_update())
        return copy
