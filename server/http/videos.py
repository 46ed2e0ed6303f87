"""REST for the video library (docs/videos.md): list, look at, delete, and the one-shot upload
for curl users (`curl --data-binary @lesson.mp4 -H 'Content-Type: video/mp4'`). Resumable
uploads speak tus (server/http/tus.py) on the same `POST /api/videos`."""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from server.audit import remote_of
from server.errors import (
    ClientError,
    DownloadDisabled,
    InvalidField,
    NotAVideo,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
)
from server.http import tus
from server.http.access import caller_of, delete_as_caller, find_video, owns, upload_org
from server.http.clip_privacy import consent_changed
from server.http.request import check_admin, read_json, worker_of
from server.library.child import IngestFailed, probe
from server.library.ingest import with_probe
from server.library.renditions import RENDITION_NAMES as RENDITIONS
from server.library.retention import (
    check_retention_days,
    consent_covers,
    expires_at,
    parse_consent,
    parse_retention_days,
)
from server.session.worker import Worker
from server.sync.audit import ADMIN, AuditEvent, DetailValue
from server.sync.store import VideoRecord

PRIVATE = {"Cache-Control": "no-store"}
HIDDEN = ("attempts", "generate")


class VideoChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`PATCH /api/videos/{video}`: every key optional; `retention_days: null` returns the
    video to the deployment's default period."""

    consent: str | msgspec.UnsetType = msgspec.UNSET
    retention_days: int | msgspec.UnsetType | None = msgspec.UNSET
    title: str | msgspec.UnsetType = msgspec.UNSET


def video_json(record: VideoRecord, default_days: int) -> dict[str, object]:
    data: dict[str, object] = msgspec.to_builtins(record)
    for key in HIDDEN:
        data.pop(key, None)
    data["expires_at"] = expires_at(record, default_days)
    if record.status == "uploading":
        data["upload_url"] = f"/api/videos/{record.id}/upload"
    return data


async def list_videos(request: Request) -> Response:
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    # Private by default: a token lists only its holder's own videos, not even its room's.
    # A clip's media is listed with its clip (GET /api/clips), not among one's lessons.
    videos = [
        v
        for v in await worker.store.list_videos()
        if caller.admin or (owns(worker, caller, v) and v.clip_of is None)
    ]
    wanted_org = request.query_params.get("org")
    if caller.admin and wanted_org is not None:
        videos = [v for v in videos if worker.orgs.owning(v.org) == wanted_org]
    videos.sort(key=lambda v: (-v.created, v.id))  # newest first
    days = worker.settings.video_retention_days
    return JSONResponse({"videos": [video_json(v, days) for v in videos]}, headers=PRIVATE)


async def get_video(request: Request) -> Response:
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    record = await find_video(worker, caller, request.path_params["video"])
    return JSONResponse(video_json(record, worker.settings.video_retention_days), headers=PRIVATE)


async def download_video(request: Request) -> Response:
    """`GET /api/videos/{video}/download`: the rendition's WebM, for its owner or the admin,
    only when `COCOACH_ALLOW_DOWNLOAD` is on (off by default: lessons leave the server only
    as WebRTC media). Range requests are answered, so a player can seek in it."""
    worker = worker_of(request)
    if not worker.settings.allow_download:
        raise DownloadDisabled(
            "downloads are off on this server (COCOACH_ALLOW_DOWNLOAD): watch in a room"
        )
    caller = await caller_of(request, worker)
    record = await find_video(worker, caller, request.path_params["video"], write=True)
    rendition = request.query_params.get("rendition", "720p")
    if rendition not in RENDITIONS:
        raise NotFound(f"rendition {rendition[:20]!r} does not exist; choose one of {RENDITIONS}")
    path = worker.videos.file(record, rendition)
    worker.audit.record(
        "video.download",
        caller.actor,
        video=record.id,
        remote=remote_of(request),
        rendition=rendition,
    )
    return FileResponse(
        path,
        media_type="video/webm",
        filename=f"{record.id}-{path.stem}.webm",
        headers={**PRIVATE, "X-Content-Type-Options": "nosniff"},
    )


async def delete_video(request: Request) -> Response:
    worker = worker_of(request)
    await delete_as_caller(request, worker)
    return Response(status_code=204)


async def change_video(request: Request) -> Response:
    """`PATCH /api/videos/{video}` (admin key): record consent, change the retention period
    or the title."""
    worker = worker_of(request)
    check_admin(request, worker)
    video_id = request.path_params["video"]
    change = await read_json(request, VideoChange)
    record = await worker.videos.get(video_id)
    if record is None:
        raise NotFound(f"no video {video_id[:64]!r}")
    changed: dict[str, DetailValue] = {}
    if not isinstance(change.consent, msgspec.UnsetType):
        record = msgspec.structs.replace(record, consent=parse_consent(change.consent))
        changed["consent"] = record.consent
    if not isinstance(change.retention_days, msgspec.UnsetType):
        days = check_retention_days(change.retention_days)
        record = msgspec.structs.replace(record, retention_days=days)
        changed["retention_days"] = days
    if not isinstance(change.title, msgspec.UnsetType):
        _, title = tus.names(None, change.title)
        record = msgspec.structs.replace(record, title=title)
        changed["title"] = title
    if not changed:
        raise InvalidField("send at least one of consent, retention_days, title")
    record = await worker.videos.save(record)
    if "consent" in changed and not consent_covers(record):
        await worker.videos.withdraw(record.id, "consent for the video was withdrawn")
    if "consent" in changed:
        await consent_changed(worker, record)
    worker.audit.add(
        AuditEvent(
            time=time.time(),
            action="video.update",
            actor=ADMIN,
            video=record.id,
            remote=remote_of(request),
            detail=changed,
        )
    )
    return JSONResponse(video_json(record, worker.settings.video_retention_days), headers=PRIVATE)


async def create_video(request: Request) -> Response:
    """`POST /api/videos`: a tus creation when the request says `Tus-Resumable`, else the
    whole file as the body."""
    if "tus-resumable" in request.headers:
        return await tus.create(request)
    return await upload_whole(request)


async def upload_whole(request: Request) -> Response:
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (content_type.startswith("video/") or content_type == "application/octet-stream"):
        raise UnsupportedMediaType(
            "send the file itself as the body, with Content-Type video/* or "
            "application/octet-stream (curl --data-binary @lesson.mp4 -H 'Content-Type: "
            f"video/mp4'), not {content_type[:60] or 'no Content-Type'!r}; "
            "for a resumable upload use tus"
        )
    declared_header = request.headers.get("content-length")
    declared = int(declared_header) if declared_header and declared_header.isdigit() else None
    tus.check_size(worker, declared or 0, "Content-Length")
    filename, title = tus.names(
        request.query_params.get("filename"), request.query_params.get("title")
    )
    record = await worker.videos.create(
        owner=caller.sub,
        org=upload_org(worker, caller, request.query_params.get("org")),
        title=title,
        filename=filename,
        length=declared or 0,
        consent=parse_consent(request.query_params.get("consent")),
        retention_days=parse_retention_days(request.query_params.get("retention_days")),
    )
    try:
        record = await _receive_and_probe(worker, request, record)
    except BaseException:
        # Nothing of a refused upload stays: not the record, not a byte on disk.
        await asyncio.shield(worker.videos.delete(record.id))
        raise
    await worker.videos.ingest.submit(record)
    tus.record_upload(worker, request, caller, record)
    return JSONResponse(
        video_json(record, worker.settings.video_retention_days),
        status_code=201,
        headers={**PRIVATE, "Location": f"/api/videos/{record.id}"},
    )


async def _receive_and_probe(worker: Worker, request: Request, record: VideoRecord) -> VideoRecord:
    limit = worker.settings.max_upload_bytes
    path = worker.videos.upload_path(record.id)
    written, outcome = await tus.receive_body(request, path, 0, limit)
    if outcome == "too_large":
        raise TooLarge(f"the body is over the upload limit of {limit} bytes")
    if outcome == "disconnected":
        raise ClientError(f"the upload was cut off after {written} bytes")
    try:
        probed = await probe(path, worker.settings.ingest_nice)
    except IngestFailed as exc:
        raise NotAVideo(str(exc)) from None
    record = msgspec.structs.replace(
        record, upload_length=written, upload_offset=written, status="queued"
    )
    return await worker.videos.save(with_probe(record, probed))
