"""REST for a room's shared document: exports for the teacher's portfolio, the summary a
chart needs, and the tag frameworks rooms can use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from pycrdt import Doc, Map
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import actor_of, remote_of
from server.documents.export import (
    export_csv,
    export_json,
    export_vtt,
    export_web_annotation,
    summary,
)
from server.documents.lessons import NOTES_BOUND, unbound_notes
from server.errors import Forbidden, InvalidField, NotFound
from server.http.admission import bearer, claims_for, is_admin, presented_token, room_for
from server.http.request import worker_of
from server.rooms.roles import Permission, permissions_for
from server.session import talk_record
from server.session.worker import Worker
from server.sync.audit import Actor
from server.sync.store import RoomRecord

Make = Callable[[Doc[Any], RoomRecord, str, str | None], bytes]
# format -> (media type, how to make it from the document, the room, the base URL, a lesson)
FORMATS: dict[str, tuple[str, Make]] = {
    "json": ("application/json", lambda d, r, _b, v: export_json(d, r.id, title=r.title, video=v)),
    "csv": ("text/csv; charset=utf-8", lambda d, _r, _b, v: export_csv(d, v)),
    "vtt": ("text/vtt; charset=utf-8", lambda d, _r, _b, v: export_vtt(d, v)),
    "jsonld": (
        "application/ld+json",
        lambda d, r, b, v: export_web_annotation(d, r.id, b, title=r.title, video=v),
    ),
}
MAX_VIDEO_CHARS = 200
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def lesson_of(request: Request) -> str | None:
    """`?video=`: the notes of one lesson only (the room may have several)."""
    video = request.query_params.get("video")
    if video is not None and not 1 <= len(video) <= MAX_VIDEO_CHARS:
        raise InvalidField(f"video must be 1-{MAX_VIDEO_CHARS} characters")
    return video


async def bound_document(worker: Worker, record: RoomRecord) -> Doc[Any]:
    """The room's document with every note bound to its lesson. Read without loading the room,
    unless it is a room from before notes named their lesson: opening it migrates them."""
    doc = await worker.documents.read(record.id)
    meta = doc.get("meta", type=Map)
    if meta.get("schema") == NOTES_BOUND or not unbound_notes(doc.get("timeline", type=Map)):
        return doc
    await worker.documents.open(record)
    return await worker.documents.read(record.id)


async def _readable_room(request: Request) -> tuple[Worker, RoomRecord, Actor]:
    """The room, if the caller holds the admin key or a token for it that may view; and who
    the caller is, for the audit log."""
    worker = worker_of(request)
    room_id = request.path_params["room"]
    given = bearer(request.headers)
    if is_admin(worker, given):
        return worker, await worker.room_record(room_id), actor_of(None)
    claims = claims_for(worker, presented_token(request), room_id)
    if Permission.VIEW not in permissions_for(claims.role, claims.grants):
        raise Forbidden(f"role {claims.role.value!r} may not read this room")
    return worker, await room_for(worker, claims, room_id), actor_of(claims)


def reads_talk(actor: Actor) -> bool:
    """The talk report goes to the admin and the room's coach and teacher (server/http/voice.py)."""
    return actor.role in ("admin", "coach", "teacher")


async def export(request: Request) -> Response:
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        raise NotFound(f"no export format {fmt[:20]!r}; try one of {sorted(FORMATS)}")
    worker, record, actor = await _readable_room(request)
    media_type, make = FORMATS[fmt]
    video = lesson_of(request)
    doc = await bound_document(worker, record)
    if fmt == "json" and reads_talk(actor):
        talk = await talk_record.load(worker.store, record.id)
        body = export_json(doc, record.id, title=record.title, video=video, talk=talk)
    else:
        body = make(doc, record, worker.settings.base_url, video)
    filename = f"cocoach-{record.id}.{fmt}"
    worker.audit.record("export.read", actor, room=record.id, remote=remote_of(request), format=fmt)
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


async def room_summary(request: Request) -> Response:
    worker, record, actor = await _readable_room(request)
    video = lesson_of(request)
    doc = await bound_document(worker, record)
    worker.audit.record("summary.read", actor, room=record.id, remote=remote_of(request))
    return JSONResponse(summary(doc, video), headers=PRIVATE)


async def list_frameworks(request: Request) -> Response:
    worker = worker_of(request)
    return JSONResponse({"frameworks": [msgspec.to_builtins(f) for f in worker.frameworks.list()]})


async def get_framework(request: Request) -> Response:
    worker = worker_of(request)
    return JSONResponse(msgspec.to_builtins(worker.frameworks.get(request.path_params["id"])))
