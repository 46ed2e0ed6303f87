"""Letting a client in: the token, from a header or the query string, checked for the room."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from server.edge.origin import origin_allowed
from server.errors import (
    AuthError,
    CocoachError,
    Forbidden,
    OrgUnknown,
    OriginRefused,
    RoomNotFound,
    ServiceUnavailable,
)
from server.http.clip_rooms import role_in_clip_room
from server.rooms.roles import Permission, permissions_for
from server.session.worker import Worker
from server.sync.store import RoomRecord
from server.tokens import Claims, verify


def bearer(headers: Headers) -> str | None:
    header = headers.get("authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


def presented_token(connection: HTTPConnection) -> str | None:
    """The token a client presents: `Authorization: Bearer`, else the `token` query parameter
    (browsers cannot set headers on a WebSocket, nor some players on a WHEP request)."""
    return bearer(connection.headers) or connection.query_params.get("token")


def is_admin(worker: Worker, given: str | None) -> bool:
    expected = worker.settings.admin_key or ""
    return bool(given and expected and hmac.compare_digest(given.encode(), expected.encode()))


def claims_for(worker: Worker, token: str | None, room: str) -> Claims:
    assert worker.settings.secret is not None, "secrets are filled in at start-up"
    return verify(worker.settings.secret, token, room=room)


async def room_for(worker: Worker, claims: Claims, room_id: str) -> RoomRecord:
    """The room, if the token's organisation may reach it: the room's own, or one it is
    shared with (docs/organisations.md). Every route that names a room comes through here
    (or through `check_admin`), so this is the one place the rule lives."""
    org = worker.orgs.of_token(claims.org)
    if not worker.orgs.configured:
        record = await worker.room_record(room_id)
    else:
        record = await worker.current_room_record(room_id)
        worker.orgs.check_admits(record.id, record.org, record.shared, org)
    if record.clip is not None and await role_in_clip_room(worker, record, claims.sub) is None:
        # A room of a clip: its people are the group's, and the clip's shares, as they are now.
        raise Forbidden(
            "you are no longer one of this clip room's people: "
            "you left the group, or the clip is no longer shared with it"
        )
    return record


async def admit(
    websocket: WebSocket, worker: Worker, *, needs: Permission | None = None
) -> tuple[Claims, frozenset[Permission], RoomRecord] | None:
    """Accept the socket, then check its token and room; on failure close it with the error's
    code and reason and return None. Accepting first matters: a browser cannot read why a
    handshake was refused, but it can read a close code and reason."""
    room_id = websocket.path_params["room"]
    await websocket.accept()
    try:
        check_origin(websocket, worker)
        claims = claims_for(worker, presented_token(websocket), room_id)
        permissions = permissions_for(claims.role, claims.grants)
        if needs is not None and needs not in permissions:
            raise Forbidden(f"role {claims.role.value!r} lacks the {needs.value!r} permission")
        record = await room_for(worker, claims, room_id)
    # OriginRefused is a Forbidden
    except (AuthError, RoomNotFound, Forbidden, OrgUnknown, ServiceUnavailable) as error:
        await close_with(websocket, error)
        return None
    return claims, permissions, record


def check_origin(websocket: WebSocket, worker: Worker) -> None:
    """Refuse a browser page from another origin (docs/operations.md#web-security)."""
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), worker.allowed_origins):
        raise OriginRefused(
            f"pages from {origin[:60]!r} may not connect here (allowed_origins)"
            if origin
            else "no origin"
        )


async def close_with(websocket: WebSocket, error: CocoachError) -> None:
    await websocket.close(error.close_code, f"{error.code}: {error.message}"[:120])
