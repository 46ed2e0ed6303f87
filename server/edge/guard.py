"""The ASGI shell in front of every route: it names the request (client address, request id,
room) for the logs and the limits, refuses what the per-address limits refuse before any
route runs, and adds the headers every response carries. Pure rules live beside it
(`address.py`, `limits.py`); the limits are documented in docs/operations.md#limits."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import logs
from server.edge.address import client_address, parse_networks
from server.edge.limits import AddressBuckets
from server.errors import (
    AuthRateLimited,
    CloseCode,
    LimitedFor,
    TooManyUploads,
    UploadRateLimited,
)
from server.settings import Settings

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ROOM_PATH = re.compile(r"^/(?:rooms|api/rooms|yjs|r)/([A-Za-z0-9_-]{1,64})(?:/|\.|$)")
_UPLOAD_PATH = re.compile(r"^/api/videos/[^/]+/upload$")
# Never authenticated, so never refused for an address's failed authentications: a load
# balancer's probes and the bundle keep working.
_OPEN_PATHS = ("/healthz", "/readyz", "/static/")
# Close codes that mean "your credentials are wrong" (a guess, or a stale token).
_AUTH_FAILURES = frozenset(
    {
        CloseCode.TOKEN_MISSING,
        CloseCode.TOKEN_INVALID,
        CloseCode.TOKEN_EXPIRED,
        CloseCode.TOKEN_ROLE_UNKNOWN,
    }
)


def client_of(scope: Scope) -> str:
    """The client address the guard settled on for this request."""
    return str(scope.get("cocoach.client", "unknown"))


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.trusted = parse_networks(settings.trusted_proxies)
        size = settings.rate_limit_addresses
        self.auth_failures = AddressBuckets(
            settings.auth_failures_per_minute, settings.auth_failure_burst, size
        )
        self.upload_creations = AddressBuckets(
            settings.uploads_per_minute, settings.upload_burst, size
        )
        self.uploads_now = 0
        self.extra_headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if settings.hsts_seconds > 0:
            value = f"max-age={settings.hsts_seconds}; includeSubDomains"
            self.extra_headers.append((b"strict-transport-security", value.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope.get("client")
        address = client_address(
            peer[0] if peer else None, headers.get("x-forwarded-for"), self.trusted
        )
        scope["cocoach.client"] = address
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else secrets.token_hex(8)
        room = _ROOM_PATH.match(scope["path"])
        tokens = (
            logs.REQUEST_ID.set(request_id),
            logs.ROOM.set(room.group(1) if room else None),
            logs.WORKER.set(self.settings.worker_id),
        )
        try:
            await self._guarded(scope, receive, send, address, request_id)
        finally:
            logs.WORKER.reset(tokens[2])
            logs.ROOM.reset(tokens[1])
            logs.REQUEST_ID.reset(tokens[0])

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, address: str, request_id: str
    ) -> None:
        path: str = scope["path"]
        if not path.startswith(_OPEN_PATHS):
            wait = self.auth_failures.blocked_for(address)
            if wait > 0:
                error = AuthRateLimited(
                    "too many failed authentications from your address: wait and try again",
                    wait,
                )
                await self._refuse(scope, receive, send, error, request_id)
                return
        upload = scope["type"] == "http" and (
            (scope["method"] == "POST" and path == "/api/videos")
            or (scope["method"] == "PATCH" and _UPLOAD_PATH.match(path) is not None)
        )
        if upload:
            limited = self._upload_limit(scope["method"] == "POST", address)
            if limited is not None:
                await self._refuse(scope, receive, send, limited, request_id)
                return
            self.uploads_now += 1
        try:
            await self.app(scope, receive, self._watching(send, address, request_id))
        finally:
            if upload:
                self.uploads_now -= 1

    def _upload_limit(self, creation: bool, address: str) -> LimitedFor | None:
        if self.uploads_now >= self.settings.max_concurrent_uploads:
            return TooManyUploads(
                f"this server is receiving {self.uploads_now} uploads already "
                f"(max_concurrent_uploads): try again shortly",
                5,
            )
        if creation:
            wait = self.upload_creations.take(address)
            if wait > 0:
                return UploadRateLimited(
                    "too many uploads started from your address (uploads_per_minute): "
                    "wait and try again",
                    wait,
                )
        return None

    def _watching(self, send: Send, address: str, request_id: str) -> Callable[[Message], Any]:
        async def watched(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if message["status"] == 401:
                    self.auth_failures.take(address)
                response_headers = MutableHeaders(scope=message)
                response_headers["x-request-id"] = request_id
                for name, value in self.extra_headers:
                    if name.decode() not in response_headers:
                        response_headers.raw.append((name, value))
            elif kind == "websocket.close" and message.get("code") in _AUTH_FAILURES:
                self.auth_failures.take(address)
            await send(message)

        return watched

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: LimitedFor, request_id: str
    ) -> None:
        if scope["type"] == "websocket":
            # Accept, then close: a browser can read a close code and reason, not a refusal.
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            reason = f"{error.code}: {error.message}"[:120]
            await send({"type": "websocket.close", "code": error.close_code, "reason": reason})
            return
        body = json.dumps(
            {
                "error": {"code": error.code, "message": error.message},
                "retry_after": error.retry_after,
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(error.retry_after).encode()),
            (b"x-request-id", request_id.encode()),
            *self.extra_headers,
        ]
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
