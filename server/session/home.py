"""A room's home: the one worker that runs the room's rules (DESIGN §1).

It holds the room's lease, takes intents from every worker in arrival order, runs them through
`Room.handle`, and delivers the effects: straight to its own connections, through the broker to
the other workers' ones. It persists the room's state so the next home starts from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, assert_never

import msgspec

from server.codec import decode_as, encode
from server.errors import ServiceUnavailable, StaleHome
from server.media.host import MediaHost
from server.media.room_media import HoldFrames, Lesson, LessonFinder, RoomMedia
from server.messages import LiveInfo, ServerMessage, Welcome
from server.rooms.effects import Broadcast, Effect, EndVoice, Persist, Send
from server.rooms.events import (
    AnnounceMembers,
    AttachVideo,
    ChangeLive,
    ChangeLock,
    ChangePresence,
    ChangeTalkback,
    ChangeVoice,
    ControlPlayback,
    ControlVoice,
    Event,
    Join,
    Leave,
    LoseWorker,
    ReportViewer,
    Resync,
    Tick,
)
from server.rooms.roles import Role
from server.rooms.room import Room, RoomState
from server.rooms.voice import may_speak
from server.session import talk_record
from server.session.context import WorkerContext
from server.sync.keys import out_channel
from server.worker_wire import (
    Deliver,
    ForwardAnnounce,
    ForwardJoin,
    ForwardLeave,
    ForwardLock,
    ForwardMessage,
    ForwardPlayback,
    ForwardPresence,
    ForwardResync,
    ForwardViewer,
    ForwardVoice,
    FromHome,
    HomeChanged,
    HomeLeaving,
    OutboundMessage,
    Resend,
    WorkerLost,
    decode_forward,
)

log = logging.getLogger(__name__)

ACTIVE_TICKS_FOR = 2.0  # seconds after its last frame that a home keeps sending ticks
# The share of the lease's time from a renewal's sending that a home trusts it still holds the
# lease: the rest is the margin for delays between the home's clock and Redis's expiry.
LEASE_TRUSTED = 0.8
LOST = "lost"  # another worker holds the lease
CUT_OFF = "cut off"  # the lease could not be renewed, or a write ahead failed, in time


def to_event(message: ForwardMessage, now: float) -> Event:
    match message:
        case ForwardJoin(member=member):
            return Join(member, now)
        case ForwardLeave(member_id=member_id, reason=reason):
            return Leave(member_id, now, reason)
        case ForwardPresence(member_id=member_id, status=status, state=state, ref=ref):
            return ChangePresence(member_id, now, status, state, ref)
        case ForwardPlayback(member_id=member_id, intent=intent):
            return ControlPlayback(member_id, intent, now)
        case ForwardViewer(member_id=member_id, report=report):
            return ReportViewer(member_id, report, now)
        case ForwardLock(member_id=member_id, lock=lock):
            return ChangeLock(member_id, lock, now)
        case ForwardVoice(member_id=member_id, control=control):
            return ControlVoice(member_id, control, now)
        case ForwardAnnounce(worker=worker, members=members):
            return AnnounceMembers(worker, tuple(members), now)
        case ForwardResync(worker=worker):
            return Resync(worker, now)
        case _:
            assert_never(message)


class RoomHome:
    def __init__(
        self,
        context: WorkerContext,
        room_id: str,
        title: str,
        *,
        media_host: MediaHost,
        find_lesson: LessonFinder,
        hold_frame: HoldFrames,
        set_video: Callable[[str, str], Coroutine[Any, Any, None]],
        lesson_attached: Callable[[str, str], Coroutine[Any, Any, None]] | None = None,
        talk_measured: bool = True,
        cycle: str | None = None,
    ) -> None:
        """`set_video(room, video)` makes a finished recording the room's video;
        `lesson_attached(room, video)` hears that viewers now watch another lesson;
        `talk_measured`: the room's organisation measures who talks when."""
        self.talk_measured = talk_measured
        self.cycle = cycle
        self._lesson_attached = lesson_attached
        self.context = context
        self.id = room_id
        self.title = title
        self.room: Room | None = None
        self.token = 0  # the lease's fencing token, set by `run`
        self.saved: bytes | None = None  # the state last persisted
        self._valid_until = 0.0  # the event loop's time until which we surely hold the lease
        self.idle_since: float | None = None
        self._inbox: asyncio.Queue[ForwardMessage | Event] = asyncio.Queue(
            maxsize=context.settings.home_inbox
        )
        self._lost: set[str] = set()  # workers already declared gone
        # Numbering, to notice lost pub/sub messages both ways (docs/operations.md).
        self._out_seq = 0
        self._published_at = 0.0
        self._in_seq: dict[str, int] = {}
        self._set_video = set_video
        self.media = RoomMedia(
            media_host,
            room_id,
            find_lesson=find_lesson,
            hold_frame=hold_frame,
            attach=self._attach,
            report_live=self._report_live,
            report_talkback=lambda talkback: self.submit(ChangeTalkback(talkback, time.time())),
            recording_done=self._recording_done,
            may_speak=self._may_speak,
            report_voice=self._report_voice,
            report_speech=self._report_speech,
        )

    # ---- input --------------------------------------------------------------------------

    def on_forward(self, data: bytes) -> None:
        try:
            envelope = decode_forward(data)
        except msgspec.DecodeError as exc:
            log.error("room %s: undecodable intent: %s", self.id, exc)
            return
        last = self._in_seq.get(envelope.worker)
        if envelope.seq > (last or 0):
            self._in_seq[envelope.worker] = envelope.seq
        if last is not None and envelope.seq > last + 1:
            # An intent from that worker was lost: its announcement repairs membership and
            # presence (a lost playback intent is not repaired: its sender may send it again).
            log.warning("room %s: intents from %s lost, asking again", self.id, envelope.worker)
            self.context.spawn(self._publish(Resend(envelope.worker)), f"resend {self.id}")
        if envelope.message is not None:
            self.submit(envelope.message)

    def submit(self, message: ForwardMessage | Event) -> None:
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            log.error("room %s: home inbox full, intent dropped", self.id)

    # ---- running ------------------------------------------------------------------------

    async def run(self, token: int, since: float) -> str:
        """Serve as the room's home until cancelled, the lease is lost (`LOST`), or this worker
        is cut off from Redis (`CUT_OFF`); which of the two it was. `token` is the fencing
        token the lease was taken with, `since` (the event loop's clock) when taking it began."""
        self.token = token
        self._valid_until = since + self.context.settings.lease_ttl * LEASE_TRUSTED
        data = await self.context.store.load_room_state(self.id)
        state = decode_as(data, RoomState) if data is not None else None
        self.room = Room(
            self.id, self.title, state=state, talk_measured=self.talk_measured, cycle=self.cycle
        )
        self.media.follow(self.room.state.playback)
        log.info("worker %s is now home of room %s (token %d)", self.context.id, self.id, token)
        await self._publish(HomeChanged(self.context.id))
        async with asyncio.TaskGroup() as group:
            inbox = group.create_task(self._process())
            media = group.create_task(self.media.run(self.room.state.live))
            keeper = group.create_task(self._keep_lease())
            await asyncio.wait({inbox, keeper}, return_when=asyncio.FIRST_COMPLETED)
            ended = keeper.result() if keeper.done() else inbox.result()
            for task in (inbox, media, keeper):
                task.cancel()
        return ended

    async def _keep_lease(self) -> str:
        """Renew until another worker holds the lease (`LOST`). A home that cannot renew stops
        (`CUT_OFF`) before the lease could lapse: a renewal sent at t keeps the lease until at
        least t + lease_ttl on Redis's clock, and we trust it only for part of that. A lease
        that lapsed meanwhile (or that a Redis restart forgot) is taken again if it is free."""
        settings, lease, me = self.context.settings, self.context.lease, self.context.id
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(settings.lease_ttl / 4)
            sent = loop.time()
            try:
                async with asyncio.timeout_at(self._valid_until):
                    if not await lease.renew(self.id, me, settings.lease_ttl):
                        token = await lease.take(self.id, me, settings.lease_ttl)
                        if not token:
                            log.warning("worker %s lost the lease of room %s", me, self.id)
                            return LOST
                        self.token = token
                        log.info("room %s: lease had lapsed; taken again", self.id)
                        await self._persist()  # the store may have lost the room's state too
            except TimeoutError:
                log.warning("room %s: lease not renewed in time; stepping down", self.id)
                return CUT_OFF
            except ServiceUnavailable as exc:
                log.debug("room %s: lease not renewed (%s); trying again", self.id, exc)
                continue
            except StaleHome:
                return LOST
            self._valid_until = sent + settings.lease_ttl * LEASE_TRUSTED

    async def _process(self) -> str:
        """Run intents until a write ahead fails; then the home stops (`CUT_OFF`, or `LOST` if
        another worker holds the lease): the room in memory has moved past what is saved, and
        nobody may be told about a change that is not."""
        assert self.room is not None
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            effects: list[Effect] = []
            for item in batch:
                event = to_event(item, time.time()) if isinstance(item, ForwardMessage) else item
                effects += self.room.handle(event)
            # Write ahead: what any client is told about must survive this worker's crash.
            if any(isinstance(effect, Persist) for effect in effects):
                try:
                    await self._save()
                except StaleHome as exc:
                    log.warning("%s; stepping down", exc)
                    return LOST
                except ServiceUnavailable as exc:
                    log.warning("room %s: state not persisted (%s); stepping down", self.id, exc)
                    return CUT_OFF
            for effect in effects:
                await self._run(effect)
            self.media.follow(self.room.state.playback)

    async def _run(self, effect: Effect) -> None:
        assert self.room is not None
        match effect:
            case Send(to=to, message=message):
                member = self.room.members.get(to)
                # A member that already left may still be owed its last frame (an error):
                # deliver here and let every worker look.
                remote = member is None or member.worker != self.context.id
                await self._deliver(message, to=to, exclude=None, remote=remote)
            case Broadcast(message=message, exclude=exclude):
                remote = any(m.worker != self.context.id for m in self.room.members.values())
                await self._deliver(message, to=None, exclude=exclude, remote=remote)
            case Persist():
                pass  # done for the whole batch, before anything was delivered
            case EndVoice(user=user, reason=reason):
                await self.media.conversation.end(user, reason)
            case _:
                assert_never(effect)

    async def _deliver(
        self, message: ServerMessage, *, to: str | None, exclude: str | None, remote: bool
    ) -> None:
        envelope = Deliver(
            origin=self.context.id,
            to=to,
            exclude=exclude,
            frame=encode(message),
            welcome=isinstance(message, Welcome),
        )
        self.context.deliver_here(self.id, envelope)
        if remote:
            await self._publish(envelope)

    async def _publish(self, message: OutboundMessage | None) -> None:
        if message is not None:
            self._out_seq += 1
            self._published_at = time.monotonic()
        envelope = FromHome(self.context.id, self._out_seq, message)
        try:
            await self.context.fence.publish(
                self.id, self.context.id, self.token, out_channel(self.id), encode(envelope)
            )
        except (ServiceUnavailable, StaleHome) as exc:
            # A stale home's keeper finds out at its next renewal and stops.
            log.warning("room %s: publish failed: %s", self.id, exc)

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish as the room's home: refused (`StaleHome`) once another worker holds it."""
        await self.context.fence.publish(self.id, self.context.id, self.token, channel, message)

    async def _append_talk(self, data: bytes) -> bool:
        return await self.context.fence.append_talk(self.id, self.context.id, self.token, data)

    async def leaving(self) -> None:
        """Say we are gone, once the lease is given up: not fenced, it only makes the other
        workers look for the room's home again."""
        self._out_seq += 1
        envelope = FromHome(self.context.id, self._out_seq, HomeLeaving(self.context.id))
        try:
            await self.context.broker.publish(out_channel(self.id), encode(envelope))
        except ServiceUnavailable as exc:
            log.warning("room %s: could not say it is leaving: %s", self.id, exc)

    async def persist(self) -> None:
        """Write the room's state again (after the store restarted and may have lost it)."""
        try:
            await self._persist()
        except StaleHome as exc:
            log.warning("%s", exc)

    async def _persist(self) -> None:
        try:
            await self._save()
        except ServiceUnavailable as exc:
            log.warning("room %s: state not persisted: %s", self.id, exc)

    async def _save(self) -> None:
        assert self.room is not None
        data = encode(self.room.state)
        await self.context.fence.save_room_state(self.id, self.context.id, self.token, data)
        self.saved = data

    def _attach(self, lesson: Lesson) -> None:
        """A viewer asked for `lesson`: make it the room's, if it is not already."""
        # Before the room is loaded, submit anyway: the inbox runs once it is, and attaching
        # the room's own video again changes nothing.
        if self.room is None or self.room.state.video != lesson.video:
            self.submit(AttachVideo(lesson.video, lesson.duration, lesson.fps, time.time()))
            if self._lesson_attached is not None and self.room is not None:
                name = f"lesson {self.id}"
                self.context.spawn(self._lesson_attached(self.id, lesson.video), name)

    # ---- the conversation -----------------------------------------------------------------

    def _may_speak(self, user: str, role: str, token_speak: bool) -> bool:
        grant = self.room.may_speak(user) if self.room is not None else None
        return may_speak(Role(role), token_speak, grant)

    def _report_voice(self, user: str, connected: bool, camera: bool, speaking: bool) -> None:
        self.submit(ChangeVoice(user, connected, camera, speaking, time.time()))

    def _report_speech(self, user: str, name: str, role: str, start: float, end: float) -> None:
        """A stretch of talk ended: into the room's talk record, tied to the lesson moment on
        screen when it began, unless the room's organisation does not measure talk."""
        if not self.talk_measured or self.room is None:
            return
        state = self.room.state
        at = talk_record.lesson_at(start, state.playback, state.live, state.duration)
        entry = talk_record.TalkEntry(user, name, role, start, end, at)
        self.context.spawn(talk_record.append(self._append_talk, self.id, entry), f"talk {self.id}")

    def _report_live(
        self, live: LiveInfo | None, reason: str | None, recording: str | None
    ) -> None:
        self.submit(ChangeLive(live, time.time(), reason=reason, recording=recording))

    def _recording_done(self, video: str) -> None:
        """The live lesson's recording becomes the room's video (meta.video)."""

        self.context.spawn(self._set_video(self.id, video), f"recording {self.id}")

    # ---- called by the worker's tick -----------------------------------------------------

    def check_workers(self, now: float) -> None:
        """Declare gone the workers whose heartbeats stopped; their members leave."""
        if self.room is None:
            return
        for worker in self.room.workers():
            if self.context.alive(worker):
                self._lost.discard(worker)
            elif worker not in self._lost:
                self._lost.add(worker)
                log.info("room %s: worker %s is gone", self.id, worker)
                self.submit(LoseWorker(worker, time.time()))
                self.context.spawn(self._publish(WorkerLost(worker)), f"worker-lost {self.id}")
        if self.room.state.playback.status == "waiting":
            self.submit(Tick(time.time()))  # so a wait times out with no message arriving
        if self.room.members:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        if now - self._published_at < ACTIVE_TICKS_FOR:
            # A tick tells the other workers our last number, so a lost *last* frame shows.
            self.context.spawn(self._publish(None), f"tick {self.id}")
