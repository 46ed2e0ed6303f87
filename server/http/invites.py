"""`POST /api/rooms/{room}/invites` (admin key): invite links for a room, one per person.

The admin page uses it to hand out links without a command line; it mints exactly what
`cocoach token` mints (server/tokens.py), so a trust's own portal remains the other way.

Body (every key optional; with organisations configured `org` defaults to the room's own and
must be it or one the room is shared with, docs/organisations.md):

    {"ttl": 28800, "org": "north-trust",
     "invites": [{"role": "coach", "name": "Ann Lee", "sub": "staff-1042"}, ...]}

Without `invites`: one coach, one teacher and one observer invite, named after the role.
Answer 201: {"room", "expires", "invites": [{"role", "name", "sub", "token", "path", "url"}]}.
`path` is `/r/{room}?token=…`; `url` puts it on the server's public address.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.errors import InvalidField
from server.http.request import check_admin, read_json, worker_of
from server.rooms.roles import Role
from server.sync.audit import ADMIN
from server.tokens import mint, new_sub

DEFAULT_TTL = 8 * 3600.0
MAX_TTL = 7 * 24 * 3600.0  # a week, as docs/protocol.md suggests for token lifetimes
MAX_INVITES = 20
DEFAULT_ROLES = (Role.COACH, Role.TEACHER, Role.OBSERVER)


class Invite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    name: str
    sub: str | None = None


class NewInvites(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl: float = DEFAULT_TTL
    org: str | None = None
    invites: list[Invite] | None = None


def _check(body: NewInvites, max_ttl: float) -> list[Invite]:
    if not 60 <= body.ttl <= max_ttl:
        raise InvalidField(f"ttl must be 60 to {max_ttl:.0f} seconds")
    if body.org is not None and not 1 <= len(body.org) <= 200:
        raise InvalidField("org must be 1-200 characters")
    invites = body.invites
    if invites is None:
        invites = [Invite(role=r.value, name=r.value.title()) for r in DEFAULT_ROLES]
    if not 1 <= len(invites) <= MAX_INVITES:
        raise InvalidField(f"invites must list 1 to {MAX_INVITES} people")
    roles = {r.value for r in Role}
    for i, invite in enumerate(invites):
        if invite.role not in roles:
            raise InvalidField(f"invites[{i}].role must be one of {sorted(roles)}")
        if not 1 <= len(invite.name.strip()) <= 200:
            raise InvalidField(f"invites[{i}].name must be 1-200 characters")
        if invite.sub is not None and not 1 <= len(invite.sub) <= 200:
            raise InvalidField(f"invites[{i}].sub must be 1-200 characters")
    return invites


async def create_invites(request: Request) -> Response:
    worker = worker_of(request)
    check_admin(request, worker)
    body = await read_json(request, NewInvites)
    invites = _check(body, MAX_TTL)
    record = await worker.current_room_record(request.path_params["room"])  # 404: no room
    org = body.org
    if worker.orgs.configured:
        # An invite is for the room's own school unless it names one the room is shared with.
        invited = worker.orgs.owning(record.org) if org is None else org
        if worker.orgs.check_org(invited, "org") is not None:
            worker.orgs.check_admits(record.id, record.org, record.shared, invited)
        org = invited
    secret = worker.settings.secret
    assert secret is not None, "secrets are filled in at start-up"
    now = time.time()
    made = []
    for invite in invites:
        name = invite.name.strip()
        sub = invite.sub or new_sub()  # a person of its own, whatever the name
        token = mint(
            secret,
            room=record.id,
            role=Role(invite.role),
            name=name,
            sub=sub,
            ttl=body.ttl,
            org=org,
            now=now,
        )
        path = f"/r/{quote(record.id, safe='')}?token={token}"
        made.append(
            {
                "role": invite.role,
                "name": name,
                "sub": sub,
                "token": token,
                "path": path,
                "url": worker.settings.base_url + path,
            }
        )
    # Who was invited and as what, never the tokens: a token in the log is a key in the log.
    worker.audit.record(
        "invites.create",
        ADMIN,
        room=record.id,
        remote=remote_of(request),
        count=len(made),
        invited=", ".join(f"{i['name']} ({i['role']}, {i['sub']})" for i in made),
        ttl=body.ttl,
        org=body.org,
    )
    return JSONResponse(
        {"room": record.id, "expires": int(now + body.ttl), "invites": made},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )
