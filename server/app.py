"""The ASGI app: routes -> session shells -> room rules."""

from __future__ import annotations

import gc
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from server import __version__, api, audit_api, exports, invites, logs, videos_api, web
from server.edge.guard import Guard
from server.edge.origin import parse_origins
from server.errors import CocoachError, LimitedFor
from server.media import tus, whep, whip
from server.orgs import Orgs
from server.session.room_socket import serve_room_socket
from server.session.worker import Worker
from server.session.yjs_socket import serve_yjs_socket
from server.settings import Settings
from server.sync.backend import open_backend

GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)


async def room_socket(websocket: WebSocket) -> None:
    await serve_room_socket(websocket, websocket.app.state.worker)


async def yjs_socket(websocket: WebSocket) -> None:
    await serve_yjs_socket(websocket, websocket.app.state.worker)


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CocoachError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, LimitedFor) else None
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.http_status,
        headers=headers,
    )


async def index(request: Request) -> Response:
    return JSONResponse({"service": "cocoach", "version": __version__, "docs": "README.md"})


# What a page on an allowed origin may send and read across origins (WHEP, tus, the API).
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-Request-Id",
]
CORS_EXPOSE = [
    "Location",
    "Link",
    "ETag",
    "Accept-Patch",
    "Retry-After",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Upload-Offset",
    "Upload-Length",
    "X-Request-Id",
]


def middleware_for(settings: Settings) -> list[Middleware]:
    """CORS stays closed (no Access-Control-Allow-Origin at all) unless origins are named."""
    stack = []
    cors = sorted(parse_origins(settings.allowed_origins, None))
    if cors:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors,
                allow_methods=["GET", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSE,
                max_age=600,
            )
        )
    stack.append(Middleware(Guard, settings=settings))
    return stack


def create_app(settings: Settings) -> Starlette:
    settings = settings.with_secrets()
    Orgs.parse(settings.orgs, settings.default_org)  # a bad COCOACH_ORGS stops the start
    # Fixed here, so the log lines of the edge and of the worker's tasks name the same worker.
    settings = replace(settings, worker_id=settings.worker_id or f"w-{secrets.token_hex(4)}")
    parse_origins(settings.allowed_origins, settings.public_url)  # refuse a bad one at start

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logs.WORKER.set(settings.worker_id)  # the worker's own tasks inherit this context
        async with open_backend(settings) as backend:
            worker = Worker(settings, backend)
            async with worker.running(), worker.videos.running():
                app.state.worker = worker
                # Everything allocated so far lives as long as the process: keep it out of the
                # cyclic collector's full passes, which otherwise stall every room at once
                # (measured: p99 at 1,000 updates/s swung between 15 and 206 ms without this).
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_THRESHOLD, 20, 20)
                yield

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", api.healthz),
            Route("/readyz", api.readyz),
            Route("/metrics", api.metrics),
            Route("/api/rooms", api.create_room, methods=["POST"]),
            Route("/api/rooms", api.list_rooms, methods=["GET"]),
            Route("/api/rooms/{room}", api.get_room, methods=["GET"]),
            Route("/api/rooms/{room}", api.update_room, methods=["PATCH"]),
            Route("/api/rooms/{room}/invites", invites.create_invites, methods=["POST"]),
            Route("/api/rooms/{room}/export.{format}", exports.export, methods=["GET"]),
            Route("/api/rooms/{room}/summary", exports.room_summary, methods=["GET"]),
            Route("/api/audit", audit_api.read_audit, methods=["GET"]),
            Route("/api/frameworks", exports.list_frameworks, methods=["GET"]),
            Route("/api/frameworks/{id}", exports.get_framework, methods=["GET"]),
            Route("/api/videos", videos_api.create_video, methods=["POST"]),
            Route("/api/videos", videos_api.list_videos, methods=["GET"]),
            Route("/api/videos", tus.options, methods=["OPTIONS"]),
            Route("/api/videos/{video}", videos_api.get_video, methods=["GET"]),
            Route("/api/videos/{video}", videos_api.delete_video, methods=["DELETE"]),
            Route("/api/videos/{video}/download", videos_api.download_video, methods=["GET"]),
            Route("/api/videos/{video}", videos_api.change_video, methods=["PATCH"]),
            Route("/api/videos/{video}/upload", tus.head, methods=["HEAD"]),
            Route("/api/videos/{video}/upload", tus.patch, methods=["PATCH"]),
            Route("/api/videos/{video}/upload", tus.terminate, methods=["DELETE"]),
            Route("/api/videos/{video}/upload", tus.options, methods=["OPTIONS"]),
            Route("/r/{room}", web.session_page),
            Route("/admin", web.admin_page),
            Mount("/static", app=web.BuiltFiles(), name="static"),
            Route("/rooms/{room}/whep", whep.watch, methods=["POST"]),
            Route("/rooms/{room}/whep", whep.options, methods=["OPTIONS"]),
            Route("/rooms/{room}/whep/{session}", whep.trickle, methods=["PATCH"]),
            Route("/rooms/{room}/whep/{session}", whep.leave, methods=["DELETE"]),
            Route("/rooms/{room}/whip", whip.publish, methods=["POST"]),
            Route("/rooms/{room}/whip", whep.options, methods=["OPTIONS"]),
            Route("/rooms/{room}/whip/{session}", whep.trickle, methods=["PATCH"]),
            Route("/rooms/{room}/whip/{session}", whep.leave, methods=["DELETE"]),
            Route("/rooms/{room}/talkback", whip.talk, methods=["POST"]),
            Route("/rooms/{room}/talkback", whep.options, methods=["OPTIONS"]),
            Route("/rooms/{room}/talkback/{session}", whep.trickle, methods=["PATCH"]),
            Route("/rooms/{room}/talkback/{session}", whep.leave, methods=["DELETE"]),
            WebSocketRoute("/rooms/{room}/ws", room_socket),
            WebSocketRoute("/yjs/{room}", yjs_socket),
        ],
        middleware=middleware_for(settings),
        exception_handlers={CocoachError: error_response},
        lifespan=lifespan,
    )
