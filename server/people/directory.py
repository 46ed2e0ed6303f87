"""The people of the trust, their sign-ins and their one-time sign-in links, as typed records in
the store (DESIGN §6): the same records whichever store, so any worker knows a person and
accepts a session cookie another worker made."""

from __future__ import annotations

import hashlib
import secrets
import time

import msgspec

from server.errors import Conflict, InvalidField, NotFound
from server.people.model import (
    LoginLink,
    Person,
    PersonRole,
    SignedIn,
    identity,
    new_person_id,
)
from server.sync.store import Store

PEOPLE = "person"
IDENTITIES = "identity"  # issuer|subject -> person id
EMAILS = "email"  # lower-cased e-mail -> person id
SIGN_INS = "signin"
LINKS = "loginlink"  # sha256 of the link's secret -> LoginLink
MAX_NAME = 200
MAX_EMAIL = 320


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class People:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._person = msgspec.msgpack.Decoder(Person)
        self._signed_in = msgspec.msgpack.Decoder(SignedIn)
        self._link = msgspec.msgpack.Decoder(LoginLink)

    # ---- people -------------------------------------------------------------------------

    async def get(self, person_id: str) -> Person | None:
        data = await self._store.get_record(PEOPLE, person_id)
        return None if data is None else self._person.decode(data)

    async def all(self) -> list[Person]:
        return [self._person.decode(d) for d in await self._store.list_records(PEOPLE)]

    async def by_email(self, email: str) -> Person | None:
        found = await self._store.get_record(EMAILS, email.strip().lower())
        return None if found is None else await self.get(found.decode())

    async def by_identity(self, issuer: str, subject: str) -> Person | None:
        found = await self._store.get_record(IDENTITIES, identity(issuer, subject))
        return None if found is None else await self.get(found.decode())

    async def save(self, person: Person) -> None:
        await self._store.put_record(PEOPLE, person.id, msgspec.msgpack.encode(person))

    async def add(
        self,
        *,
        name: str,
        org: str,
        email: str | None = None,
        roles: tuple[PersonRole, ...] = ("teacher",),
        identities: tuple[str, ...] = (),
    ) -> Person:
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME:
            raise InvalidField(f"name must be 1-{MAX_NAME} characters")
        if email is not None:
            email = email.strip().lower()
            if not 3 <= len(email) <= MAX_EMAIL or "@" not in email:
                raise InvalidField("email must be an e-mail address")
            if await self.by_email(email) is not None:
                raise Conflict(f"someone is already known by {email!r}")
        person = Person(
            id=new_person_id(),
            name=name,
            org=org,
            email=email,
            roles=tuple(sorted({"teacher", *roles}, key=("teacher", "coach", "leader").index)),
            identities=identities,
            created=time.time(),
        )
        await self.save(person)
        if email is not None:
            await self._store.put_record(EMAILS, email, person.id.encode())
        for known in identities:
            await self._store.put_record(IDENTITIES, known, person.id.encode())
        return person

    async def signed_in_with(
        self, issuer: str, subject: str, *, name: str, email: str | None, org: str
    ) -> Person:
        """The person an identity provider vouched for: known by this (issuer, subject), or
        added by the admin with this e-mail and not signed in yet (the identity is then
        linked), or new. A person id is stable across sign-ins and distinct across issuers."""
        known = await self.by_identity(issuer, subject)
        if known is None and email is not None:
            by_email = await self.by_email(email)
            # Only a person the admin added, whom no provider vouched for yet: an account
            # at another issuer with the same e-mail is another person (issuers are not
            # trusted to speak for each other's people).
            if by_email is not None and not by_email.identities:
                known = msgspec.structs.replace(
                    by_email, identities=(*by_email.identities, identity(issuer, subject))
                )
                await self.save(known)
                await self._store.put_record(
                    IDENTITIES, identity(issuer, subject), known.id.encode()
                )
        if known is None:
            taken = email is not None and await self.by_email(email) is not None
            return await self.add(
                name=name or (email or subject),
                org=org,
                email=None if taken else email,
                identities=(identity(issuer, subject),),
            )
        changed = msgspec.structs.replace(known, name=name or known.name, org=org)
        if changed != known:
            await self.save(changed)
        return changed

    async def set_roles(self, person: Person, roles: tuple[PersonRole, ...]) -> Person:
        ordered = tuple(sorted({"teacher", *roles}, key=("teacher", "coach", "leader").index))
        changed = msgspec.structs.replace(person, roles=ordered)
        await self.save(changed)
        return changed

    # ---- sign-ins -----------------------------------------------------------------------

    async def open_sign_in(self, person: Person, lifetime: float, how: str) -> SignedIn:
        now = time.time()
        signed_in = SignedIn(secrets.token_urlsafe(24), person.id, now, now + lifetime, how)
        await self._store.put_record(SIGN_INS, signed_in.id, msgspec.msgpack.encode(signed_in))
        return signed_in

    async def sign_in(self, sign_in_id: str) -> SignedIn | None:
        """The sign-in, while it lasts (an ended or expired one is None)."""
        data = await self._store.get_record(SIGN_INS, sign_in_id)
        if data is None:
            return None
        signed_in = self._signed_in.decode(data)
        if signed_in.expires < time.time():
            await self._store.delete_record(SIGN_INS, sign_in_id)
            return None
        return signed_in

    async def close_sign_in(self, sign_in_id: str) -> None:
        await self._store.delete_record(SIGN_INS, sign_in_id)

    # ---- one-time links -----------------------------------------------------------------

    async def make_link(self, person: Person, lifetime: float) -> str:
        """A new one-time sign-in secret; only its hash is kept."""
        secret = secrets.token_urlsafe(32)
        link = LoginLink(person.id, time.time() + lifetime)
        await self._store.put_record(LINKS, _hash(secret), msgspec.msgpack.encode(link))
        return secret

    async def use_link(self, secret: str) -> Person:
        """The link's person; the link is gone after this, used or not. NotFound if it was
        never made, was used, or expired."""
        data = await self._store.take_record(LINKS, _hash(secret))
        if data is None:
            raise NotFound("this sign-in link was used already, or never existed")
        link = self._link.decode(data)
        if link.expires < time.time():
            raise NotFound("this sign-in link has expired; ask for a new one")
        person = await self.get(link.person)
        if person is None:
            raise NotFound("this sign-in link's person no longer exists")
        return person
