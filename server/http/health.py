"""Health (alive), readiness (store and broker reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import sqlite3
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.errors import AuthError, ServiceUnavailable
from server.http.admission import bearer
from server.http.request import worker_of
from server.metrics import CONTENT_TYPE, exposition

READY_TIMEOUT = 2.0  # seconds /readyz waits for the store or the broker to answer


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "worker": worker_of(request).id})


async def _reachable(name: str, ping: Awaitable[None]) -> str | None:
    """None when `ping` answers in time, else what is wrong with `name`."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await ping
    except TimeoutError:
        return f"{name}: no answer within {READY_TIMEOUT} s"
    except ServiceUnavailable as exc:
        return f"{name}: {exc.message}"
    except (OSError, sqlite3.Error) as exc:  # the embedded store's own failures
        return f"{name}: {exc}"
    return None


async def readyz(request: Request) -> Response:
    """Ready when the store and the broker both answer: a load balancer sends nothing here
    otherwise. Both are checked at once, each with a timeout, and the answer names which
    failed."""
    worker = worker_of(request)
    problems = [
        problem
        for problem in await asyncio.gather(
            _reachable("store", worker.store.ping()), _reachable("broker", worker.broker.ping())
        )
        if problem is not None
    ]
    body: dict[str, object] = {"worker": worker.id, "mode": worker.backend.kind}
    if problems:
        return JSONResponse(
            {"status": "unavailable", "failed": problems, **body},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    if worker.draining:
        return JSONResponse({"status": "draining", "failed": ["draining"], **body}, 503)
    return JSONResponse({"status": "ready", **body})


async def metrics(request: Request) -> Response:
    """Prometheus text format, this worker's numbers only (docs/operations.md#metrics)."""
    worker = worker_of(request)
    expected = worker.settings.metrics_token
    if expected:
        given = bearer(request.headers)
        if not given:
            raise AuthError("/metrics needs the metrics token as Authorization: Bearer")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthError("the metrics token is wrong")
    return Response(
        exposition(worker.metrics_registry),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
