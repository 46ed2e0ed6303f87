"""REST for a room's shared document: exports for the teacher's portfolio, the summary a
chart needs, and the tag frameworks rooms can use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from pycrdt import Doc
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
from server.errors import Forbidden, NotFound
from server.http.admission import bearer, claims_for, is_admin, presented_token, room_for
from server.http.request import worker_of
from server.rooms.roles import Permission, permissions_for
from server.session.worker import Worker
from server.sync.audit import Actor
from server.sync.store import RoomRecord

# format -> (media type, how to make it)
FORMATS: dict[str, tuple[str, Callable[[Doc[Any], RoomRecord, str], bytes]]] = {
    "json": ("application/json", lambda d, r, _b: export_json(d, r.id, title=r.title)),
    "csv": ("text/csv; charset=utf-8", lambda d, _r, _b: export_csv(d)),
    "vtt": ("text/vtt; charset=utf-8", lambda d, _r, _b: export_vtt(d)),
    "jsonld": (
        "application/ld+json",
        lambda d, r, b: export_web_annotation(d, r.id, b, title=r.title),
    ),
}
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


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


async def export(request: Request) -> Response:
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        raise NotFound(f"no export format {fmt[:20]!r}; try one of {sorted(FORMATS)}")
    worker, record, actor = await _readable_room(request)
    media_type, make = FORMATS[fmt]
    doc = await worker.documents.read(record.id)
    body = make(doc, record, worker.settings.base_url)
    filename = f"cocoach-{record.id}.{fmt}"
    worker.audit.record("export.read", actor, room=record.id, remote=remote_of(request), format=fmt)
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


async def room_summary(request: Request) -> Response:
    worker, record, actor = await _readable_room(request)
    doc = await worker.documents.read(record.id)
    worker.audit.record("summary.read", actor, room=record.id, remote=remote_of(request))
    return JSONResponse(summary(doc), headers=PRIVATE)


async def list_frameworks(request: Request) -> Response:
    worker = worker_of(request)
    return JSONResponse({"frameworks": [msgspec.to_builtins(f) for f in worker.frameworks.list()]})


async def get_framework(request: Request) -> Response:
    worker = worker_of(request)
    return JSONResponse(msgspec.to_builtins(worker.frameworks.get(request.path_params["id"])))
