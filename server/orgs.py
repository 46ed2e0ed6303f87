"""Organisations (docs/organisations.md): schools grouped into trusts, and who may reach what.

Pure: no I/O. The trust's IT staff list the organisations in one setting, `COCOACH_ORGS`:

    north-trust: ashby-primary, brook-academy; south-trust: carlton-high

Each school belongs to the trust before its colon; the trust's own id is an organisation too
(its central team: a trust-employed coach carries `org: north-trust`). Nothing is shared
implicitly between a trust and its schools: a room admits its own organisation and the
organisations it names in `shared`, each of which must be in the room's trust.

A deployment with no `COCOACH_ORGS` is one implicit organisation, `default_org`: `org` claims
and room `org` fields are then labels only, and every token reaches every room as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from server.errors import (
    ConfigError,
    InvalidField,
    OrgForbidden,
    OrgRequired,
    OrgUnknown,
    ShareOutsideTrust,
    TokenOrgUnknown,
)

ORG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SHARED = 20


@dataclass(frozen=True)
class Orgs:
    default: str
    trust: Mapping[str, str] = field(default_factory=dict)  # org -> its trust; empty: no orgs

    @property
    def configured(self) -> bool:
        return bool(self.trust)

    @classmethod
    def parse(cls, text: str, default: str) -> Orgs:
        """The `COCOACH_ORGS` setting; ConfigError naming what is wrong."""
        if not ORG_ID.match(default):
            raise ConfigError(f"COCOACH_DEFAULT_ORG {default[:64]!r} is not an organisation id")
        trust: dict[str, str] = {}
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            name, colon, schools = part.partition(":")
            name = name.strip()
            if not colon or not ORG_ID.match(name):
                raise ConfigError(
                    f"COCOACH_ORGS: {part[:80]!r} is not 'trust: school, school' "
                    "(ids of 1-64 characters of A-Z a-z 0-9 _ -)"
                )
            for org in [name, *(s.strip() for s in schools.split(",") if s.strip())]:
                if not ORG_ID.match(org):
                    raise ConfigError(f"COCOACH_ORGS: {org[:80]!r} is not an organisation id")
                if trust.get(org, name) != name or (org == name and org in trust):
                    raise ConfigError(f"COCOACH_ORGS names {org!r} twice")
                trust[org] = name
        if trust and default not in trust:
            raise ConfigError(
                f"COCOACH_DEFAULT_ORG {default!r} is not in COCOACH_ORGS: set it to the "
                "organisation that owns rooms and videos made before organisations were set up"
            )
        return cls(default=default, trust=trust)

    def schools_of(self, trust: str) -> list[str]:
        """The organisations of `trust`, sorted."""
        return sorted(org for org, theirs in self.trust.items() if theirs == trust)

    def owning(self, org: str | None) -> str:
        """The organisation a room or video record belongs to (records from before
        organisations carry none: they are the default organisation's)."""
        if not self.configured:
            return self.default
        return org or self.default

    def of_token(self, org: str | None) -> str:
        """The organisation of a token's holder. With organisations configured a token must
        name one: a portal that forgot the claim must not land its users in some school."""
        if not self.configured:
            return self.default
        if org is None:
            raise OrgRequired(
                "this server has organisations: the token needs an `org` claim naming one"
            )
        if org not in self.trust:
            raise TokenOrgUnknown(
                f"the token's org {org[:64]!r} is not an organisation of this server"
            )
        return org

    def check_org(self, org: str | None, what: str) -> str | None:
        """An `org` field given to the API or CLI, as the record keeps it: without
        organisations a free label (kept as given), with them a configured one (the default
        organisation when none is given)."""
        if not self.configured:
            return org
        if org is None:
            return self.default
        if org not in self.trust:
            raise OrgUnknown(
                f"{what} {org[:64]!r} is not an organisation of this server "
                f"(COCOACH_ORGS lists {sorted(self.trust)})"
            )
        return org

    def check_shared(self, room_org: str, shared: Iterable[str]) -> tuple[str, ...]:
        """The organisations a room is shared with, validated: each configured, in the room's
        trust, not the room's own; sorted, without repeats."""
        names = sorted(set(shared))
        if not names:
            return ()
        if not self.configured:
            raise OrgUnknown(
                "this server has no organisations (COCOACH_ORGS): there is no one to share with"
            )
        if len(names) > MAX_SHARED:
            raise InvalidField(f"shared may name at most {MAX_SHARED} organisations")
        room_trust = self.trust[self.owning(room_org)]
        for org in names:
            if org not in self.trust:
                raise OrgUnknown(f"shared: {org[:64]!r} is not an organisation of this server")
            if org == room_org:
                raise InvalidField(f"shared: {org!r} is the room's own organisation")
            if self.trust[org] != room_trust:
                raise ShareOutsideTrust(
                    f"shared: {org!r} is in trust {self.trust[org]!r}, not in the room's trust "
                    f"{room_trust!r}; rooms are shared only within their trust"
                )
        return tuple(names)

    def admits(self, room_org: str | None, shared: Iterable[str], org: str) -> bool:
        if not self.configured:
            return True
        owner = self.owning(room_org)
        # Sharing is checked again here: a trust reorganised since the room was shared must
        # not leave a door open to a school that has left it.
        return org == owner or (org in shared and self.trust.get(org) == self.trust.get(owner))

    def check_admits(
        self, room_id: str, room_org: str | None, shared: Iterable[str], org: str
    ) -> None:
        if not self.admits(room_org, shared, org):
            raise OrgForbidden(
                f"room {room_id!r} belongs to another organisation and is not shared with {org!r}"
            )
