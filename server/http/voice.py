"""The room's conversation over HTTP (docs/conversation.md).

`POST /rooms/{room}/voice` is WHIP (RFC 9725): a member's microphone up and the room's mix
down on one audio section, their camera on an optional video section; `PATCH` and `DELETE` on
the returned resource as for every WHIP and WHEP session (whep.py). Whether the member may
speak is decided at the room's home, where the coach's word on observers is.

`GET /api/rooms/{room}/talk` (and `talk.csv`) reports who spoke when, never what: for the
room's coach and teacher and the admin key; observers are refused.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import actor_of, remote_of
from server.documents.export import csv_cell
from server.errors import Forbidden
from server.http.admission import bearer, claims_for, is_admin, presented_token, room_for
from server.http.request import worker_of
from server.http.whep import SDP, answered, claims_with, sdp_body
from server.media_wire import VoiceRequest
from server.rooms.roles import Permission, Role, permissions_for
from server.session import talk_record
from server.session.signaling import new_request_id
from server.session.worker import Worker
from server.sync.audit import Actor
from server.sync.store import RoomRecord

TALK_READERS = frozenset({Role.COACH, Role.TEACHER})
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def join(request: Request) -> Response:
    worker = worker_of(request)
    claims = await claims_with(request, worker, Permission.VIEW)
    offer = await sdp_body(request, SDP, worker.settings.media_offer_max_bytes)
    reply = await worker.media.ask(
        VoiceRequest(
            id=new_request_id(),
            reply_to=worker.id,
            room=request.path_params["room"],
            user=claims.sub,
            name=claims.name,
            offer=offer,
            role=claims.role.value,
            speak=Permission.SPEAK in permissions_for(claims.role, claims.grants),
            org=claims.org,
            remote=remote_of(request),
        )
    )
    return answered(request, worker, claims, reply, "voice")


async def talk_readable(request: Request) -> tuple[Worker, RoomRecord, Actor]:
    """The room, if the caller holds the admin key or a coach's or teacher's token for it."""
    worker = worker_of(request)
    room_id = request.path_params["room"]
    if is_admin(worker, bearer(request.headers)):
        return worker, await worker.room_record(room_id), actor_of(None)
    claims = claims_for(worker, presented_token(request), room_id)
    if claims.role not in TALK_READERS:
        raise Forbidden(
            f"role {claims.role.value!r} may not read how the conversation went; "
            "its coach and teacher may"
        )
    return worker, await room_for(worker, claims, room_id), actor_of(claims)


async def talk(request: Request) -> Response:
    worker, record, actor = await talk_readable(request)
    report = await talk_record.load(worker.store, record.id)
    worker.audit.record("talk.read", actor, room=record.id, remote=remote_of(request))
    return JSONResponse(report, headers=PRIVATE)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


async def talk_csv(request: Request) -> Response:
    """The stretches of talk, one row each, for a spreadsheet."""
    worker, record, actor = await talk_readable(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("sub", "name", "role", "start", "end", "seconds", "lesson_at"))
    for entry in sorted(await talk_record.entries(worker.store, record.id), key=_start):
        writer.writerow(
            (
                csv_cell(entry.sub),
                csv_cell(entry.name),
                entry.role,
                _iso(entry.start),
                _iso(entry.end),
                round(entry.end - entry.start, 2),
                "" if entry.lesson_at is None else entry.lesson_at,
            )
        )
    worker.audit.record("talk.read", actor, room=record.id, remote=remote_of(request), format="csv")
    headers = {
        **PRIVATE,
        "Content-Disposition": f'attachment; filename="cocoach-{record.id}-talk.csv"',
    }
    # The BOM is what makes Excel read the file as UTF-8 (as the notes' CSV does).
    body = out.getvalue().encode("utf-8-sig")
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


def _start(entry: talk_record.TalkEntry) -> float:
    return entry.start
