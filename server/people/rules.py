"""Who a signed-in person is at the trust, and who may do what to whom: pure functions.

A person's school comes from the identity provider's claims, either a claim the provider sets
(`COCOACH_OIDC_ORG_CLAIM`) or the e-mail's domain (`COCOACH_OIDC_ORG_DOMAINS`: "ashby.sch.uk:
ashby-primary; brook.sch.uk: brook-academy"). A person whose school cannot be told is refused,
never let into a default school.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from server.errors import ConfigError
from server.orgs import ORG_ID, Orgs
from server.people.model import Person, PersonRole

MAX_QUERY = 100


def parse_domains(text: str) -> dict[str, str]:
    """`COCOACH_OIDC_ORG_DOMAINS`; ConfigError naming the part that is wrong."""
    domains: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        domain, colon, org = (s.strip() for s in part.partition(":"))
        if not colon or not domain or "@" in domain or not ORG_ID.match(org):
            raise ConfigError(f"COCOACH_OIDC_ORG_DOMAINS: {part[:80]!r} is not 'domain: school'")
        domains[domain.lower()] = org
    return domains


def school_of(
    claims: Mapping[str, object], *, claim: str | None, domains: Mapping[str, str], orgs: Orgs
) -> str | None:
    """The person's school from their ID token's claims, if it can be told and is one of the
    trust's (with no organisations configured, the one organisation)."""
    found: str | None = None
    if claim:
        value = claims.get(claim)
        found = value if isinstance(value, str) and value else None
    if found is None and domains:
        email = claims.get("email")
        verified = claims.get("email_verified", True)
        if isinstance(email, str) and "@" in email and verified is not False:
            found = domains.get(email.rsplit("@", 1)[1].lower())
    if found is None:
        return None if (claim or domains) else orgs.default
    if orgs.configured and found not in orgs.trust:
        return None
    return found


def trust_of(orgs: Orgs, org: str) -> str:
    """The trust a school belongs to (itself when organisations are not configured)."""
    return orgs.trust.get(org, org) if orgs.configured else orgs.default


def findable(orgs: Orgs, me: Person, people: Iterable[Person], query: str) -> list[Person]:
    """People of my own trust whose name holds `query` (case-insensitive), for choosing a
    coach or a group member; nobody of another trust."""
    wanted = query.strip().lower()[:MAX_QUERY]
    mine = trust_of(orgs, me.org)
    return sorted(
        (p for p in people if trust_of(orgs, p.org) == mine and wanted in p.name.lower()),
        key=lambda p: (p.name.lower(), p.id),
    )


def may_grant(granter: Person | None, target: Person, role: PersonRole) -> bool:
    """Who may give or take a role: the admin key (`granter` None) any; a leader of the
    target's own school `coach`; nobody else."""
    if granter is None:
        return True
    return role == "coach" and granter.has("leader") and granter.org == target.org
