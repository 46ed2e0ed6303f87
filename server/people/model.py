"""A person, and what signing in leaves behind: typed records kept in the store."""

from __future__ import annotations

import secrets
from typing import Literal

import msgspec

PersonRole = Literal["teacher", "coach", "leader"]
ROLES: tuple[PersonRole, ...] = ("teacher", "coach", "leader")


class Person(msgspec.Struct, frozen=True):
    """Everyone is a teacher; `coach` and `leader` are granted. `identities` are the
    (issuer, subject) pairs that sign in as this person, written `issuer|subject`."""

    id: str
    name: str
    org: str
    email: str | None = None
    roles: tuple[PersonRole, ...] = ("teacher",)
    identities: tuple[str, ...] = ()
    created: float = 0.0

    def has(self, role: PersonRole) -> bool:
        return role in self.roles

    def public(self) -> dict[str, object]:
        """What `GET /api/me` shows of a person."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "org": self.org,
            "roles": list(self.roles),
        }


class SignedIn(msgspec.Struct, frozen=True):
    """One sign-in: what the session cookie names. Deleted at sign-out."""

    id: str
    person: str
    created: float
    expires: float
    how: str  # "oidc:<issuer>" or "link"


class LoginLink(msgspec.Struct, frozen=True):
    """A one-time sign-in link, kept by the hash of its secret."""

    person: str
    expires: float


def new_person_id() -> str:
    return "p-" + secrets.token_hex(8)


def identity(issuer: str, subject: str) -> str:
    return f"{issuer}|{subject}"
