"""People (server/people/): who a signed-in person's school is, who may grant what, who finds
whom, and the directory over a real store (sign-ins, one-time links)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from server.errors import ConfigError, Conflict, NotFound
from server.orgs import Orgs
from server.people.directory import People
from server.people.model import Person
from server.people.rules import findable, may_grant, parse_domains, school_of
from server.sync.sqlite_store import SqliteStore

ORGS = Orgs.parse("north: ashby-primary, brook-academy; south: carlton-high", "ashby-primary")
DOMAINS = parse_domains("ashby.sch.uk: ashby-primary; Brook.sch.uk: brook-academy")


@pytest.mark.parametrize(
    ("claims", "claim", "domains", "school"),
    [
        ({"email": "tia@ashby.sch.uk"}, None, DOMAINS, "ashby-primary"),
        ({"email": "Bo@BROOK.sch.uk"}, None, DOMAINS, "brook-academy"),
        ({"email": "x@gmail.com"}, None, DOMAINS, None),  # no school: refused
        ({"email": "tia@ashby.sch.uk", "email_verified": False}, None, DOMAINS, None),
        ({"school": "carlton-high"}, "school", {}, "carlton-high"),
        ({"school": "elsewhere"}, "school", {}, None),  # not one of the trust's
        ({"school": ""}, "school", {}, None),
        ({"school": 7}, "school", {}, None),
        ({"email": "tia@ashby.sch.uk"}, "school", DOMAINS, "ashby-primary"),  # falls back
        ({}, None, {}, "default"),  # nothing configured: the one organisation
    ],
)
def test_the_school_of_a_signed_in_person(
    claims: dict[str, object], claim: str | None, domains: dict[str, str], school: str | None
) -> None:
    orgs = ORGS if school != "default" else Orgs.parse("", "default")
    assert school_of(claims, claim=claim, domains=domains, orgs=orgs) == school


@pytest.mark.parametrize("text", ["ashby.sch.uk", "a@b.uk: x", ": ashby", "ashby.sch.uk: bad id!"])
def test_bad_domain_maps_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_domains(text)


def person(pid: str, org: str, *roles: str, name: str = "") -> Person:
    return Person(pid, name or pid, org, roles=("teacher", *roles))  # type: ignore[arg-type]


def test_who_may_grant_a_role() -> None:
    leader = person("l", "ashby-primary", "leader")
    tia = person("t", "ashby-primary")
    assert may_grant(None, tia, "leader")  # the admin key
    assert may_grant(leader, tia, "coach")
    assert not may_grant(leader, tia, "leader")
    assert not may_grant(leader, person("b", "brook-academy"), "coach")  # another school
    assert not may_grant(person("c", "ashby-primary", "coach"), tia, "coach")


def test_people_are_found_in_ones_own_trust_only() -> None:
    me = person("me", "ashby-primary")
    people = [
        person("a", "ashby-primary", name="Ann Lee"),
        person("b", "brook-academy", name="Anna Bell"),
        person("c", "carlton-high", name="Annie Cole"),
    ]
    assert [p.id for p in findable(ORGS, me, people, "ann")] == ["a", "b"]
    assert findable(ORGS, me, people, "zz") == []


async def test_the_directory(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    people = People(store)
    cora = await people.add(name="Cora", org="ashby-primary", email="Cora@Ashby.sch.uk")
    assert cora.roles == ("teacher",) and cora.email == "cora@ashby.sch.uk"
    with pytest.raises(Conflict):
        await people.add(name="Other", org="ashby-primary", email="cora@ashby.sch.uk")
    # Signing in by the e-mail the admin added links the identity; the id stays.
    first = await people.signed_in_with(
        "https://idp", "s-1", name="Cora C", email="cora@ashby.sch.uk", org="ashby-primary"
    )
    assert first.id == cora.id and first.name == "Cora C"
    again = await people.signed_in_with(
        "https://idp", "s-1", name="Cora C", email=None, org="ashby-primary"
    )
    assert again.id == cora.id
    # The same subject at another issuer is another person.
    other = await people.signed_in_with(
        "https://other", "s-1", name="Cora", email="cora@ashby.sch.uk", org="ashby-primary"
    )
    assert other.id != cora.id and other.email is None
    coach = await people.set_roles(cora, ("coach",))
    assert (await people.get(cora.id)) == coach and coach.roles == ("teacher", "coach")

    signed_in = await people.open_sign_in(cora, 60.0, "link")
    assert (await people.sign_in(signed_in.id)) == signed_in
    await people.close_sign_in(signed_in.id)
    assert await people.sign_in(signed_in.id) is None
    expired = await people.open_sign_in(cora, -1.0, "link")
    assert await people.sign_in(expired.id) is None

    secret = await people.make_link(cora, 600.0)
    used = await asyncio.gather(
        *(people.use_link(secret) for _ in range(3)), return_exceptions=True
    )
    assert sum(isinstance(u, Person) for u in used) == 1
    assert sum(isinstance(u, NotFound) for u in used) == 2
    stale = await people.make_link(cora, -1.0)
    with pytest.raises(NotFound, match="expired"):
        await people.use_link(stale)
    assert time.time() > 0
    await store.close()
