"""Enrolling people without an identity provider (docs/people.md): what `cocoach person add`
and `cocoach login-link` do, against the store the server uses."""

from __future__ import annotations

from server.errors import NotFound
from server.orgs import Orgs
from server.people.directory import People
from server.people.model import Person, PersonRole
from server.settings import Settings
from server.sync.backend import open_store


async def add_person(
    settings: Settings, name: str, email: str, org: str | None, role: PersonRole | None
) -> Person:
    orgs = Orgs.parse(settings.orgs, settings.default_org)
    school = orgs.check_org(org, "--org") or settings.default_org
    async with open_store(settings) as store:
        roles: tuple[PersonRole, ...] = ("teacher", role) if role else ("teacher",)
        return await People(store).add(name=name, org=school, email=email, roles=roles)


async def login_link(settings: Settings, email: str, minutes: float | None) -> str:
    """A one-time sign-in link for a person added before."""
    async with open_store(settings) as store:
        people = People(store)
        person = await people.by_email(email)
        if person is None:
            raise NotFound(f"nobody is known by {email!r}: add them with `cocoach person add`")
        lifetime = 60 * (minutes or settings.login_link_minutes)
        secret = await people.make_link(person, lifetime)
    return f"{settings.base_url}/auth/link/{secret}"
