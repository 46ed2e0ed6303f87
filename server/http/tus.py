"""Resumable uploads with tus 1.0.0 (https://tus.io/protocols/resumable-upload): core, creation,
creation-with-upload, termination and expiration.

    POST   /api/videos               Upload-Length, Upload-Metadata -> 201, Location
    HEAD   /api/videos/{id}/upload   -> Upload-Offset, Upload-Length
    PATCH  /api/videos/{id}/upload   Upload-Offset, application/offset+octet-stream body
    DELETE /api/videos/{id}/upload   terminate: the video and its files are deleted
    OPTIONS                          Tus-Version, Tus-Extension, Tus-Max-Size

Bodies stream to the upload file a megabyte at a time, never whole into memory. A dropped
connection keeps what arrived: the client asks HEAD for the offset and resumes. One request at
a time writes to an upload, across all workers (a lease, `upload:<id>`); a second one waits a
moment for the first to notice its client has gone, then gets 423.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.errors import (
    ClientError,
    CocoachError,
    Conflict,
    InsufficientStorage,
    InvalidField,
    NotFound,
    ServiceUnavailable,
    TooLarge,
    UnsupportedMediaType,
    UnsupportedVersion,
    UploadBusy,
)
from server.http.access import Caller, caller_of, delete_as_caller, find_video, upload_org
from server.http.request import worker_of
from server.library.retention import parse_consent, parse_retention_days
from server.session.worker import Worker
from server.sync.store import VideoRecord

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
FLUSH_BYTES = 1024 * 1024  # body bytes held in memory before they are written
LOCK_WAIT = 3.0  # seconds a PATCH waits for the one before it to finish
UPLOAD_LEASE_SECONDS = 30.0
DISK_RESERVE = 256 * 1024 * 1024  # bytes an upload may not take from the library's disk
Outcome = Literal["complete", "disconnected", "too_large"]
Handler = Callable[[Request], Awaitable[Response]]


def tus_endpoint(handler: Handler) -> Handler:
    """Check the client's tus version; answer errors in the API's JSON shape with the tus
    headers every tus response carries."""

    async def endpoint(request: Request) -> Response:
        try:
            if request.method != "OPTIONS":
                version = request.headers.get("tus-resumable")
                if version != TUS_VERSION:
                    raise UnsupportedVersion(
                        f"this server speaks tus {TUS_VERSION}; "
                        f"the request's Tus-Resumable is {str(version)[:20]!r}"
                    )
            return await handler(request)
        except CocoachError as exc:
            headers = {"Tus-Resumable": TUS_VERSION}
            if isinstance(exc, UnsupportedVersion):
                headers["Tus-Version"] = TUS_VERSION
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message}},
                status_code=exc.http_status,
                headers=headers,
            )

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _headers(worker: Worker, record: VideoRecord | None = None, **extra: str) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}
    if record is not None and record.status == "uploading":
        expires = record.updated + worker.settings.upload_expiry_seconds
        headers["Upload-Expires"] = format_datetime(
            datetime.fromtimestamp(expires, UTC), usegmt=True
        )
    return headers


async def options(request: Request) -> Response:
    worker = worker_of(request)
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(worker.settings.max_upload_bytes),
        },
    )


@tus_endpoint
async def create(request: Request) -> Response:
    """tus creation (POST /api/videos with Tus-Resumable), with an optional first chunk."""
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    if "upload-defer-length" in request.headers:
        raise ClientError("Upload-Defer-Length is not supported: send Upload-Length")
    length = _header_int(request, "upload-length")
    check_size(worker, length, "Upload-Length")
    metadata = parse_metadata(request.headers.get("upload-metadata", ""))
    filename, title = names(metadata.get("filename"), metadata.get("title"))
    record = await worker.videos.create(
        owner=caller.sub,
        org=upload_org(worker, caller, metadata.get("org")),
        title=title,
        filename=filename,
        length=length,
        consent=parse_consent(metadata.get("consent")),
        retention_days=parse_retention_days(metadata.get("retention_days")),
    )
    record_upload(worker, request, caller, record)
    extra = {"Location": f"/api/videos/{record.id}/upload"}
    if _content_type(request) == OFFSET_TYPE:  # creation-with-upload
        async with upload_lock(worker, record.id) as keep:
            record = await append(worker, request, record.id, 0, keep)
        extra["Upload-Offset"] = str(record.upload_offset)
    elif length == 0:
        record = await complete(worker, record)
    return Response(status_code=201, headers=_headers(worker, record, **extra))


@tus_endpoint
async def head(request: Request) -> Response:
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    record = await find_video(worker, caller, request.path_params["video"], write=True)
    return Response(
        status_code=200,
        headers=_headers(
            worker,
            record,
            **{
                "Upload-Offset": str(record.upload_offset),
                "Upload-Length": str(record.upload_length),
            },
        ),
    )


@tus_endpoint
async def patch(request: Request) -> Response:
    worker = worker_of(request)
    caller = await caller_of(request, worker)
    if _content_type(request) != OFFSET_TYPE:
        raise UnsupportedMediaType(f"a tus PATCH needs Content-Type: {OFFSET_TYPE}")
    offset = _header_int(request, "upload-offset")
    video_id = (await find_video(worker, caller, request.path_params["video"], write=True)).id
    async with upload_lock(worker, video_id) as keep:
        record = await append(worker, request, video_id, offset, keep)
    return Response(
        status_code=204,
        headers=_headers(worker, record, **{"Upload-Offset": str(record.upload_offset)}),
    )


@tus_endpoint
async def terminate(request: Request) -> Response:
    worker = worker_of(request)
    await delete_as_caller(request, worker)
    return Response(status_code=204, headers=_headers(worker))


def record_upload(worker: Worker, request: Request, caller: Caller, record: VideoRecord) -> None:
    """The audit event of a new video, for tus and the one-shot upload alike."""
    worker.audit.record(
        "video.upload",
        caller.actor,
        video=record.id,
        remote=remote_of(request),
        title=record.title,
        filename=record.filename,
        bytes=record.upload_length,
        consent=record.consent,
        retention_days=record.retention_days,
    )


# ---- the upload itself --------------------------------------------------------------------


async def append(
    worker: Worker,
    request: Request,
    video_id: str,
    offset: int,
    keep: Callable[[], Awaitable[None]],
) -> VideoRecord:
    """Write the request's body at `offset`; the record with the new offset. Holding the
    upload's lock, so the record read here is the latest."""
    record = await worker.videos.get(video_id)
    if record is None:
        raise NotFound(f"video {video_id!r} was deleted")
    if offset != record.upload_offset:
        raise Conflict(
            f"Upload-Offset {offset} is not where the upload stands ({record.upload_offset}): "
            "ask with HEAD and resume from there"
        )
    if record.status != "uploading":
        if request.headers.get("content-length", "0") == "0":
            return record  # an empty PATCH to a finished upload changes nothing
        raise Conflict(f"the upload of video {video_id!r} is complete")
    remaining = record.upload_length - offset
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > remaining:
        raise TooLarge(
            f"a body of {declared} bytes at offset {offset} would pass "
            f"Upload-Length {record.upload_length}"
        )
    path = worker.videos.upload_path(video_id)
    written, outcome = await receive_body(request, path, offset, remaining, keep)
    record = msgspec.structs.replace(record, upload_offset=offset + written)
    if record.upload_offset == record.upload_length:
        record = await complete(worker, record)
    else:
        record = await worker.videos.save(record)
    if outcome == "too_large":
        raise TooLarge(f"the body goes past Upload-Length {record.upload_length}")
    return record


async def complete(worker: Worker, record: VideoRecord) -> VideoRecord:
    """The whole file is here: queue its ingest."""
    record = await worker.videos.save(msgspec.structs.replace(record, status="queued"))
    await worker.videos.ingest.submit(record)
    return record


async def receive_body(
    request: Request,
    path: Path,
    offset: int,
    limit: int,
    keep: Callable[[], Awaitable[None]] | None = None,
) -> tuple[int, Outcome]:
    """Stream the body into `path` from `offset` (anything past it is cut off first): bytes
    written, and whether the body ended, was cut off by the client, or ran past `limit`."""

    def open_at() -> BinaryIO:
        out = path.open("r+b" if path.exists() else "w+b")
        out.seek(offset)
        out.truncate()
        return out

    out = await asyncio.to_thread(open_at)
    buffer = bytearray()
    written = 0
    outcome: Outcome = "complete"
    kept = time.monotonic()
    try:
        async for chunk in request.stream():
            room = limit - written - len(buffer)
            if len(chunk) > room:
                buffer += chunk[:room]
                outcome = "too_large"
                break
            buffer += chunk
            if len(buffer) >= FLUSH_BYTES:
                await asyncio.to_thread(out.write, buffer)
                written += len(buffer)
                buffer.clear()
                if keep is not None and time.monotonic() - kept > UPLOAD_LEASE_SECONDS / 3:
                    kept = time.monotonic()
                    await keep()
    except ClientDisconnect:
        outcome = "disconnected"
    finally:
        # What arrived is kept, even when the client went away: it resumes from here.
        if buffer:
            out.write(buffer)
            written += len(buffer)
        await asyncio.to_thread(_close_synced, out)
    return written, outcome


def _close_synced(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())  # the offset we report must survive a crash of this host
    out.close()


@asynccontextmanager
async def upload_lock(
    worker: Worker, video_id: str
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Hold the upload's lease; yield a function that renews it during a long body."""
    name = f"upload:{video_id}"
    holder = f"{worker.id}:{secrets.token_hex(4)}"
    deadline = time.monotonic() + LOCK_WAIT
    while not await worker.lease.acquire(name, holder, UPLOAD_LEASE_SECONDS):
        if time.monotonic() > deadline:
            raise UploadBusy(
                f"another request is uploading to video {video_id!r}; try again when it ends"
            )
        await asyncio.sleep(0.05)

    async def keep() -> None:
        if not await worker.lease.renew(name, holder, UPLOAD_LEASE_SECONDS):
            raise UploadBusy(f"another request took over the upload of video {video_id!r}")

    try:
        yield keep
    finally:
        with contextlib.suppress(ServiceUnavailable):
            await worker.lease.release(name, holder)


# ---- headers ------------------------------------------------------------------------------


def check_size(worker: Worker, length: int, what: str) -> None:
    limit = worker.settings.max_upload_bytes
    if length > limit:
        raise TooLarge(f"{what} {length} is over the upload limit of {limit} bytes")
    free = worker.videos.free_bytes()
    if length > free - DISK_RESERVE:
        raise InsufficientStorage(
            f"the video library's disk has {max(0, free - DISK_RESERVE)} bytes to spare; "
            f"the upload needs {length}"
        )


def _header_int(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise InvalidField(f"the {name.title()} header is required")
    if not raw.strip().isdigit():
        raise InvalidField(f"the {name.title()} header must be a whole number of bytes")
    return int(raw)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_metadata(header: str) -> dict[str, str]:
    """tus Upload-Metadata: comma-separated `key base64(value)` pairs, the value optional."""
    metadata: dict[str, str] = {}
    for item in header.split(","):
        if not item.strip():
            continue
        key, _, encoded = item.strip().partition(" ")
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidField(
                f"Upload-Metadata: the value of {key[:40]!r} is not base64 UTF-8"
            ) from None
    return metadata


def names(filename: str | None, title: str | None) -> tuple[str | None, str]:
    """A clean file name (no directories, no control characters) and a title (1-200
    characters; the file name's stem when none is given)."""
    clean = None
    if filename:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        clean = "".join(c for c in base if c.isprintable())[:255] or None
    if title is not None and not 1 <= len(title.strip()) <= 200:
        raise InvalidField("title must be 1-200 characters")
    if title is None:
        stem = clean.rsplit(".", 1)[0] if clean else ""
        title = stem[:200] or "Untitled video"
    return clean, title.strip()
