"""What the room asks its shell to do. The shell runs them in order."""

from __future__ import annotations

from dataclasses import dataclass

from server.messages import ServerMessage


@dataclass(frozen=True, slots=True)
class Send:
    """One member gets `message`."""

    to: str
    message: ServerMessage


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Every member but `exclude` gets `message`."""

    message: ServerMessage
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class Persist:
    """The room's durable state changed: snapshot it so a new home starts from here."""


@dataclass(frozen=True, slots=True)
class EndVoice:
    """End `user`'s voice session at the home (they may no longer speak)."""

    user: str
    reason: str


Effect = Send | Broadcast | Persist | EndVoice
