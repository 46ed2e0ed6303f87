"""A member is one connection in a room: who, with which role, on which worker."""

from __future__ import annotations

import msgspec

from server.messages import MemberInfo, Scalar, VoiceInfo
from server.rooms.roles import Permission, Role


class Member(msgspec.Struct, frozen=True):
    id: str
    user: str
    name: str
    role: Role
    worker: str  # the worker holding the connection; its loss means this member is gone
    permissions: frozenset[Permission]
    status: str = "here"
    state: dict[str, Scalar] = msgspec.field(default_factory=dict)
    org: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def info(self, voice: VoiceInfo | None = None) -> MemberInfo:
        """What the others see of this member; `voice`: its user's part in the conversation."""
        return MemberInfo(
            id=self.id,
            user=self.user,
            name=self.name,
            role=self.role.value,
            status=self.status,
            state=self.state,
            org=self.org,
            voice=voice if voice is not None else VoiceInfo(),
            speak=Permission.SPEAK in self.permissions,
        )
