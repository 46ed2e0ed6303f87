"""One worker process: the app on uvicorn, on the listening socket its supervisor bound."""

from __future__ import annotations

import socket

import uvicorn

from server.app import create_app
from server.drain import DrainingServer
from server.settings import Settings

WS_MAX_BYTES = (
    2 * 1024 * 1024
)  # transport cap; the room protocol's own, smaller limit answers first


def run_worker(settings: Settings, sock: socket.socket) -> int:
    """One worker process: the app on uvicorn, on a socket already listening."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_BYTES,
        loop=_event_loop(settings.event_loop),
        log_config=None,
        lifespan="on",
        # The client address behind a proxy is ours to decide (`trusted_proxies`): uvicorn
        # would otherwise believe X-Forwarded-For from 127.0.0.1 by default.
        proxy_headers=False,
        # After the worker drained, what is still open (plain HTTP requests, an upload) gets
        # this long again before uvicorn cancels it.
        timeout_graceful_shutdown=max(1, round(settings.drain_seconds)),
    )
    DrainingServer(config, app, settings.drain_seconds).run(sockets=[sock])
    return 0


def _event_loop(choice: str) -> str:
    if choice not in ("auto", "uvloop", "asyncio"):
        raise SystemExit(f"COCOACH_EVENT_LOOP must be auto, uvloop or asyncio, not {choice!r}")
    return choice
