"""A room's live lesson at its home (docs/live.md): the classroom's publisher, the relays its
frames feed, the recording, and the coach's talk-back into the teacher's earpiece.

The room's rules hear of it through two reports, `LiveInfo` and `TalkbackInfo`; everything
else here is media plumbing. A publisher that drops is waited for (`live_resume_seconds`) and
resumes the same recording; a new home (the old one died) starts a numbered part, after
handing the old home's part to the ingest, so what was recorded is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from server.errors import CocoachError, NotLive, PublisherBusy
from server.media.host import MediaHost, Recording
from server.media.ice import RemotePolicy
from server.media.peer import offered_kinds, require_codecs
from server.media.publisher import Publisher
from server.media.recorder import Recorder
from server.media.relay import Relay
from server.messages import LiveInfo, TalkbackInfo
from server.sync.audit import SYSTEM, Actor

log = logging.getLogger(__name__)

ReportLive = Callable[[LiveInfo | None, str | None, str | None], None]
ReportTalkback = Callable[[TalkbackInfo | None], None]
RecordingDone = Callable[[str], None]


class LiveRoom:
    def __init__(
        self,
        host: MediaHost,
        room_id: str,
        *,
        report_live: ReportLive,
        report_talkback: ReportTalkback,
        recording_done: RecordingDone,
    ) -> None:
        self.host = host
        self.room_id = room_id
        origin = time.time()
        self.video = Relay("video", 90000, origin)
        self.audio = Relay("audio", 48000, origin)
        self.talkback = Relay("audio", 48000, origin)
        self.publisher: Publisher | None = None
        self.talker: Publisher | None = None
        self.info: LiveInfo | None = None
        self.recorder: Recorder | None = None
        self.recording: Recording | None = None
        self._report_live = report_live
        self._report_talkback = report_talkback
        self._recording_done = recording_done
        self._grace: asyncio.TimerHandle | None = None

    @property
    def on(self) -> bool:
        """A live lesson is on, or a publisher is connecting to start one."""
        return self.info is not None or self.publisher is not None

    # ---- taking over ----------------------------------------------------------------------

    async def adopt(self, info: LiveInfo | None) -> None:
        """A new home finds the room live: its publisher was connected to the old home, so it
        is gone for now. Keep the old home's recording part and wait for the publisher."""
        if info is None:
            return
        if info.recording is not None:
            await self.host.recordings.finish(info.recording)
        self.info = msgspec.structs.replace(info, status="interrupted", since=time.time())
        self._report(self.info)
        self._wait_for_return()

    # ---- the classroom publishes -----------------------------------------------------------

    async def publish(
        self, *, user: str, name: str, offer: str, policy: RemotePolicy, earpiece: bool
    ) -> tuple[str, str]:
        require_codecs(offer, offered_kinds(offer), video=("VP8", "H264"))
        current = self.publisher
        if current is not None and current.user != user:
            raise PublisherBusy(f"{current.name} is already publishing this room's lesson")
        publisher = Publisher(
            user=user,
            name=name,
            routes={"video": self.video, "audio": self.audio},
            earpiece=self.talkback if earpiece else None,
            spawn=self.host.spawn,
        )
        try:
            answer = await publisher.answer_offer(offer, policy)
        except BaseException:
            await publisher.close()
            raise
        self.publisher = publisher  # the same person publishing again replaces the old one
        if current is not None:
            await current.close()
        self.video.begin(publisher.request_keyframe)
        self.audio.begin(None)
        publisher.pc.on("connectionstatechange", lambda: self._on_publisher(publisher))
        log.info("room %s: publisher %s (%s) answered", self.room_id, publisher.id, user)
        return publisher.id, answer

    def _on_publisher(self, publisher: Publisher) -> None:
        if publisher is not self.publisher:
            return
        state = publisher.pc.connectionState
        if state == "connected":
            self.host.spawn(self._went_live(publisher), f"live {self.room_id}")
        elif state in ("failed", "closed"):
            self._lost(publisher, f"publisher connection {state}")

    async def _went_live(self, publisher: Publisher) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if self.recorder is None:
            part = await self._start_recording(publisher)
        else:  # the publisher came back to this home: the same recording goes on
            part = self.info.part if self.info is not None else 1
        assert self.recording is not None and self.recorder is not None
        self.info = LiveInfo(
            status="live",
            publisher=publisher.user,
            name=publisher.name,
            since=time.time(),
            recording=self.recording.video,
            part=part,
            recording_started_at=self.recorder.started_at,
        )
        self._report(self.info)

    def _lost(self, publisher: Publisher, why: str) -> None:
        """The publisher's connection failed or closed without a DELETE: wait for it."""
        self.publisher = None
        self.video.end()
        self.audio.end()
        self.host.spawn(publisher.close(), f"close publisher {publisher.id}")
        if self.info is not None:
            log.info("room %s: live lesson interrupted (%s)", self.room_id, why)
            self.info = msgspec.structs.replace(self.info, status="interrupted", since=time.time())
            self._report(self.info)
            self._wait_for_return()

    def _wait_for_return(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        loop = asyncio.get_running_loop()
        self._grace = loop.call_later(
            self.host.settings.live_resume_seconds,
            lambda: self.host.spawn(self.end("the publisher did not come back"), "live end"),
        )

    async def stop(self, session: str, user: str) -> None:
        """The publisher's DELETE: the live lesson is over."""
        if self.publisher is None or self.publisher.id != session:
            raise NotLive("that publishing session is over")
        await self.end("stopped by the publisher")

    async def end(self, reason: str) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        publisher, self.publisher = self.publisher, None
        self.video.end()
        self.audio.end()
        if publisher is not None:
            await publisher.close()
        recording = await self._finish_recording()
        if self.info is not None or recording is not None:
            log.info("room %s: live lesson ended (%s)", self.room_id, reason)
            publisher_sub = self.info.publisher if self.info is not None else None
            self.host.audit.record(
                "live.end",
                Actor(sub=publisher_sub) if publisher_sub else SYSTEM,
                room=self.room_id,
                video=recording,
                reason=reason,
            )
            self.info = None
            self._report_live(None, reason, recording)
            if recording is not None:
                self._recording_done(recording)

    # ---- recording ----------------------------------------------------------------------

    async def _start_recording(self, publisher: Publisher) -> int:
        """A new recording file; returns its part number (the part after the one the room's
        state names, when an earlier home recorded that one)."""
        part = self.info.part + 1 if self.info is not None and self.info.recording else 1
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
        title = f"Live lesson, {stamp}" + (f" (part {part})" if part > 1 else "")
        recording = await self.host.recordings.begin(self.room_id, publisher.user, title)
        self.recording = recording
        self.recorder = Recorder(recording.path, self.video.origin, self._started)
        self.video.subscribe(self.recorder.video)
        self.audio.subscribe(self.recorder.audio)
        return part

    def _started(self, at: float) -> None:
        """The recording's first key frame: notes can now carry recording time."""
        if self.info is not None and self.recording is not None:
            self.info = msgspec.structs.replace(self.info, recording_started_at=at)
            self._report(self.info)

    async def _finish_recording(self) -> str | None:
        recorder, recording = self.recorder, self.recording
        self.recorder = self.recording = None
        if recorder is None or recording is None:
            return None
        self.video.unsubscribe(recorder.video)
        self.audio.unsubscribe(recorder.audio)
        await asyncio.to_thread(recorder.close)
        return await self.host.recordings.finish(recording.video)

    # ---- talk-back -------------------------------------------------------------------------

    async def talk(
        self, *, user: str, name: str, offer: str, policy: RemotePolicy
    ) -> tuple[str, str]:
        kinds = offered_kinds(offer)
        require_codecs(offer, kinds & {"audio"})
        current = self.talker
        if current is not None and current.user != user:
            raise PublisherBusy(f"{current.name} is already on air")
        talker = Publisher(user=user, name=name, routes={"audio": self.talkback})
        try:
            answer = await talker.answer_offer(offer, policy)
        except BaseException:
            await talker.close()
            raise
        self.talker = talker
        if current is not None:
            await current.close()
        talker.pc.on("connectionstatechange", lambda: self._on_talker(talker))
        return talker.id, answer

    def _on_talker(self, talker: Publisher) -> None:
        if talker is not self.talker:
            return
        state = talker.pc.connectionState
        if state == "connected":
            self._report_talkback(TalkbackInfo(talker.user, talker.name, time.time()))
        elif state in ("failed", "closed"):
            self.host.spawn(self.stop_talking(talker.id), f"talkback off {self.room_id}")

    async def stop_talking(self, session: str) -> None:
        talker = self.talker
        if talker is None or talker.id != session:
            return
        self.talker = None
        await talker.close()
        self._report_talkback(None)
        actor = Actor(sub=talker.user, name=talker.name)
        self.host.audit.record("talkback.stop", actor, room=self.room_id, session=session)

    # ---- housekeeping ----------------------------------------------------------------------

    def session(self, session: str) -> Publisher | None:
        for peer in (self.publisher, self.talker):
            if peer is not None and peer.id == session:
                return peer
        return None

    def check_timeouts(self, now: float) -> None:
        """Close a publisher or speaker whose connection never came up."""
        timeout = self.host.settings.media_connect_timeout
        for peer in (self.publisher, self.talker):
            if peer is not None and not peer.connected and now - peer.created > timeout:
                if peer is self.talker:
                    self.host.spawn(self.stop_talking(peer.id), "talkback timeout")
                elif self.info is None:  # never went live: nothing to wait for
                    self.publisher = None
                    self.host.spawn(peer.close(), "publisher timeout")

    async def close(self) -> None:
        """The home is stopping: keep what was recorded. The room stays live in its state, so
        the next home waits for the publisher (adopt)."""
        if self._grace is not None:
            self._grace.cancel()
        for peer in (self.publisher, self.talker):
            if peer is not None:
                with contextlib.suppress(CocoachError):
                    await peer.close()
        self.publisher = self.talker = None
        await self._finish_recording()

    def _report(self, info: LiveInfo) -> None:
        self._report_live(info, None, None)
