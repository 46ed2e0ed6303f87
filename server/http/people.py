"""People over HTTP (docs/people.md): who I am, finding people of my own trust, and roles.

`GET /api/me` and `GET /api/people?q=` need a sign-in (the session cookie). `PATCH
/api/people/{id}` `{"roles": [...]}` takes the admin key (any role) or a signed-in leader of
the person's own school (`coach` only). Each role change is in the audit log.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.errors import Forbidden, NotFound
from server.http.admission import bearer, is_admin
from server.http.auth import actor_of_person
from server.http.request import read_json, worker_of
from server.http.signed_in import require_person
from server.people.model import Person, PersonRole
from server.people.rules import findable, may_grant, trust_of
from server.sync.audit import ADMIN

PRIVATE = {"Cache-Control": "no-store"}
MAX_FOUND = 50


class RolesChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    roles: list[PersonRole]


async def me(request: Request) -> Response:
    person = await require_person(request)
    return JSONResponse(person.public(), headers=PRIVATE)


async def find(request: Request) -> Response:
    worker = worker_of(request)
    person = await require_person(request)
    query = request.query_params.get("q", "")
    found = findable(worker.orgs, person, await worker.people.all(), query)[:MAX_FOUND]
    return JSONResponse(
        {
            "people": [
                {"id": p.id, "name": p.name, "org": p.org, "roles": list(p.roles)} for p in found
            ]
        },
        headers=PRIVATE,
    )


async def change_roles(request: Request) -> Response:
    worker = worker_of(request)
    granter: Person | None = None
    if not is_admin(worker, bearer(request.headers)):
        granter = await require_person(request)
    target = await worker.people.get(request.path_params["person"])
    if target is None or (
        granter is not None
        and trust_of(worker.orgs, granter.org) != trust_of(worker.orgs, target.org)
    ):
        raise NotFound("no such person that you may see")
    change = await read_json(request, RolesChange)
    wanted: set[PersonRole] = {*change.roles, "teacher"}
    for role in wanted.symmetric_difference(target.roles):
        if not may_grant(granter, target, role):
            raise Forbidden(
                f"you may not {'give' if role in wanted else 'take back'} the role {role!r}: "
                "the admin key may change any role, a leader of the person's school `coach`"
            )
    changed = await worker.people.set_roles(target, tuple(wanted))
    worker.audit.record(
        "person.roles",
        ADMIN if granter is None else actor_of_person(granter),
        remote=remote_of(request),
        person=target.id,
        before=",".join(target.roles),
        after=",".join(changed.roles),
    )
    return JSONResponse(changed.public(), headers=PRIVATE)
