"""WHEP over HTTP: `POST /rooms/{room}/whep` (offer in, answer out), `PATCH` on the returned
resource for trickle ICE, `DELETE` to leave (the WHEP draft, shaped as RFC 9725 shapes WHIP).
The session resources of WHIP (`whip.py`) are served by the same PATCH and DELETE."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from server.audit import remote_of
from server.errors import AuthError, Forbidden, UnsupportedMediaType
from server.http.admission import claims_for, presented_token, room_for
from server.http.request import read_body, worker_of
from server.media.ice import ice_servers_for
from server.media_wire import LeaveRequest, MediaReply, TrickleRequest, WatchRequest
from server.rooms.roles import Permission, permissions_for
from server.session.signaling import new_request_id
from server.session.worker import Worker
from server.tokens import Claims

SDP = "application/sdp"
SDP_FRAGMENT = "application/trickle-ice-sdpfrag"


_WHAT = {
    Permission.VIEW: "watch the lesson",
    Permission.HEAR_TALKBACK: "hear talk-back",
    Permission.PUBLISH: "publish a live lesson",
    Permission.TALKBACK: "talk back",
}


async def claims_with(request: Request, worker: Worker, needs: Permission) -> Claims:
    """The token's claims, if its role may do `needs` and its organisation may reach the room
    (docs/organisations.md)."""
    claims = claims_for(worker, presented_token(request), request.path_params["room"])
    if needs not in permissions_for(claims.role, claims.grants):
        raise Forbidden(f"role {claims.role.value!r} may not {_WHAT[needs]}")
    await room_for(worker, claims, request.path_params["room"])
    return claims


async def sdp_body(request: Request, content_type: str, limit: int) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise UnsupportedMediaType(f"the body must be {content_type}, not {given or 'nothing'}")
    body = await read_body(request, limit)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedMediaType("the body is not UTF-8 text") from None


async def watch(request: Request) -> Response:
    worker = worker_of(request)
    source = request.query_params.get("source", "auto")
    claims = await claims_with(
        request, worker, Permission.HEAR_TALKBACK if source == "talkback" else Permission.VIEW
    )
    room = request.path_params["room"]
    offer = await sdp_body(request, SDP, worker.settings.media_offer_max_bytes)
    reply = await worker.media.ask(
        WatchRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=room,
            user=claims.sub,
            name=claims.name,
            offer=offer,
            rendition=request.query_params.get("rendition", "360p"),
            source=source,
            role=claims.role.value,
            org=claims.org,
            remote=remote_of(request),
            member=request.query_params.get("member"),
        )
    )
    return answered(request, worker, claims, reply, "whep")


def answered(
    request: Request, worker: Worker, claims: Claims, reply: MediaReply, resource: str
) -> Response:
    """201 with the answer, the session's `Location`, and the ICE servers as `Link`s."""
    assert reply.session is not None and reply.answer is not None
    settings = worker.settings
    servers = ice_servers_for(
        [u.strip() for u in settings.ice_servers.split(",") if u.strip()],
        user=claims.sub,
        turn_secret=settings.turn_secret,
        turn_ttl=settings.turn_ttl,
    )
    room = request.path_params["room"]
    headers = {
        "Location": f"/rooms/{quote(room, safe='')}/{resource}/{reply.session}",
        "Accept-Patch": SDP_FRAGMENT,
    }
    response = Response(reply.answer, status_code=201, media_type=SDP, headers=headers)
    for server in servers:
        for link in server.links():
            response.headers.append("Link", link)
    return response


async def trickle(request: Request) -> Response:
    worker = worker_of(request)
    claims = await _session_claims(request, worker)
    fragment = await sdp_body(request, SDP_FRAGMENT, worker.settings.media_offer_max_bytes)
    await worker.media.ask(
        TrickleRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=request.path_params["room"],
            user=claims.sub,
            session=request.path_params["session"],
            fragment=fragment,
        )
    )
    return Response(status_code=204)


async def leave(request: Request) -> Response:
    worker = worker_of(request)
    claims = await _session_claims(request, worker)
    await worker.media.ask(
        LeaveRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=request.path_params["room"],
            user=claims.sub,
            session=request.path_params["session"],
        )
    )
    return Response(status_code=200)


async def _session_claims(request: Request, worker: Worker) -> Claims:
    """The token of whoever started the session: only they may change or end it."""
    token = presented_token(request)
    if not token:
        raise AuthError("this resource needs the viewer's token as Authorization: Bearer")
    claims = claims_for(worker, token, request.path_params["room"])
    await room_for(worker, claims, request.path_params["room"])
    return claims


async def options(request: Request) -> Response:
    return Response(
        status_code=204,
        headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"},
    )
