"""The room: membership, presence and playback rules in one pure state machine."""

from __future__ import annotations

from typing import assert_never

import msgspec

from server.errors import ClientError, Forbidden, InvalidField
from server.messages import (
    PROTOCOL_VERSION,
    Error,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    PlaybackChanged,
    PlaybackInfo,
    RoomInfo,
    Scalar,
    State,
    Welcome,
    message_ref,
)
from server.rooms.effects import Broadcast, Effect, Persist, Send
from server.rooms.events import (
    AnnounceMembers,
    ChangePresence,
    ControlPlayback,
    Event,
    Join,
    Leave,
    LoseWorker,
    Resync,
)
from server.rooms.member import Member
from server.rooms.playback import PlaybackRules, apply_intent
from server.rooms.roles import Permission

PRESENCE_STATUSES = frozenset({"here", "away", "idle"})


class RoomState(msgspec.Struct):
    """What survives a change of home: stored by the shell whenever a `Persist` effect asks."""

    members: dict[str, Member] = msgspec.field(default_factory=dict)
    playback: PlaybackInfo = msgspec.field(default_factory=PlaybackInfo)
    duration: float | None = None  # of the room's video, once one is attached


class Room:
    def __init__(
        self,
        room_id: str,
        title: str,
        *,
        state: RoomState | None = None,
        rules: PlaybackRules | None = None,
    ) -> None:
        self.id = room_id
        self.title = title
        self.state = state if state is not None else RoomState()
        self.rules = rules if rules is not None else PlaybackRules()

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
                    return self._leave(event.member_id, event.reason)
                case ChangePresence():
                    return self._change_presence(event)
                case ControlPlayback():
                    return self._control_playback(event)
                case AnnounceMembers():
                    return self._announce(event)
                case LoseWorker():
                    return self._lose_worker(event.worker)
                case Resync():
                    return self._resync(event)
                case _:
                    assert_never(event)
        except ClientError as error:
            match event:
                case ControlPlayback(member_id=member_id, intent=intent):
                    ref = message_ref(intent)
                case ChangePresence(member_id=member_id, ref=ref):
                    ref = "presence" if ref is None else ref
                case _:
                    raise
            return [Send(member_id, Error(code=error.code, message=error.message, ref=ref))]

    # ---- membership ---------------------------------------------------------------------

    def _join(self, event: Join) -> list[Effect]:
        member = event.member
        known = member.id in self.state.members
        self.state.members[member.id] = member
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            room=RoomInfo(id=self.id, title=self.title),
            you=member.info(),
            permissions=sorted(p.value for p in member.permissions),
            members=[m.info() for m in self.state.members.values()],
            playback=self.state.playback,
            server_time=event.now,
        )
        effects: list[Effect] = [Send(member.id, welcome)]
        if not known:  # a retried join is answered again but announced once
            effects += [Broadcast(MemberJoined(member.info()), exclude=member.id), Persist()]
        return effects

    def _leave(self, member_id: str, reason: str) -> list[Effect]:
        if self.state.members.pop(member_id, None) is None:
            return []
        return [Broadcast(MemberLeft(id=member_id, reason=reason)), Persist()]

    def _announce(self, event: AnnounceMembers) -> list[Effect]:
        effects: list[Effect] = []
        announced = {m.id: m for m in event.members if m.worker == event.worker}
        for member_id, member in list(self.state.members.items()):
            if member.worker == event.worker and member_id not in announced:
                effects += self._leave(member_id, "left")
        for member in announced.values():
            before = self.state.members.get(member.id)
            self.state.members[member.id] = member
            if before is None:
                effects.append(Broadcast(MemberJoined(member.info())))
            elif before != member:
                effects.append(Broadcast(MemberUpdated(member.info())))
        if effects and not isinstance(effects[-1], Persist):
            effects.append(Persist())
        return effects

    def _lose_worker(self, worker: str) -> list[Effect]:
        effects: list[Effect] = []
        for member_id, member in list(self.state.members.items()):
            if member.worker == worker:
                effects += self._leave(member_id, "disconnected")
        return effects

    def _resync(self, event: Resync) -> list[Effect]:
        state = State(
            members=[m.info() for m in self.state.members.values()],
            playback=self.state.playback,
            server_time=event.now,
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
        return [Broadcast(MemberUpdated(updated.info())), Persist()]

    # ---- playback -----------------------------------------------------------------------

    def _control_playback(self, event: ControlPlayback) -> list[Effect]:
        member = self.state.members.get(event.member_id)
        if member is None:
            return []
        if not member.may(Permission.CONTROL_PLAYBACK):
            raise Forbidden(f"role {member.role.value!r} may not control playback")
        playback = apply_intent(
            self.state.playback,
            event.intent,
            by=member.id,
            now=event.now,
            rules=self.rules,
            duration=self.state.duration,
        )
        if playback == self.state.playback:
            return []
        self.state.playback = playback
        return [Broadcast(PlaybackChanged(playback)), Persist()]
