"""A room's media at its home: the playback clock, the WHEP viewers, and the live lesson.

Only the home holds peers (DESIGN §1): media flows straight between a peer and the home, and
every viewer of the room follows one clock (or one live relay) in one process, which is what
keeps them on the same frame. Other workers reach this through `server/session/signaling.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from server.errors import BadSdp, Forbidden, MediaFull, NotFound, NotLive
from server.media.clock import PlaybackClock
from server.media.conversation import Conversation, ReportSpeech, ReportVoice
from server.media.host import MediaHost
from server.media.ice import RemotePolicy
from server.media.live import LiveRoom, RecordingDone, ReportLive, ReportTalkback
from server.media.peer import Peer
from server.media.viewer import Viewer, check_offer, lesson_viewer, relay_viewer
from server.media.voice_peer import VoicePeer
from server.messages import LiveInfo, PlaybackInfo
from server.sync.audit import Actor

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
SOURCES = ("auto", "video", "live", "talkback", "voice", "camera")


@dataclass(frozen=True, slots=True)
class Lesson:
    """The file a room's viewers watch, and what the room's rules need to know of it."""

    video: str
    path: Path
    duration: float | None
    fps: float | None
    size: tuple[int, int]  # the file's picture, whose hold frame its video track sends


@dataclass(slots=True)
class Watcher:
    """Who watches through one viewer, and what: for the audit log's watch and unwatch."""

    actor: Actor
    video: str | None  # None: the live lesson or talk-back
    source: str
    remote: str | None
    connected: bool = False  # whether media ever flowed


class LessonFinder(Protocol):
    async def __call__(self, room: str, rendition: str) -> Lesson: ...


class HoldFrames(Protocol):
    async def __call__(self, width: int, height: int) -> bytes:
        """The hold frame for pictures of this size, made once in a child process (no codec
        runs here)."""


MaySpeak = Callable[[str, str, bool], bool]  # user, role, the token's `speak` -> may they


class RoomMedia:
    def __init__(
        self,
        host: MediaHost,
        room_id: str,
        *,
        find_lesson: LessonFinder,
        hold_frame: HoldFrames,
        attach: Callable[[Lesson], None],
        report_live: ReportLive,
        report_talkback: ReportTalkback,
        recording_done: RecordingDone,
        may_speak: MaySpeak | None = None,
        report_voice: ReportVoice | None = None,
        report_speech: ReportSpeech | None = None,
    ) -> None:
        self.host = host
        self.room_id = room_id
        self.clock = PlaybackClock()
        self.viewers: dict[str, Viewer] = {}
        self.live = LiveRoom(
            host,
            room_id,
            report_live=report_live,
            report_talkback=report_talkback,
            recording_done=recording_done,
        )
        self._find_lesson = find_lesson
        self._hold_frame = hold_frame
        self._attach = attach
        self.policy = RemotePolicy.parse(host.settings.media_remote_networks)
        self._may_speak = may_speak or (lambda _user, _role, token_speak: token_speak)
        self.conversation = Conversation(
            host,
            room_id,
            self.policy,
            report_voice=report_voice or (lambda *_: None),
            report_speech=report_speech or (lambda *_: None),
        )
        self._wake = asyncio.Event()
        self._watchers: dict[str, Watcher] = {}  # by viewer id: who, for the audit log

    @property
    def busy(self) -> bool:
        """Peers are connected here, or a live lesson is on (a classroom may publish with
        nobody in the room yet): the home must not give the room up."""
        return (
            bool(self.viewers)
            or self.live.on
            or self.live.talker is not None
            or self.conversation.busy
        )

    def follow(self, state: PlaybackInfo) -> None:
        self.clock.update(state)

    # ---- signaling ----------------------------------------------------------------------

    async def watch(
        self,
        *,
        user: str,
        name: str,
        offer: str,
        rendition: str,
        source: str = "auto",
        actor: Actor | None = None,
        remote: str | None = None,
        member: str | None = None,
    ) -> tuple[str, str]:
        """Answer a WHEP offer; returns the viewer's id and the SDP answer. `source` "auto" is
        the live lesson while there is one, else the room's video."""
        if source not in SOURCES:
            raise NotFound(f"there is no source {source[:20]!r}; choose one of {SOURCES}")
        most = self.host.settings.media_max_viewers
        if self.host.viewer_count() >= most:
            raise MediaFull(f"this server already serves {most} viewers")
        if source == "auto":
            source = "live" if self.live.on else "video"
        if source == "live" and not self.live.on:
            raise NotLive(f"room {self.room_id!r} has no live lesson now")
        camera = None
        if source == "camera":
            camera = self.conversation.cameras.get(member or "")
            if camera is None:
                raise NotFound(f"member {(member or '')[:64]!r} sends no camera in this room")
        relayed = {"live": self.live.video, "camera": camera}.get(source)
        codec = relayed.codec if relayed is not None else None
        kinds = check_offer(offer, video=(codec or "video/vp8").split("/")[1].upper())
        video: str | None = None  # live lessons have no video id until they are recorded
        if source == "video":
            lesson = await self._find_lesson(self.room_id, rendition)
            video = lesson.video
            self._attach(lesson)  # a new lesson resets the clock through the room's rules
            # After the attach: a first viewer that waits for a hold frame to be made must not
            # hold the room's playback back.
            hold = await self._hold_frame(*lesson.size)
            viewer = lesson_viewer(
                user=user,
                name=name,
                path=lesson.path,
                hold=hold,
                clock=self.clock,
                kinds=kinds,
            )
        elif source == "live":
            relays = [r for r in (self.live.video, self.live.audio) if r.kind in kinds]
            viewer = relay_viewer(user=user, name=name, relays=relays, source=source)
        elif source == "camera":
            assert camera is not None
            viewer = relay_viewer(user=user, name=name, relays=[camera], source=source)
        elif source == "voice":
            if "audio" not in kinds:
                raise BadSdp("the offer receives no audio: the conversation is audio")
            viewer = Viewer(user=user, name=name, source=source)
            viewer.tracks.append(self.conversation.listen(viewer.id))
        else:
            viewer = relay_viewer(user=user, name=name, relays=[self.live.talkback], source=source)
        viewer.pc.on("connectionstatechange", lambda: self._on_change(viewer))
        try:
            answer = await viewer.answer_offer(offer, self.policy)
        except BaseException:
            await viewer.close()
            raise
        self.viewers[viewer.id] = viewer
        log.info("room %s: viewer %s (%s) watching %s", self.room_id, viewer.id, user, source)
        watcher = Watcher(actor or Actor(sub=user, name=name), video, source, remote)
        self._watchers[viewer.id] = watcher
        self.host.audit.record(
            "video.watch",
            watcher.actor,
            room=self.room_id,
            video=video,
            remote=remote,
            session=viewer.id,
            source=source,
            rendition=rendition if source == "video" else None,
            member=member if source == "camera" else None,
        )
        return viewer.id, answer

    async def voice(
        self,
        *,
        user: str,
        name: str,
        role: str,
        offer: str,
        speak: bool,
        actor: Actor | None = None,
        remote: str | None = None,
    ) -> tuple[str, str]:
        """A member joins the conversation (`POST /rooms/{room}/voice`); `speak`: what their
        token says, which the room's coach may have overridden for an observer."""
        return await self.conversation.join(
            user=user,
            name=name,
            role=role,
            offer=offer,
            allowed=self._may_speak(user, role, speak),
            actor=actor or Actor(sub=user, name=name, role=role),
            remote=remote,
        )

    async def publish(
        self,
        *,
        user: str,
        name: str,
        offer: str,
        talkback: bool,
        earpiece: bool,
        actor: Actor | None = None,
        remote: str | None = None,
    ) -> tuple[str, str]:
        """A WHIP offer: the live lesson (`talkback` False) or a coach's talk-back microphone."""
        if talkback:
            session, answer = await self.live.talk(
                user=user, name=name, offer=offer, policy=self.policy
            )
        else:
            session, answer = await self.live.publish(
                user=user, name=name, offer=offer, policy=self.policy, earpiece=earpiece
            )
        self.host.audit.record(
            "talkback.start" if talkback else "live.publish",
            actor or Actor(sub=user, name=name),
            room=self.room_id,
            remote=remote,
            session=session,
        )
        return session, answer

    async def trickle(self, session: str, user: str, fragment: str) -> None:
        await self._own(session, user).trickle(fragment, self.policy)

    async def leave(self, session: str, user: str) -> None:
        peer = self._own(session, user)
        if peer is self.live.publisher:
            await self.live.stop(session, user)
        elif peer is self.live.talker:
            await self.live.stop_talking(session)
        elif isinstance(peer, VoicePeer):
            await self.conversation.leave(session)
        elif isinstance(peer, Viewer):
            await self._close(peer, "left")

    def _own(self, session: str, user: str) -> Peer:
        peer: Peer | None = (
            self.viewers.get(session)
            or self.live.session(session)
            or self.conversation.session(session)
        )
        if peer is None:
            raise NotFound(f"no media session {session!r} in room {self.room_id!r}")
        if peer.user != user:
            raise Forbidden("this media session belongs to someone else")
        return peer

    async def withdraw(self, video_id: str, reason: str) -> None:
        """Close the viewers watching this video (deleted, or its consent withdrawn)."""
        for viewer_id, watcher in list(self._watchers.items()):
            viewer = self.viewers.get(viewer_id)
            if viewer is not None and watcher.source == "video" and watcher.video == video_id:
                await self._close(viewer, reason)

    # ---- housekeeping -------------------------------------------------------------------

    def _on_change(self, viewer: Viewer) -> None:
        watcher = self._watchers.get(viewer.id)
        if viewer.pc.connectionState == "connected" and watcher is not None:
            watcher.connected = True
        if viewer.pc.connectionState in ("failed", "closed"):
            self._wake.set()

    async def run(self, live: LiveInfo | None) -> None:
        """Close peers whose connection failed or never came up; until cancelled."""
        try:
            await self.live.adopt(live)
            while True:
                self._wake.clear()
                await self._sweep(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SWEEP_INTERVAL):
                        await self._wake.wait()
        finally:
            await self.close()

    async def _sweep(self, now: float) -> None:
        timeout = self.host.settings.media_connect_timeout
        for viewer in list(self.viewers.values()):
            state = viewer.pc.connectionState
            if state in ("failed", "closed"):
                await self._close(viewer, state)
            elif state != "connected" and now - viewer.created > timeout:
                await self._close(viewer, "never connected")
        self.live.check_timeouts(now)
        await self.conversation.sweep(now)

    async def _close(self, viewer: Viewer, reason: str) -> None:
        if self.viewers.pop(viewer.id, None) is not None:
            log.info("room %s: viewer %s closed (%s)", self.room_id, viewer.id, reason)
        watcher = self._watchers.pop(viewer.id, None)
        if watcher is not None:
            self.host.audit.record(
                "video.unwatch",
                watcher.actor,
                room=self.room_id,
                video=watcher.video,
                remote=watcher.remote,
                session=viewer.id,
                reason=reason,
                source=watcher.source,
                connected=watcher.connected,
                seconds=round(time.monotonic() - viewer.created, 1),
            )
        await viewer.close()

    async def close(self) -> None:
        for viewer in list(self.viewers.values()):
            await self._close(viewer, "home stopping")
        await self.conversation.close()
        await self.live.close()
