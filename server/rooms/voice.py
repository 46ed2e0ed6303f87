"""The conversation's rules (docs/conversation.md): who may speak, and what the others see of
each member's microphone and camera. Pure, like the rest of the room.

A member's part in the conversation belongs to its user (the token's `sub`): one person, one
microphone, however many tabs. The home's media side reports what it knows (a voice session
is up, with a camera or not; its voice detector hears speech or not); the member reports its
own mute. Coach and teacher may speak by default; an observer only while the room's coach
lets them (`allow_speak`), which the room remembers for that user across reconnects.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from server.errors import Forbidden, NotFound
from server.messages import AllowSpeak, MemberUpdated, Mute, VoiceInfo
from server.rooms.effects import Broadcast, Effect, EndVoice, Persist
from server.rooms.member import Member
from server.rooms.roles import Permission, Role


class VoiceState(msgspec.Struct, frozen=True):
    connected: bool = False  # a voice session of this user is up at the home
    camera: bool = False  # it sends a camera
    speaking: bool = False  # the voice detector hears this user now
    muted: bool = False  # the member said its microphone is muted

    def info(self) -> VoiceInfo:
        live = self.connected and not self.muted
        return VoiceInfo(
            mic=live, camera=self.connected and self.camera, speaking=live and self.speaking
        )


def admit(member: Member, speakers: Mapping[str, bool]) -> Member:
    """The member with the room's word on whether it may speak: an observer may while the
    coach lets it; coach and teacher keep what their tokens say."""
    grant = speakers.get(member.user)
    if member.role is not Role.OBSERVER or grant is None:
        return member
    permissions = (
        member.permissions | {Permission.SPEAK}
        if grant
        else member.permissions - {Permission.SPEAK}
    )
    return msgspec.structs.replace(member, permissions=frozenset(permissions))


def may_speak(role: Role, token_speak: bool, grant: bool | None) -> bool:
    """Whether a voice session may start: what the token says, unless the room's coach said
    otherwise for this observer."""
    if role is Role.OBSERVER and grant is not None:
        return grant
    return token_speak


class VoiceRules:
    """The voice part of a room's state: `voices` and `speakers` are the room's own dicts."""

    def __init__(
        self,
        members: dict[str, Member],
        voices: dict[str, VoiceState],
        speakers: dict[str, bool],
    ) -> None:
        self.members = members
        self.voices = voices
        self.speakers = speakers

    def info_of(self, member: Member) -> VoiceInfo:
        voice = self.voices.get(member.user)
        return voice.info() if voice is not None else VoiceInfo()

    def control(self, member_id: str, message: Mute | AllowSpeak) -> list[Effect]:
        member = self.members.get(member_id)
        if member is None:
            return []
        match message:
            case Mute(muted=muted):
                voice = self.voices.get(member.user, VoiceState())
                return self._set(member.user, msgspec.structs.replace(voice, muted=muted))
            case AllowSpeak(user=user, allowed=allowed):
                return self._allow(member, user, allowed)

    def report(self, user: str, connected: bool, camera: bool, speaking: bool) -> list[Effect]:
        """The home's media side: `user`'s voice session (dis)connected, its camera, its
        speech. A mute survives its session: a page that rejoins stays muted."""
        voice = self.voices.get(user, VoiceState())
        effects = self._set(
            user,
            msgspec.structs.replace(
                voice,
                connected=connected,
                camera=camera and connected,
                speaking=speaking and connected,
            ),
        )
        if not connected and not any(m.user == user for m in self.members.values()):
            del self.voices[user]  # a WHIP client with no page in the room: nothing to keep
        return effects

    def forget(self, user: str) -> None:
        """No member of `user` is left: its mute goes with it (its session, if any, stays
        reported)."""
        voice = self.voices.get(user)
        if voice is not None and not voice.connected:
            del self.voices[user]

    def _set(self, user: str, voice: VoiceState) -> list[Effect]:
        before = self.voices.get(user, VoiceState())
        self.voices[user] = voice
        if before.info() == voice.info():
            return []
        return self._updated(user)

    def _updated(self, user: str) -> list[Effect]:
        voice = self.voices.get(user, VoiceState()).info()
        return [
            Broadcast(MemberUpdated(m.info(voice))) for m in self.members.values() if m.user == user
        ]

    def _allow(self, member: Member, user: str, allowed: bool) -> list[Effect]:
        if not member.may(Permission.ALLOW_SPEAK):
            raise Forbidden(f"role {member.role.value!r} may not let others speak")
        targets = [m for m in self.members.values() if m.user == user]
        if not targets:
            raise NotFound(f"nobody with user {user[:64]!r} is in the room")
        if any(m.role is not Role.OBSERVER for m in targets):
            raise Forbidden("only an observer's speaking can be allowed or taken back")
        self.speakers[user] = allowed
        for target in targets:
            self.members[target.id] = admit(target, self.speakers)
        effects: list[Effect] = [*self._updated(user), Persist()]
        if not allowed:
            effects.append(EndVoice(user, "the coach took back speaking"))
        return effects
