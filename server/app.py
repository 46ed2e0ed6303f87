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
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server import logs
from server.edge.guard import Guard
from server.edge.origin import parse_origins
from server.errors import CocoachError, LimitedFor
from server.http.routes import routes
from server.orgs import Orgs
from server.people.oidc import SIGN_IN_COOKIE, SIGN_IN_SECONDS, flow_secret, providers_of
from server.session.worker import Worker
from server.settings import Settings
from server.supervisor import tell_ready
from server.sync.backend import open_backend

GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)


async def error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CocoachError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, LimitedFor) else None
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.http_status,
        headers=headers,
    )


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
    # A sign-in under way keeps its state, nonce and PKCE verifier here (server/people/oidc.py).
    stack.append(
        Middleware(
            SessionMiddleware,
            secret_key=flow_secret(settings),
            session_cookie=SIGN_IN_COOKIE,
            max_age=SIGN_IN_SECONDS,
            same_site="lax",
            https_only=settings.base_url.startswith("https://"),
        )
    )
    return stack


def create_app(settings: Settings) -> Starlette:
    settings = settings.with_secrets()
    Orgs.parse(settings.orgs, settings.default_org)  # a bad COCOACH_ORGS stops the start
    providers_of(settings)  # so does a bad identity provider setting
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
                tell_ready()
                yield

    return Starlette(
        routes=routes(),
        middleware=middleware_for(settings),
        exception_handlers={CocoachError: error_response},
        lifespan=lifespan,
    )
