"""The worker: one process's rooms, homes and heartbeats, owned by one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import msgspec
from pycrdt import Map

from server import logs
from server.audit import AuditRecorder
from server.clips.directory import Clips
from server.clips.library import TrustLibrary
from server.codec import encode
from server.cycles.directory import Cycles
from server.documents.frameworks import BUILTIN_DIR, FrameworkLibrary
from server.documents.lessons import Lesson, read_lessons
from server.edge.origin import parse_origins
from server.errors import CloseCode, Conflict, RoomNotFound, ServiceUnavailable
from server.library.library import VideoLibrary
from server.media.ice import offer_host_addresses
from server.media.mixes import Mixes
from server.media.room_media import RoomMedia
from server.messages import Reconnect
from server.metrics import Metrics, WorkerCounts, registry_for
from server.orgs import Orgs
from server.people.directory import People
from server.people.oidc import Providers
from server.rooms.member import Member
from server.session import talk_record
from server.session.connection import Connection
from server.session.documents import Documents
from server.session.home import CUT_OFF, RoomHome
from server.session.lessons import Lessons
from server.session.liveness import Liveness
from server.session.local_room import LocalRoom
from server.session.media_host import LibraryRecordings, WorkerMediaHost
from server.session.signaling import MediaRouter
from server.settings import Settings
from server.sync.backend import Backend
from server.sync.keys import ROOM_CUT_CHANNEL, WORKERS_CHANNEL, home_channel, media_channel
from server.sync.store import RoomRecord
from server.worker_wire import (
    Deliver,
    ForwardLeave,
    ForwardMessage,
    Heartbeat,
    decode_heartbeat,
)

log = logging.getLogger(__name__)

# After it sees the store restarted, a worker takes no room for this many ticks: time for
# every worker to notice too (at its next tick) and give back the rooms' states it kept.
RESEED_TICKS = 3


class Worker:
    def __init__(self, settings: Settings, backend: Backend) -> None:
        self.settings = settings
        self.id = settings.worker_id or f"w-{secrets.token_hex(4)}"
        self.broker = backend.broker
        self.store = backend.store
        self.lease = backend.lease
        self.fence = backend.fence
        self.backend = backend
        self.liveness = Liveness(self.id, settings.worker_timeout, solo=backend.kind == "embedded")
        self.rooms: dict[str, LocalRoom] = {}
        self.homes: dict[str, RoomHome] = {}
        self._records: dict[str, RoomRecord] = {}
        self.orgs = Orgs.parse(settings.orgs, settings.default_org)
        self._group: asyncio.TaskGroup | None = None
        self._store_epoch: str | None = None
        # The states of rooms whose home here was cut off from the store, as last saved: given
        # back if the store comes back without them (a Redis restart without AOF).
        self._orphans: dict[str, bytes] = {}
        self._reseeded_at: float | None = None  # when this worker last saw the store restart
        self._home_tasks: dict[str, asyncio.Task[None]] = {}
        self._media_requests: dict[str, Callable[[bytes], None]] = {}  # by room, as subscribed
        self.metrics = Metrics()
        self.metrics_registry = registry_for(self.counts, self.metrics)
        self.draining = False
        self.allowed_origins = parse_origins(settings.allowed_origins, settings.public_url)
        self._ticker: asyncio.Task[None] | None = None
        # The worker is the composition root: each part is handed what it uses, no more.
        self.frameworks = FrameworkLibrary(BUILTIN_DIR, settings.data / "frameworks")
        self.documents = Documents(
            settings,
            self,
            worker_id=self.id,
            broker=self.broker,
            lease=self.lease,
            doclog=backend.doclog,
            frameworks=self.frameworks,
            fanout=self.metrics.fanout,
            lesson_history=self._lesson_history,
        )
        self.audit = AuditRecorder(backend.audit, self.id, settings.audit_queue)
        self.videos = VideoLibrary(
            settings,
            store=self.store,
            broker=self.broker,
            lease=self.lease,
            holder=self.id,
            audit=self.audit.add,
            on_withdrawn=self._withdraw_here,
        )
        self.lessons = Lessons(
            read_document=self.documents.read,
            room_record=self.room_record,
            orgs=self.orgs,
            videos=self.videos,
        )
        self.media_host = WorkerMediaHost(
            settings,
            audit=self.audit,
            recordings=LibraryRecordings(self.videos, self.orgs, self.room_record),
            spawn=self.spawn,
            viewer_count=self.media_viewers,
            mixes=Mixes(self.start),
        )
        self.media = MediaRouter(self)
        self.people = People(self.store)
        self.cycles = Cycles(self.store)
        self.clips = Clips(self.store)
        index = settings.data / "library.sqlite3" if settings.redis is None else None
        self.library = TrustLibrary(self.clips, self.broker, index, self.spawn)
        self.providers = Providers(settings)
        addresses = [a.strip() for a in settings.media_host_addresses.split(",") if a.strip()]
        if addresses:  # process-wide; unset leaves aioice's choice (or what a test chose)
            offer_host_addresses(addresses)

    # ---- lifetime -----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Worker]:
        await self.broker.subscribe(WORKERS_CHANNEL, self._on_heartbeat)
        await self.media.start()
        async with asyncio.TaskGroup() as group:
            self._group = group
            await self.library.start()
            await self.broker.subscribe(ROOM_CUT_CHANNEL, self._on_room_cut)
            reconciler = group.create_task(self.library.run(), name=f"library {self.id}")
            self._ticker = group.create_task(self._tick_forever(), name=f"tick {self.id}")
            writer = group.create_task(self.documents.run_writer(), name=f"writer {self.id}")
            auditor = group.create_task(self.audit.run(), name=f"audit {self.id}")
            try:
                yield self
            finally:
                await self.drain(self.settings.drain_seconds)
                self.media_host.mixes.stop()  # after drain: the homes' conversations ended
                writer.cancel()
                self.documents.stop()
                # After drain(): the leaves and unwatches of the clients it closed are queued.
                auditor.cancel()
                await asyncio.wait({auditor})  # its batch in hand is written by audit.drain()
                await self.audit.drain()
                reconciler.cancel()
                await self.broker.unsubscribe(ROOM_CUT_CHANNEL, self._on_room_cut)
                await self.library.stop()
                self._group = None

    async def drain(self, seconds: float) -> None:
        """Stop serving, losing nothing, within about `seconds`: tell every client to reconnect
        elsewhere (`reconnect`, then close 1012), write the document edits still queued to
        the log, and give up our rooms at once (leases released, `alive: false`), so another
        worker takes them over without waiting for a lease to lapse. Runs once; the server
        calls it on SIGTERM before it stops, and the lifespan's end calls it again."""
        if self.draining:
            return
        self.draining = True
        if self._ticker is not None:
            self._ticker.cancel()  # no more re-homing here: our rooms are leaving
        reason = "service restart: reconnect"
        for local in list(self.rooms.values()):
            for connection in list(local.connections.values()):
                connection.deliver(encode(Reconnect(reason="server restarting")))
                connection.drop(CloseCode.SERVICE_RESTART, reason)
        for document in list(self.documents.open_rooms.values()):
            for connection in list(document.connections.values()):
                connection.drop(CloseCode.SERVICE_RESTART, reason)
        deadline = time.monotonic() + seconds
        await self.documents.flush(seconds)
        homes = list(self._home_tasks.values())
        for task in homes:
            task.cancel()  # each home releases its lease and says it is leaving
        if homes:
            await asyncio.wait(homes, timeout=max(0.1, deadline - time.monotonic()))
        try:
            await self.media.stop()
            await self.broker.publish(WORKERS_CHANNEL, encode(Heartbeat(self.id, alive=False)))
        except ServiceUnavailable as exc:
            log.warning("could not announce shutdown: %s", exc)
        log.info("drained in %.2f s", seconds - (deadline - time.monotonic()))

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background step owned by the worker; its failure is logged, not fatal."""
        if self._group is None:
            coro.close()
            return
        self._group.create_task(self._supervised(coro, name), name=name)

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Like spawn, for a long-lived step whose owner will cancel it."""
        assert self._group is not None, "the worker is not running"
        return self._group.create_task(self._supervised(coro, name), name=name)

    async def _supervised(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except ServiceUnavailable as exc:
            log.warning("%s: %s", name, exc)
        except Exception:
            log.exception("%s failed", name)

    # ---- rooms --------------------------------------------------------------------------

    async def room_record(self, room_id: str) -> RoomRecord:
        record = self._records.get(room_id)
        if record is None:
            # Only rooms that exist are cached: one created later by the CLI must be found.
            record = await self.store.get_room(room_id)
            if record is None:
                raise RoomNotFound(f"room {room_id!r} does not exist")
            self._records[room_id] = record
        return record

    async def current_room_record(self, room_id: str) -> RoomRecord:
        """The record as the store holds it now: access checks must see a room's sharing as
        it was last changed, perhaps on another worker (the cache above keeps the first)."""
        record = await self.store.get_room(room_id)
        if record is None:
            raise RoomNotFound(f"room {room_id!r} does not exist")
        self._records[room_id] = record
        return record

    async def attach(self, connection: Connection, member: Member, record: RoomRecord) -> None:
        local = self.rooms.get(record.id)
        if local is None:
            local = self.rooms[record.id] = LocalRoom(self, record.id)
        local.pending += 1
        try:
            async with local.lock:
                await local.subscribe()
                local.add(connection, member)
                if local.home is None or not self._home_usable(record.id, local.home):
                    local.home = await self._resolve_home(record)
                await local.join(member)
        finally:
            local.pending -= 1

    async def detach(self, room_id: str, member_id: str, reason: str) -> None:
        local = self.rooms.get(room_id)
        if local is None:
            return
        async with local.lock:
            local.remove(member_id)
            await local.forward(ForwardLeave(member_id, reason))
            if local.empty and self.rooms.get(room_id) is local:
                del self.rooms[room_id]
                await local.unsubscribe()

    async def home_of(self, record: RoomRecord) -> str | None:
        """The room's home for a request that is not a member's (WHEP): the one our members
        use if any, else the lease holder, else us."""
        local = self.rooms.get(record.id)
        if (
            local is not None
            and local.home is not None
            and self._home_usable(record.id, local.home)
        ):
            return local.home
        return await self._resolve_home(record)

    def media_viewers(self) -> int:
        return sum(len(home.media.viewers) for home in self.homes.values())

    # ---- what the room shells ask of us (WorkerContext) -------------------------------------

    def alive(self, worker: str) -> bool:
        return self.liveness.alive(worker)

    def deliver_here(self, room_id: str, envelope: Deliver) -> None:
        local = self.rooms.get(room_id)
        if local is not None:
            local.deliver(envelope)

    def submit_home(self, room_id: str, message: ForwardMessage) -> bool:
        room_home = self.homes.get(room_id)
        if room_home is None:
            return False
        room_home.submit(message)
        return True

    def home_media(self, room_id: str) -> RoomMedia | None:
        room_home = self.homes.get(room_id)
        return room_home.media if room_home is not None else None

    async def cut_room(self, room_id: str, video_id: str, reason: str) -> None:
        """Close the viewers of `video_id` in one room, on every worker at once: a clip's share
        was withdrawn (docs/groups.md); its other rooms go on."""
        await self.broker.publish(ROOM_CUT_CHANNEL, f"{room_id}\n{video_id}\n{reason}".encode())

    def _on_room_cut(self, data: bytes) -> None:
        room_id, _, rest = data.decode("utf-8", "replace").partition("\n")
        video_id, _, reason = rest.partition("\n")
        room_home = self.homes.get(room_id)
        if room_home is not None:
            self.spawn(room_home.media.withdraw(video_id, reason), f"cut {room_id}")

    def _withdraw_here(self, video_id: str, reason: str) -> None:
        """A video was withdrawn (on some worker): close this worker's viewers of it."""
        for room_home in list(self.homes.values()):
            self.spawn(room_home.media.withdraw(video_id, reason), f"withdraw {video_id}")

    async def _set_video(self, room_id: str, video: str) -> None:
        """A live lesson's recording becomes the room's lesson (`meta.video`, one of its
        `lessons`); the notes made on the lesson before stay on that lesson."""
        record = await self.show_lesson(room_id, Lesson(video, time.time(), "recording"))
        if record.cycle is not None:  # an observation of a coaching cycle: its lesson too
            await self.cycles.recorded(record.cycle, room_id, video)

    async def show_lesson(self, room_id: str, lesson: Lesson) -> RoomRecord:
        """The room shows `lesson` from now on, for everyone on every worker: its record (what
        the admin page lists) and its document (what the pages play) say so."""
        record = await self.current_room_record(room_id)
        # Opened before the record changes: a room whose document was never loaded lists the
        # video it showed so far as its first lesson, not the new one.
        await self.documents.open(record)
        if record.video != lesson.video:
            record = msgspec.structs.replace(record, video=lesson.video)
            if not await self.store.update_room(record):
                raise RoomNotFound(f"room {room_id!r} does not exist")
            self._records[room_id] = record
        await self.documents.attach_lesson(record, lesson)
        return record

    async def lesson_attached(self, room_id: str, video: str) -> None:
        """The room's home attached another lesson (a member switched `meta.video`): the room
        record, which the admin page lists, follows."""
        record = await self.current_room_record(room_id)
        if record.video != video:
            changed = msgspec.structs.replace(record, video=video)
            if await self.store.update_room(changed):
                self._records[room_id] = changed

    async def _lesson_history(self, record: RoomRecord) -> list[Lesson]:
        """The lessons a room has shown, for notes written before they named theirs: the
        document's own list, the room's video since its creation, and its live recordings."""
        document = self.documents.open_rooms.get(record.id)
        known = {}
        if document is not None:
            doc = document.content.snapshot_doc()
            known = {lesson.video: lesson for lesson in read_lessons(doc.get("lessons", type=Map))}
        if record.video and record.video not in known:
            known[record.video] = Lesson(record.video, record.created)
        for video in await self.store.list_videos():
            if video.room == record.id and video.id not in known and video.status != "failed":
                known[video.id] = Lesson(video.id, video.created, "recording")
        return sorted(known.values(), key=lambda lesson: (lesson.added, lesson.video))

    def counts(self) -> WorkerCounts:
        mixer = self.media_host.mixes.mixer
        return WorkerCounts(
            worker=self.id,
            rooms=len(self.rooms),
            home_rooms=len(self.homes),
            members=sum(len(local.connections) for local in self.rooms.values()),
            document_clients=sum(
                len(doc.connections) for doc in self.documents.open_rooms.values()
            ),
            media_viewers=self.media_viewers(),
            ingest_queue=self.videos.ingest.queue.qsize(),
            redis_reconnects=self.broker.reconnects,
            voice_sessions=sum(len(h.media.conversation.peers) for h in self.homes.values()),
            mixer_restarts=mixer.stats.restarts,
            mixer_dropped=mixer.stats.dropped,
            mixer_late_ticks=mixer.stats.child.late_ticks,
        )

    def _home_usable(self, room_id: str, home: str) -> bool:
        if home == self.id:
            return room_id in self.homes
        return self.liveness.alive(home)

    async def _resolve_home(self, record: RoomRecord) -> str | None:
        """The room's home: the current lease holder, or us if the lease is free."""
        holder = await self.lease.holder(record.id)
        if holder is not None and self._home_usable(record.id, holder):
            return holder
        if await self._become_home(record):
            return self.id
        # A holder that looks dead but whose lease has not lapsed yet: the tick will retry.
        return await self.lease.holder(record.id)

    async def _become_home(self, record: RoomRecord) -> bool:
        if record.id in self.homes:
            return True
        if self.draining:
            return False  # a stopping worker takes no rooms; another worker will
        await self._watch_store()
        grace = RESEED_TICKS * self.settings.heartbeat_interval
        if self._reseeded_at is not None and time.monotonic() - self._reseeded_at < grace:
            # The store restarted and forgot the rooms: every worker gives back the state of
            # the rooms it was home of first (within a tick), or this home would start empty.
            return False
        home = RoomHome(
            self,
            record.id,
            record.title,
            media_host=self.media_host,
            find_lesson=self.lessons.find,
            hold_frame=self.videos.holds.get,
            set_video=self._set_video,
            lesson_attached=self.lesson_attached,
            talk_measured=talk_record.measured(self.settings, self.orgs, record.org),
            cycle=record.cycle,
        )
        on_media = self._media_requests[record.id] = partial(
            self.media.on_request, home.media, home.publish
        )
        # Subscribe before taking the lease: once others can see us as home, intents they
        # publish must reach us.
        await self.broker.subscribe(home_channel(record.id), home.on_forward)
        await self.broker.subscribe(media_channel(record.id), on_media)
        since = asyncio.get_running_loop().time()
        try:
            token = await self.lease.take(record.id, self.id, self.settings.lease_ttl)
        except ServiceUnavailable:
            token = 0
        if not token:
            await self.broker.unsubscribe(home_channel(record.id), home.on_forward)
            await self.broker.unsubscribe(media_channel(record.id), on_media)
            self._media_requests.pop(record.id, None)
            return False
        self.homes[record.id] = home
        assert self._group is not None
        # Its own context: a home outlives the request that happened to start it, and its
        # log lines name its room, not that request.
        context = contextvars.copy_context()
        context.run(logs.REQUEST_ID.set, None)
        context.run(logs.ROOM.set, record.id)
        self._home_tasks[record.id] = self._group.create_task(
            self._serve_home(home, token, since), name=f"home {record.id}", context=context
        )
        return True

    async def _serve_home(self, home: RoomHome, token: int, since: float) -> None:
        ended = None
        try:
            ended = await home.run(token, since)
        except ServiceUnavailable as exc:
            log.warning("home of room %s stopped: %s", home.id, exc)
        except Exception:
            log.exception("home of room %s failed", home.id)
        finally:
            self.homes.pop(home.id, None)
            self._home_tasks.pop(home.id, None)
            local = self.rooms.get(home.id)
            if local is not None and local.home == self.id:
                local.home = None  # the tick finds the next home
                if ended == CUT_OFF:
                    self._send_elsewhere(local)
            if ended == CUT_OFF and home.saved is not None:
                self._orphans[home.id] = home.saved
            await self._leave_home(home)

    def _send_elsewhere(self, local: LocalRoom) -> None:
        """This worker cannot reach Redis, so it cannot serve the room: its members are told to
        connect again, which takes them to a worker that can (or back here once it can)."""
        reason = "the room's server lost its database: reconnect"
        for connection in list(local.connections.values()):
            connection.deliver(encode(Reconnect(reason="room moving to another server")))
            connection.drop(CloseCode.SERVICE_RESTART, reason)

    async def _leave_home(self, home: RoomHome) -> None:
        try:
            await self.broker.unsubscribe(home_channel(home.id), home.on_forward)
            on_media = self._media_requests.pop(home.id, None)
            if on_media is not None:
                await self.broker.unsubscribe(media_channel(home.id), on_media)
            await self.lease.release(home.id, self.id)
            await home.leaving()
        except ServiceUnavailable as exc:
            log.warning("room %s: could not give up the lease: %s", home.id, exc)

    async def rehome(self, room_id: str) -> None:
        """Find the room's next home (perhaps us) when the last one is gone."""
        local = self.rooms.get(room_id)
        if local is None:
            return
        async with local.lock:
            if local.home is not None and self._home_usable(local.id, local.home):
                return
            local.home = None  # hold intents until the next home is known
            home = await self._resolve_home(await self.room_record(local.id))
            if home is not None and not self._home_usable(local.id, home):
                return  # a dead holder whose lease has not lapsed: try again next tick
            local.home = home
        if home is not None and home != self.id:
            # The new home announces itself to everyone; this covers a home elected before
            # we subscribed. Our own home's announcement reaches us through the broker.
            await local.announce(home)

    async def _watch_store(self) -> None:
        """A store that restarted may have lost everything (Redis without AOF): give it back
        what this worker holds. Every step is idempotent, so a restart that lost nothing
        costs only some redundant writes."""
        epoch = await self.store.epoch()
        if self._store_epoch is None or epoch == self._store_epoch:
            self._store_epoch = epoch
            self._orphans.clear()  # the store kept them: the rooms' next homes load them
            return
        log.warning("the store restarted (%s -> %s): re-seeding", self._store_epoch, epoch)
        self._store_epoch = epoch
        self._reseeded_at = time.monotonic()
        for record in list(self._records.values()):
            with contextlib.suppress(Conflict):  # it kept its data
                await self.store.create_room(record)
        for room_home in list(self.homes.values()):
            await room_home.persist()
        for room_id, state in list(self._orphans.items()):
            await self.store.seed_room_state(room_id, state)  # unless a new home wrote one
        self._orphans.clear()
        await self.documents.reseed()

    # ---- liveness -----------------------------------------------------------------------

    def _on_heartbeat(self, data: bytes) -> None:
        try:
            heartbeat = decode_heartbeat(data)
        except msgspec.DecodeError as exc:
            log.error("undecodable heartbeat: %s", exc)
            return
        if heartbeat.worker != self.id:
            self.liveness.heard(heartbeat)

    async def _tick_forever(self) -> None:
        reachable = True
        while True:
            try:
                await self._tick()
                if not reachable:
                    log.warning("the broker and store are reachable again")
                reachable = True
            except ServiceUnavailable as exc:
                if reachable:  # once per outage, not every tick
                    log.warning("worker %s cannot reach the broker or store: %s", self.id, exc)
                reachable = False
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _tick(self) -> None:
        try:
            await self.broker.publish(WORKERS_CHANNEL, encode(Heartbeat(self.id, alive=True)))
            self.liveness.sighted()
        except ServiceUnavailable:
            self.liveness.blind()
            raise
        await self._watch_store()
        now = time.monotonic()
        for local in list(self.rooms.values()):
            if local.home is None or not self._home_usable(local.id, local.home):
                await self.rehome(local.id)
            await local.tick(now)
        await self.documents.tick(now)
        for room_id, room_home in list(self.homes.items()):
            room_home.check_workers(now)
            idle = room_home.idle_since
            if (
                idle is not None
                and now - idle > self.settings.home_idle_seconds
                and not room_home.media.busy
            ):
                task = self._home_tasks.get(room_id)
                if task is not None and room_id not in self.rooms:
                    task.cancel()
