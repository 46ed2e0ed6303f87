"""The room: membership, presence and playback rules in one pure state machine."""

from __future__ import annotations

from typing import assert_never

import msgspec

from server.errors import ClientError, Forbidden, InvalidField
from server.messages import (
    PROTOCOL_VERSION,
    Buffering,
    Error,
    LiveChanged,
    LiveInfo,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    PlaybackChanged,
    PlaybackInfo,
    Ready,
    RoomInfo,
    Scalar,
    State,
    TalkbackChanged,
    TalkbackInfo,
    Wait,
    Welcome,
    message_ref,
)
from server.rooms.effects import Broadcast, Effect, Persist, Send
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
from server.rooms.member import Member
from server.rooms.playback import PlaybackRules, apply_intent, position_at
from server.rooms.roles import Permission
from server.rooms.voice import VoiceRules, VoiceState, admit
from server.rooms.wait import Viewer, excuse, settle, timed_out

PRESENCE_STATUSES = frozenset({"here", "away", "idle"})


class RoomState(msgspec.Struct):
    """What survives a change of home: stored by the shell whenever a `Persist` effect asks."""

    members: dict[str, Member] = msgspec.field(default_factory=dict)
    playback: PlaybackInfo = msgspec.field(default_factory=PlaybackInfo)
    duration: float | None = None  # of the room's video, once one is attached
    video: str | None = None  # the attached video's id (also in `playback.video`)
    fps: float | None = None  # its frame rate, for `step`
    viewers: dict[str, Viewer] = msgspec.field(default_factory=dict)  # members' player reports
    live: LiveInfo | None = None  # a live lesson being published, if any
    talkback: TalkbackInfo | None = None  # who is on air, if anyone
    # The conversation (server/rooms/voice.py), by user: what the home's media and the members
    # said of it, and the observers the coach let speak (or stopped).
    voices: dict[str, VoiceState] = msgspec.field(default_factory=dict)
    speakers: dict[str, bool] = msgspec.field(default_factory=dict)


class Room:
    def __init__(
        self,
        room_id: str,
        title: str,
        *,
        state: RoomState | None = None,
        rules: PlaybackRules | None = None,
        talk_measured: bool = True,
        cycle: str | None = None,
    ) -> None:
        """`talk_measured`: the room's organisation measures who talks when; `cycle`: the
        coaching cycle it is a session of."""
        self.id = room_id
        self.cycle = cycle
        self.title = title
        self.state = state if state is not None else RoomState()
        self.rules = rules if rules is not None else PlaybackRules()
        self.talk_measured = talk_measured
        # A new home starts with no conversation: its voice sessions were at the old home.
        self.state.voices = {}
        self.voice = VoiceRules(self.state.members, self.state.voices, self.state.speakers)

    @property
    def members(self) -> dict[str, Member]:
        return self.state.members

    def workers(self) -> frozenset[str]:
        return frozenset(m.worker for m in self.state.members.values())

    def handle(self, event: Event) -> list[Effect]:
        try:
            match event:
                case Join():
                    return self._join(event)
                case Leave():
                    return self._leave(event.member_id, event.reason, event.now)
                case ChangePresence():
                    return self._change_presence(event)
                case ControlPlayback():
                    return self._control_playback(event)
                case ReportViewer():
                    return self._report_viewer(event)
                case ChangeLock():
                    return self._change_lock(event)
                case AttachVideo():
                    return self._attach_video(event)
                case ChangeLive():
                    return self._change_live(event)
                case ChangeTalkback():
                    return self._change_talkback(event)
                case ControlVoice(member_id=member_id, control=control):
                    return self.voice.control(member_id, control)
                case ChangeVoice(user, connected, camera, speaking, _):
                    return self.voice.report(user, connected, camera, speaking)
                case Tick(now=now):
                    return self._tick(now)
                case AnnounceMembers():
                    return self._announce(event)
                case LoseWorker():
                    return self._lose_worker(event.worker, event.now)
                case Resync():
                    return self._resync(event)
                case _:
                    assert_never(event)
        except ClientError as error:
            match event:
                case (
                    ControlPlayback(member_id=member_id, intent=message)
                    | ReportViewer(member_id=member_id, report=message)
                    | ChangeLock(member_id=member_id, lock=message)
                    | ControlVoice(member_id=member_id, control=message)
                ):
                    ref = message_ref(message)
                case ChangePresence(member_id=member_id, ref=ref):
                    ref = "presence" if ref is None else ref
                case _:
                    raise
            return [Send(member_id, Error(code=error.code, message=error.message, ref=ref))]

    # ---- membership ---------------------------------------------------------------------

    def _info(self, member: Member) -> MemberInfo:
        return member.info(self.voice.info_of(member))

    def may_speak(self, user: str) -> bool | None:
        """The coach's word on whether this observer may speak (None: nothing said)."""
        return self.state.speakers.get(user)

    def _join(self, event: Join) -> list[Effect]:
        member = admit(event.member, self.state.speakers)
        known = member.id in self.state.members
        self.state.members[member.id] = member
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            room=RoomInfo(id=self.id, title=self.title, cycle=self.cycle),
            you=self._info(member),
            permissions=sorted(p.value for p in member.permissions),
            members=[self._info(m) for m in self.state.members.values()],
            playback=self.state.playback,
            server_time=event.now,
            live=self.state.live,
            talkback=self.state.talkback,
            talk_measured=self.talk_measured,
        )
        effects: list[Effect] = [Send(member.id, welcome)]
        if not known:  # a retried join is answered again but announced once
            effects += [Broadcast(MemberJoined(self._info(member)), exclude=member.id), Persist()]
        return effects

    def _leave(self, member_id: str, reason: str, now: float) -> list[Effect]:
        gone = self.state.members.pop(member_id, None)
        if gone is None:
            return []
        if not any(m.user == gone.user for m in self.state.members.values()):
            self.voice.forget(gone.user)
        self.state.viewers.pop(member_id, None)  # a wait for it ends
        playback = self.state.playback
        if playback.presenter == member_id:  # the lock goes with its holder
            playback = msgspec.structs.replace(
                playback, presenter=None, seq=playback.seq + 1, by=None
            )
        effects: list[Effect] = [Broadcast(MemberLeft(id=member_id, reason=reason))]
        return effects + self._change_playback(playback, by=None, now=now)

    def _announce(self, event: AnnounceMembers) -> list[Effect]:
        effects: list[Effect] = []
        announced = {
            m.id: admit(m, self.state.speakers) for m in event.members if m.worker == event.worker
        }
        for member_id, member in list(self.state.members.items()):
            if member.worker == event.worker and member_id not in announced:
                effects += self._leave(member_id, "left", event.now)
        for member in announced.values():
            before = self.state.members.get(member.id)
            self.state.members[member.id] = member
            if before is None:
                effects.append(Broadcast(MemberJoined(self._info(member))))
            elif before != member:
                effects.append(Broadcast(MemberUpdated(self._info(member))))
        if effects and not isinstance(effects[-1], Persist):
            effects.append(Persist())
        return effects

    def _lose_worker(self, worker: str, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for member_id, member in list(self.state.members.items()):
            if member.worker == worker:
                effects += self._leave(member_id, "disconnected", now)
        return effects

    def _resync(self, event: Resync) -> list[Effect]:
        state = State(
            members=[self._info(m) for m in self.state.members.values()],
            playback=self.state.playback,
            server_time=event.now,
            live=self.state.live,
            talkback=self.state.talkback,
        )
        return [Send(m.id, state) for m in self.state.members.values() if m.worker == event.worker]

    # ---- presence -----------------------------------------------------------------------

    def _change_presence(self, event: ChangePresence) -> list[Effect]:
        member = self.state.members.get(event.member_id)
        if member is None:
            return []
        if event.status is not None and event.status not in PRESENCE_STATUSES:
            raise InvalidField(
                f"presence.status must be one of {sorted(PRESENCE_STATUSES)}", ref="presence"
            )
        state: dict[str, Scalar] = member.state if event.state is None else event.state
        status = member.status if event.status is None else event.status
        updated = msgspec.structs.replace(member, status=status, state=state)
        if updated == member:
            return []
        self.state.members[member.id] = updated
        return [Broadcast(MemberUpdated(self._info(updated))), Persist()]

    # ---- playback -----------------------------------------------------------------------

    def _controller(self, member_id: str) -> Member | None:
        """The member, if it may control playback now; Forbidden if not; None if unknown."""
        member = self.state.members.get(member_id)
        if member is None:
            return None
        if not member.may(Permission.CONTROL_PLAYBACK):
            raise Forbidden(f"role {member.role.value!r} may not control playback")
        presenter = self.state.members.get(self.state.playback.presenter or "")
        if presenter is not None and presenter.id != member.id:
            raise Forbidden(
                f"playback is locked by its presenter {presenter.name!r} ({presenter.id})"
            )
        return member

    def _change_playback(self, after: PlaybackInfo, *, by: str | None, now: float) -> list[Effect]:
        """Make `after` the room's playback, once it agrees with the viewers' reports; the
        caller changed something, so the state is saved in any case."""
        before = self.state.playback
        playback = settle(
            self.state.viewers,
            before,
            after,
            by=by,
            now=now,
            rules=self.rules,
            duration=self.state.duration,
        )
        if playback == before:
            return [Persist()]
        self.state.playback = playback
        return [Broadcast(PlaybackChanged(playback)), Persist()]

    def _control_playback(self, event: ControlPlayback) -> list[Effect]:
        member = self._controller(event.member_id)
        if member is None:
            return []
        before = self.state.playback
        playback = apply_intent(
            before,
            event.intent,
            by=member.id,
            now=event.now,
            rules=self.rules,
            duration=self.state.duration,
            fps=self.state.fps,
        )
        if playback == before:
            return []
        if before.status == "waiting" and playback.status == "playing":
            excuse(self.state.viewers, before.waiting_for)  # a play goes ahead without them
        return self._change_playback(playback, by=member.id, now=event.now)

    def _change_lock(self, event: ChangeLock) -> list[Effect]:
        member = self._controller(event.member_id)  # refuses while someone else holds it
        if member is None:
            return []
        playback = self.state.playback
        presenter = member.id if event.lock.locked else None
        if playback.presenter == presenter:
            return []
        playback = msgspec.structs.replace(
            playback, presenter=presenter, seq=playback.seq + 1, by=member.id
        )
        return self._change_playback(playback, by=member.id, now=event.now)

    def _report_viewer(self, event: ReportViewer) -> list[Effect]:
        member = self.state.members.get(event.member_id)
        if member is None:
            return []
        if not member.may(Permission.VIEW):
            raise Forbidden(f"role {member.role.value!r} does not view the lesson")
        viewer = before = self.state.viewers.get(member.id, Viewer())
        match event.report:
            case Buffering():
                viewer = msgspec.structs.replace(viewer, buffering=True)
            case Ready():
                viewer = msgspec.structs.replace(
                    viewer, buffering=False, ready_once=True, excused=False
                )
            case Wait(wait_for_me=wait_for_me):
                viewer = msgspec.structs.replace(viewer, wait_for_me=wait_for_me)
            case _:
                assert_never(event.report)
        if viewer == before and member.id in self.state.viewers:
            return []
        self.state.viewers[member.id] = viewer
        return self._change_playback(self.state.playback, by=member.id, now=event.now)

    def _tick(self, now: float) -> list[Effect]:
        playback = self.state.playback
        if playback.status != "waiting":
            return []
        expired = timed_out(self.state.viewers, playback, now)
        if not expired:
            return []
        excuse(self.state.viewers, expired)
        return self._change_playback(playback, by=None, now=now)

    def _attach_video(self, event: AttachVideo) -> list[Effect]:
        state = self.state
        # From our own media side, but a frame rate of 0 or NaN must not break `step`.
        fps = event.fps if event.fps is not None and event.fps > 0.0 else None
        duration = event.duration if event.duration is not None and event.duration >= 0.0 else None
        if event.video == state.video:  # playback goes on; what is newly known is kept
            duration = state.duration if duration is None else duration
            fps = state.fps if fps is None else fps
            if (duration, fps) == (state.duration, state.fps):
                return []
            state.duration, state.fps = duration, fps
            return [Persist()]
        state.video, state.duration, state.fps = event.video, duration, fps
        # Every player loads the new video and reports again; old stalls are forgotten.
        for member_id, viewer in state.viewers.items():
            state.viewers[member_id] = Viewer(viewer.wait_for_me, viewer.ready_once)
        before = state.playback
        if before.video is None and event.video is not None:
            # The room's first lesson, attached when the first page asks for its media: a
            # moment chosen meanwhile (a link to a moment, a seek as the page loads) was chosen
            # in this lesson, so it is kept, paused there, not sent back to 0 a second later.
            position = position_at(before, event.now)
            if duration is not None:
                position = min(position, duration)
        else:
            position = 0.0  # another lesson: from its start
        playback = PlaybackInfo(
            position=position,
            rate=before.rate,
            at=event.now,
            seq=before.seq + 1,
            video=event.video,
            presenter=before.presenter,
        )
        return self._change_playback(playback, by=None, now=event.now)

    # ---- live lesson ----------------------------------------------------------------------

    def _change_live(self, event: ChangeLive) -> list[Effect]:
        if event.live == self.state.live and event.recording is None:
            return []
        self.state.live = event.live
        message = LiveChanged(event.live, reason=event.reason, recording=event.recording)
        return [Broadcast(message), Persist()]

    def _change_talkback(self, event: ChangeTalkback) -> list[Effect]:
        if event.talkback == self.state.talkback:
            return []
        self.state.talkback = event.talkback
        return [Broadcast(TalkbackChanged(event.talkback)), Persist()]
