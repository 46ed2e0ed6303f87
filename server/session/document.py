"""A room's shared document as one worker holds it (DESIGN §1): its state, the connections
editing it here, and the order of the room's document log.

The state is kept two ways. *Cold*, it is encoded bytes (`state`, plus the updates committed
since in `tail`): a room being watched but not written to here costs a tenth of a replica's
memory, and other workers' entries are relayed without being applied to anything. *Hot*, after a
write here, there is also one pycrdt replica (`hot`) with a `ChangeWatch`: a client's update is
applied to it and judged (server/documents/rules.py); a refused one is rolled back by rebuilding
the replica from the bytes, which still hold exactly what was committed. A room nobody here
wrote to for `doc_hot_seconds` goes cold again.

Entries other workers append arrive from the log's announcements, in log order; a gap (an
announcement whose `prev` is not the last entry we hold) is filled from the log itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map, get_state, get_update, merge_updates

from server import yjs_wire
from server.documents.rules import ChangeWatch, NoteFacts, declare_roots, judge, note_facts
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
EMPTY_UPDATE = Doc().get_update()
# A cold room's tail is folded into `state` past about this many updates, or this many bytes
# (or half the state's size): merging costs about the state's size, so folding in proportion
# keeps it cheap. A hot room serves from its replica and needs the tail only to roll back, so it
# folds 8x less often. Each fold point is drawn within +-25 %: rooms that started together would
# otherwise all fold in the same moment (bench.fanout saw 100 rooms stall the worker 100-250 ms).
FOLD_ENTRIES = 256
FOLD_BYTES = 64 * 1024
HOT_FOLD_FACTOR = 8


class RoomDocument:
    def __init__(self, documents: Documents, room_id: str) -> None:
        self.documents = documents
        self.id = room_id
        self.state = EMPTY_UPDATE
        self.tail: list[bytes] = []
        self._tail_bytes = 0
        self._fold_scale = random.uniform(0.75, 1.25)
        self.fold_jitter = random.uniform(0.75, 1.25)  # where this room's log is compacted
        self._state_vector: bytes | None = None  # of `state`, once asked for
        self.hot: Doc[Any] | None = None
        self.watch: ChangeWatch | None = None
        # Facts of notes as committed, learnt while hot: a later change to one is judged without
        # reading what it was from a second replica.
        self.facts: dict[str, NoteFacts | None] = {}
        self.written_here_at = 0.0  # monotonic time of the last write through this worker
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
        self.state = EMPTY_UPDATE if loaded.snapshot is None else loaded.snapshot
        for entry in loaded.entries:
            self._commit(entry.update)
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
            return  # our own: committed when our client sent it
        if self.hot is not None and self.watch is not None:
            self.watch.reset()
            try:
                self.hot.apply_update(entry.update)
            except BAD_UPDATE as exc:
                # Only judged updates reach the log, so this is a damaged entry: skip it rather
                # than stop applying everything after it.
                log.error("room %s: log entry %s does not apply: %s", self.id, entry.id, exc)
                self._rebuild()
                return
            for note in self.watch.notes:
                self.facts.pop(note, None)  # learnt again from the replica when next needed
        self._commit(entry.update)
        self._relay(yjs_wire.sync_update(entry.update), exclude=None)

    # ---- the state: bytes, and the replica while hot ------------------------------------

    def _commit(self, update: bytes) -> None:
        """`update` is now part of the room's committed state."""
        self.tail.append(update)
        self._tail_bytes += len(update)
        scale = self._fold_scale * (HOT_FOLD_FACTOR if self.hot is not None else 1)
        if len(self.tail) >= FOLD_ENTRIES * scale or self._tail_bytes >= scale * max(
            FOLD_BYTES, len(self.state) // 2
        ):
            self._fold()

    def _fold(self) -> None:
        # Always from the bytes, never from the replica: it may also hold structs a client sent
        # that wait for others (pending in Yrs), which nobody has judged yet.
        if not self.tail:
            return
        try:
            self.state = merge_updates(self.state, *self.tail)
        except BAD_UPDATE:
            self.state = self._merge_one_by_one()
        self.tail.clear()
        self._tail_bytes = 0
        self._state_vector = None
        self._fold_scale = random.uniform(0.75, 1.25)

    def _merge_one_by_one(self) -> bytes:
        state = self.state
        for update in self.tail:
            try:
                state = merge_updates(state, update)
            except BAD_UPDATE as exc:
                log.error("room %s: a stored update does not merge, skipped: %s", self.id, exc)
        return state

    def committed(self) -> bytes:
        """The room's whole committed state as one update (compaction, exports, re-seeding)."""
        self._fold()
        return self.state

    def state_vector(self) -> bytes:
        if self.hot is not None:
            return self.hot.get_state()
        self._fold()
        if self._state_vector is None:
            self._state_vector = get_state(self.state)
        return self._state_vector

    def _replica(self) -> Doc[Any]:
        """A new replica of the committed state, its roots declared."""
        doc: Doc[Any] = Doc()
        declare_roots(doc)
        try:
            doc.apply_update(self.state)
        except BAD_UPDATE as exc:
            log.error("room %s: the stored state does not apply: %s", self.id, exc)
        for update in self.tail:
            try:
                doc.apply_update(update)
            except BAD_UPDATE as exc:
                log.error("room %s: a stored update does not apply, skipped: %s", self.id, exc)
        return doc

    def _heat(self) -> Doc[Any]:
        if self.hot is None:
            self._rebuild()
        assert self.hot is not None
        return self.hot

    def _rebuild(self, replica: Doc[Any] | None = None) -> None:
        """(Re)make the replica from the committed bytes: when the room gets hot, and to roll
        back an update we refused. The watch is attached after the state is in: its observers
        need not see it."""
        if self.watch is not None:
            self.watch.close()
        self.hot = self._replica() if replica is None else replica
        self.watch = ChangeWatch(self.hot)
        self.facts.clear()

    def cool(self) -> None:
        """Drop the replica, keeping the state as bytes (nobody wrote here for a while)."""
        if self.hot is None:
            return
        self._fold()
        if self.watch is not None:
            self.watch.close()
        self.hot = None
        self.watch = None
        self.facts.clear()

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
        if self.hot is not None:
            return yjs_wire.sync_step2(self.hot.get_update(state_vector))
        return yjs_wire.sync_step2(get_update(self.committed(), state_vector))

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
        if self.hot is None:
            try:
                if get_update(update, self.state_vector()) == EMPTY_UPDATE:
                    return None, False  # nothing we lack (a joiner's sync step 2): stay cold
            except BAD_UPDATE as exc:
                return f"not a Yjs update: {exc}", False
        self.written_here_at = time.monotonic()
        doc = self._heat()
        watch = self.watch
        assert watch is not None
        before = doc.get_state()
        watch.reset()
        try:
            doc.apply_update(update)
        except BAD_UPDATE as exc:
            self._rebuild()
            return f"not a Yjs update: {exc}", False
        touched = watch.plan_touched or watch.meta_keys or watch.notes
        if not touched and doc.get_state() == before:
            return None, False  # nothing new (a reconnecting client's echo): nothing to store
        writer = Permission.EDIT in permissions or Permission.ANNOTATE in permissions
        prior = _Prior(self)
        verdict = judge(watch, prior.facts_of, user, permissions)
        problem = verdict.problem
        if problem is None and not writer:
            problem = "your role may read the document, not change it"
        if problem is not None:
            self._taint(update, before)
            self._rebuild(prior.replica)
            return problem, False
        self.facts.update(verdict.after)
        self._commit(update)
        self.touched()
        return None, True

    def _taint(self, update: bytes, before: bytes) -> None:
        # The clients whose changes were refused: the update's author, and any client whose
        # clock the refused update moved.
        assert self.hot is not None
        known = yjs_wire.decode_state_vector(before)
        grown = yjs_wire.decode_state_vector(self.hot.get_state())
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

    def seed(
        self, title: str, framework: dict[str, Any] | None, video: str | None = None
    ) -> bytes | None:
        """Fill in the room's details once, as map keys: concurrent seeding by two workers
        resolves to one value and never duplicates content."""

        def fill(meta: Map[Any]) -> None:
            if "title" not in meta:
                meta["title"] = title
            if framework is not None and "framework" not in meta:
                meta["framework"] = framework
            if video is not None and "video" not in meta:
                meta["video"] = video

        return self._server_edit(fill)

    def set_meta(self, key: str, value: str) -> bytes | None:
        """A server-side edit of one `meta` key (a finished live recording becomes the room's
        video): an ordinary CRDT update, stored and relayed like a client's."""

        def change(meta: Map[Any]) -> None:
            if meta.get(key) != value:
                meta[key] = value

        return self._server_edit(change)

    def _server_edit(self, edit: Callable[[Map[Any]], None]) -> bytes | None:
        """Make an edit of `meta` on the replica and commit it; the update, or None if the edit
        changed nothing."""
        was_cold = self.hot is None
        doc = self._heat()
        updates: list[bytes] = []
        subscription = doc.observe(lambda event: updates.append(event.update))
        try:
            with doc.transaction():
                edit(doc.get("meta", type=Map))
        finally:
            doc.unobserve(subscription)
        if not updates or updates[0] == EMPTY_UPDATE:
            if was_cold:
                self.cool()  # a room opened to be read need not hold a replica
            return None
        self.written_here_at = time.monotonic()
        for update in updates:
            self._commit(update)
        return updates[0]

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
        return self._replica()


class _Prior:
    """What touched notes were before the update being judged: the facts learnt while hot, else
    read from a replica of the committed bytes, made at most once per judgement (and, if the
    update is refused, kept as the rolled-back replica)."""

    def __init__(self, document: RoomDocument) -> None:
        self.document = document
        self.replica: Doc[Any] | None = None

    def facts_of(self, note: str) -> NoteFacts | None:
        facts = self.document.facts
        if note in facts:
            return facts[note]
        if self.replica is None:
            self.replica = self.document._replica()
        found = note_facts(self.replica.get("timeline", type=Map), note)
        facts[note] = found
        return found
