"""WHIP (RFC 9725): `POST /rooms/{room}/whip` publishes the live lesson (role `camera` or
`teacher`), `POST /rooms/{room}/talkback` a coach's microphone for the teacher's earpiece.
Offer in, 201 with the answer and a `Location` out; that resource takes `PATCH` (trickle ICE)
and `DELETE` (stop) like a WHEP session's (whep.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.audit import remote_of
from server.http.request import worker_of
from server.http.whep import SDP, answered, claims_with, sdp_body
from server.media_wire import PublishRequest
from server.rooms.roles import Permission, permissions_for
from server.session.signaling import new_request_id


async def publish(request: Request) -> Response:
    return await _offer(request, talkback=False)


async def talk(request: Request) -> Response:
    return await _offer(request, talkback=True)


async def _offer(request: Request, *, talkback: bool) -> Response:
    worker = worker_of(request)
    needs = Permission.TALKBACK if talkback else Permission.PUBLISH
    claims = await claims_with(request, worker, needs)
    offer = await sdp_body(request, SDP, worker.settings.media_offer_max_bytes)
    permissions = permissions_for(claims.role, claims.grants)
    reply = await worker.media.ask(
        PublishRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=request.path_params["room"],
            user=claims.sub,
            name=claims.name,
            offer=offer,
            talkback=talkback,
            # The classroom device may be the earpiece, on its own connection.
            earpiece=not talkback and Permission.HEAR_TALKBACK in permissions,
            role=claims.role.value,
            org=claims.org,
            remote=remote_of(request),
        )
    )
    return answered(request, worker, claims, reply, "talkback" if talkback else "whip")
