"""WHEP over HTTP: `POST /rooms/{room}/whep` (offer in, answer out), `PATCH` on the returned
resource for trickle ICE, `DELETE` to leave (the WHEP draft, shaped as RFC 9725 shapes WHIP)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from server.api import read_body
from server.codec import LeaveRequest, TrickleRequest, WatchRequest
from server.errors import AuthError, Forbidden, UnsupportedMediaType
from server.media.ice import ice_servers_for
from server.media.signaling import new_request_id
from server.rooms.roles import Permission, permissions_for
from server.session.admission import claims_for, presented_token
from server.session.worker import Worker
from server.tokens import Claims

SDP = "application/sdp"
SDP_FRAGMENT = "application/trickle-ice-sdpfrag"


def _worker(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


def _viewer_claims(request: Request, worker: Worker) -> Claims:
    claims = claims_for(worker, presented_token(request), request.path_params["room"])
    if Permission.VIEW not in permissions_for(claims.role, claims.grants):
        raise Forbidden(f"role {claims.role.value!r} may not watch the lesson")
    return claims


async def _body(request: Request, content_type: str, limit: int) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise UnsupportedMediaType(f"the body must be {content_type}, not {given or 'nothing'}")
    body = await read_body(request, limit)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedMediaType("the body is not UTF-8 text") from None


async def watch(request: Request) -> Response:
    worker = _worker(request)
    claims = _viewer_claims(request, worker)
    room = request.path_params["room"]
    offer = await _body(request, SDP, worker.settings.media_offer_max_bytes)
    reply = await worker.media.ask(
        WatchRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=room,
            user=claims.sub,
            name=claims.name,
            offer=offer,
            rendition=request.query_params.get("rendition", "360p"),
        )
    )
    assert reply.session is not None and reply.answer is not None
    settings = worker.settings
    servers = ice_servers_for(
        [u.strip() for u in settings.ice_servers.split(",") if u.strip()],
        user=claims.sub,
        turn_secret=settings.turn_secret,
        turn_ttl=settings.turn_ttl,
    )
    headers = {
        "Location": f"/rooms/{quote(room, safe='')}/whep/{reply.session}",
        "Accept-Patch": SDP_FRAGMENT,
    }
    response = Response(reply.answer, status_code=201, media_type=SDP, headers=headers)
    for server in servers:
        for link in server.links():
            response.headers.append("Link", link)
    return response


async def trickle(request: Request) -> Response:
    worker = _worker(request)
    claims = _session_claims(request, worker)
    fragment = await _body(request, SDP_FRAGMENT, worker.settings.media_offer_max_bytes)
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
    worker = _worker(request)
    claims = _session_claims(request, worker)
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


def _session_claims(request: Request, worker: Worker) -> Claims:
    """The token of whoever started the session: only they may change or end it."""
    token = presented_token(request)
    if not token:
        raise AuthError("this resource needs the viewer's token as Authorization: Bearer")
    return claims_for(worker, token, request.path_params["room"])


async def options(request: Request) -> Response:
    return Response(
        status_code=204,
        headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"},
    )
