"""The worker's shared documents: open rooms, the one batched writer, compaction, cooling rooms
nobody writes to here (their replica dropped, their state kept as bytes), and unloading rooms
nobody has used for a while."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc, merge_updates

from server.clips.model import Clip
from server.documents.actions import Action
from server.documents.export import framework_id, notes_of
from server.documents.frameworks import FrameworkLibrary, as_meta
from server.documents.lessons import Lesson, bindings
from server.documents.model import Annotation
from server.documents.rules import declare_roots
from server.errors import CocoachError, ServiceUnavailable
from server.metrics import LatencyHistogram
from server.once import Once
from server.session.context import Tasks
from server.session.document import RoomDocument
from server.settings import Settings
from server.sync.broker import Broker
from server.sync.doclog import DocLog
from server.sync.keys import awareness_channel
from server.sync.lease import Lease
from server.sync.store import RoomRecord

log = logging.getLogger(__name__)

NOTES_CACHED = 2_000  # rooms whose notes by lesson are kept (a few KiB each)
NotesByLesson = dict[str, list[tuple[str, tuple[str, ...]]]]

COMPACTION_LEASE_TTL = 30.0
NO_RELAY = "\x00no-relay"  # a write every client here has already (a re-seed)
# An update waiting for the log: its bytes, who sent it, when it arrived (perf_counter).
Pending = tuple[bytes, str | None, float]
FLUSH_ON_STOP_SECONDS = 3.0  # how long a stopping worker waits for its document writes
TAIL_CHECK_AFTER = 0.5  # seconds of quiet before a room's log tail is checked once


class Documents:
    def __init__(
        self,
        settings: Settings,
        tasks: Tasks,
        *,
        worker_id: str,
        broker: Broker,
        lease: Lease,
        doclog: DocLog,
        frameworks: FrameworkLibrary,
        fanout: LatencyHistogram,
        lesson_history: Callable[[RoomRecord], Awaitable[list[Lesson]]],
    ) -> None:
        """`lesson_history(room)`: the lessons the room has shown, for migrating old notes."""
        self._lesson_history = lesson_history
        self.tasks = tasks
        self.settings = settings
        self.doclog = doclog
        self.broker = broker
        self.lease = lease
        self.frameworks = frameworks
        # Unique per process: a restarted worker with the same id must not mistake the old
        # process's log entries for ones it has already applied.
        self.writer_id = f"{worker_id}/{secrets.token_hex(4)}"
        self.open_rooms: dict[str, RoomDocument] = {}
        # Each room's notes by lesson, as of the log's last entry: a cycle's progress reads
        # every session of it on each request, and most have not changed since the last one.
        self._notes: OrderedDict[str, tuple[str, NotesByLesson]] = OrderedDict()
        self._opening: Once[str, RoomDocument] = Once()  # two joiners load a room once
        self._consumers: dict[str, asyncio.Task[None]] = {}
        # Each write carries when its update arrived (perf_counter), for the fan-out metric.
        self._writes: asyncio.Queue[tuple[RoomDocument, bytes, str | None, float]] = asyncio.Queue(
            maxsize=self.settings.doc_write_queue
        )
        self._fanout = fanout
        self._aware_callbacks: dict[str, Any] = {}

    # ---- opening and closing ------------------------------------------------------------

    async def open(self, record: RoomRecord) -> RoomDocument:
        document = self.open_rooms.get(record.id)
        if document is not None:
            return document
        return await self._opening.run(record.id, lambda: self._load(record))

    async def read(self, room_id: str) -> Doc[Any]:
        """A copy of the room's document for readers (exports): from the replica if this worker
        holds one, else straight from the log, without loading the room."""
        document = self.open_rooms.get(room_id)
        if document is not None:
            return document.content.snapshot_doc()
        loaded = await self.doclog.load(room_id)
        doc: Doc[Any] = Doc()
        declare_roots(doc)
        for update in [loaded.snapshot, *(e.update for e in loaded.entries)]:
            if update is not None:
                doc.apply_update(update)
        return doc

    async def _load(self, record: RoomRecord) -> RoomDocument:
        document = RoomDocument(
            record.id,
            doclog=self.doclog,
            writer_id=self.writer_id,
            publish_awareness=self.publish_awareness,
        )
        await document.load()

        def on_awareness(data: bytes) -> None:
            writer, _, frame = data.partition(b"\n")
            if writer.decode() != self.writer_id:
                document.remote_awareness(frame)

        await self.broker.subscribe(awareness_channel(record.id), on_awareness)
        self._aware_callbacks[record.id] = on_awareness
        framework = None
        if record.framework is not None:
            try:
                framework = as_meta(self.frameworks.get(record.framework))
            except CocoachError as exc:
                log.warning("room %s: framework not loaded: %s", record.id, exc.message)
        first = Lesson(record.video, record.created) if record.video else None
        seeded, unbound = document.content.seed(record.title, framework, first)
        self.open_rooms[record.id] = document
        self._consumers[record.id] = self.tasks.start(document.consume(), f"doc {record.id}")
        if seeded is not None:
            await self.write(document, seeded, None)
        if unbound:
            await self._bind_old_notes(document, record, unbound)
        return document

    async def _bind_old_notes(
        self, document: RoomDocument, record: RoomRecord, unbound: list[tuple[str, float]]
    ) -> None:
        """A room from before notes carried their lesson: each note without one goes to the
        lesson the room showed when it was written, else to the room's first (migration,
        once per room: `meta.schema` records it)."""
        history = await self._lesson_history(record)
        bound = bindings(unbound, history)
        update = document.content.bind_notes(bound, history)
        if update is not None:
            await self.write(document, update, None)
        counts = Counter(bound.values())
        log.warning(
            "room %s: migrated %d of %d notes without a lesson to their lesson (%s)",
            record.id,
            len(bound),
            len(unbound),
            ", ".join(f"{video}: {n}" for video, n in sorted(counts.items())) or "no lesson known",
        )

    async def attach_lesson(self, record: RoomRecord, lesson: Lesson) -> None:
        """The room shows `lesson` from now on (meta.video), on every worker: a recording
        that finished, or a lesson an admin chose again."""
        document = await self.open(record)
        update = document.content.attach_lesson(lesson)
        if update is not None:
            await self.write(document, update, None)

    async def notes_by_lesson(self, room_id: str) -> NotesByLesson:
        """Each lesson's notes in the room, as (note id, tags), read once per change of the
        room's log (a room with an edit still on its way to the log is read afresh)."""
        document = self.open_rooms.get(room_id)
        version = None
        if document is None or document.pending_writes == 0:
            version = await self.doclog.last_id(room_id)
            cached = self._notes.get(room_id)
            if cached is not None and cached[0] == version:
                self._notes.move_to_end(room_id)
                return cached[1]
        annotations, _ = notes_of(await self.read(room_id), None)
        grouped: NotesByLesson = {}
        for note in annotations:
            if note.video is not None:
                grouped.setdefault(note.video, []).append((note.id, tuple(note.tags)))
        if version is not None:
            self._notes[room_id] = (version, grouped)
            while len(self._notes) > NOTES_CACHED:
                self._notes.popitem(last=False)
        return grouped

    async def framework_of(self, room_id: str) -> str | None:
        """The framework the room's page chose (meta.framework)."""
        return framework_id(await self.read(room_id))

    async def notes(self, room_id: str) -> list[Annotation]:
        """The room's valid notes, each with its lesson (a cycle's evidence, its page)."""
        annotations, _ = notes_of(await self.read(room_id), None)
        return annotations

    async def write_through(self, document: RoomDocument, update: bytes) -> None:
        """A server edit, waited for until it is in the log."""
        await self.write(document, update, None)
        try:
            async with asyncio.timeout(FLUSH_ON_STOP_SECONDS):
                await document.written.wait()
        except TimeoutError:
            raise ServiceUnavailable("the document store is not keeping up; try again") from None

    async def carry_actions(self, record: RoomRecord, actions: list[Action]) -> None:
        """A coaching cycle's action steps, into its new session's room (server/http/cycles.py)."""
        document = await self.open(record)
        update = document.content.carry_actions(actions)
        if update is not None:
            # In the log before the session is announced: any worker reads them from the start.
            await self.write_through(document, update)

    async def carry_notes(self, record: RoomRecord, clip: Clip) -> None:
        """A clip's carried notes, into a new room of the clip (server/http/clips.py), in the
        log before the room is handed out."""
        document = await self.open(record)
        update = document.content.carry_notes(list(clip.notes), clip.media)
        if update is not None:
            await self.write_through(document, update)

    async def actions(self, record: RoomRecord) -> list[Action]:
        """The room's action steps as they stand."""
        document = await self.open(record)
        return document.content.actions()

    async def unload(self, document: RoomDocument) -> None:
        """Drop an unused replica. Its writes are flushed first; a long log is compacted so the
        next load is quick."""
        await document.written.wait()
        if self.open_rooms.get(document.id) is not document or document.connections:
            return
        if document.log_length > self.settings.doc_compact_after // 4:
            await self.compact(document)
        del self.open_rooms[document.id]
        document.content.cool()  # detaches the replica's watch, or the replica would never be freed
        consumer = self._consumers.pop(document.id, None)
        if consumer is not None:
            consumer.cancel()
        await document.close()
        callback = self._aware_callbacks.pop(document.id, None)
        if callback is not None:
            await self.broker.unsubscribe(awareness_channel(document.id), callback)
        log.info("room %s: document unloaded", document.id)

    def stop(self) -> None:
        for consumer in self._consumers.values():
            consumer.cancel()

    async def tick(self, now: float) -> None:
        for document in list(self.open_rooms.values()):
            if not document.tail_checked and now - document.active_at > TAIL_CHECK_AFTER:
                document.check_tail(await self.doclog.last_id(document.id))
            idle = document.idle_since
            if idle is not None and now - idle > self.settings.doc_idle_seconds:
                await self.unload(document)
            elif (
                document.content.hot is not None
                and now - document.content.written_here_at > self.settings.doc_hot_seconds
            ):
                document.content.cool()

    async def set_meta(self, record: RoomRecord, key: str, value: str) -> None:
        document = await self.open(record)
        update = document.content.set_meta(key, value)
        if update is not None:
            await self.write(document, update, None)

    # ---- writing ------------------------------------------------------------------------

    async def write(
        self,
        document: RoomDocument,
        update: bytes,
        sender: str | None,
        *,
        relay: bool = True,
        received: float | None = None,
    ) -> None:
        """Queue an accepted update for the log; once it is there it is relayed to this worker's
        other clients, so no client ever holds an edit the log could lose with this worker.
        Waits when the writer is behind: the client's socket is then read more slowly, which is
        the back-pressure we want."""
        document.pending_writes += 1
        document.written.clear()
        arrived = time.perf_counter() if received is None else received
        await self._writes.put((document, update, sender if relay else NO_RELAY, arrived))

    async def run_writer(self) -> None:
        """The worker's one writer: batches what queued up meanwhile, one entry per room, all
        rooms in one request."""
        linger = self.settings.doc_write_linger_ms / 1000
        while True:
            batch = [await self._writes.get()]
            if linger > 0:
                # A moment for more to queue: one Redis call then carries several updates.
                await asyncio.sleep(linger)
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            by_room: dict[RoomDocument, list[Pending]] = defaultdict(list)
            for document, update, sender, arrived in batch:
                by_room[document].append((update, sender, arrived))
            await self._append(by_room)
            for _ in batch:
                self._writes.task_done()

    async def flush(self, seconds: float = FLUSH_ON_STOP_SECONDS) -> None:
        """Wait (a while) for queued writes to reach the log: used when the worker stops."""
        try:
            async with asyncio.timeout(seconds):
                await self._writes.join()
        except TimeoutError:
            log.warning("stopping with %d document writes not in the log", self._writes.qsize())

    async def _append(self, by_room: dict[RoomDocument, list[Pending]]) -> None:
        merged = {
            document: items[0][0] if len(items) == 1 else merge_updates(*(u for u, _, _ in items))
            for document, items in by_room.items()
        }
        delay, relayed = 0.05, False
        while True:
            try:
                await self.doclog.append_many(
                    self.writer_id, [(document.id, update) for document, update in merged.items()]
                )
                break
            except ServiceUnavailable as exc:
                # The log is away: serve the clients here anyway (they would otherwise stop
                # seeing each other's edits), and keep trying; the edits are in our replicas.
                log.warning("append of %d rooms failed (%s); retrying", len(merged), exc)
                if not relayed:
                    relayed = True
                    self._relay(by_room)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if not relayed:
            self._relay(by_room)
        for document, items in by_room.items():
            document.pending_writes -= len(items)
            if document.pending_writes == 0:
                document.written.set()
            # (Each entry is counted in log_length when its announcement comes back to us.)
            # Within +-25 % of the setting, drawn per room: rooms busy since the same moment
            # would otherwise all compact at once and stall this worker together.
            limit = self.settings.doc_compact_after * document.compact_jitter
            if document.log_length > limit and not document.compacting:
                self.tasks.spawn(self.compact(document), f"compact {document.id}")

    def _relay(self, by_room: dict[RoomDocument, list[Pending]]) -> None:
        for document, items in by_room.items():
            for update, sender, arrived in items:
                if sender != NO_RELAY:
                    document.relay(update, exclude=sender)
                    if sender is not None:  # a client's update (not a seed or a re-seed)
                        self._fanout.observe(time.perf_counter() - arrived)

    async def compact(self, document: RoomDocument) -> None:
        """Fold the log into a snapshot; one worker at a time per room (a lease)."""
        if document.compacting:
            return
        lease_name = f"{document.id}/compactor"
        document.compacting = True
        try:
            if not await self.lease.acquire(lease_name, self.writer_id, COMPACTION_LEASE_TTL):
                return
            try:
                started = time.perf_counter()
                snapshot, upto = document.content.committed(), document.last
                document.log_length = await self.doclog.compact(document.id, snapshot, upto)
                log.info(
                    "room %s: compacted through %s (%d bytes) in %.1f ms",
                    document.id,
                    upto,
                    len(snapshot),
                    1000 * (time.perf_counter() - started),
                )
            finally:
                await self.lease.release(lease_name, self.writer_id)
        finally:
            document.compacting = False

    async def reseed(self) -> None:
        """Append each open replica's whole state: after a store restart that lost the log,
        the replicas give it back (merging is idempotent, so nothing appears twice)."""
        for document in list(self.open_rooms.values()):
            await self.write(document, document.content.committed(), None, relay=False)

    def publish_awareness(self, room: str, frame: bytes) -> None:
        self.tasks.spawn(
            self.broker.publish(awareness_channel(room), self.writer_id.encode() + b"\n" + frame),
            f"awareness {room}",
        )
