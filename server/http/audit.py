"""`GET /api/audit` (admin key): read the audit log, filtered (docs/audit.md). Reading it is
itself recorded."""

from __future__ import annotations

import time
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.errors import InvalidField
from server.http.request import check_admin, worker_of
from server.sync.audit import ACTIONS, ADMIN, AuditEvent, AuditQuery

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_PARAM = 200  # characters of any one filter
FILTERS = ("room", "video", "actor", "action", "since", "until", "after", "limit")


def event_json(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "time": event.time,
        "action": event.action,
        "actor": {
            "sub": event.actor.sub,
            "name": event.actor.name,
            "role": event.actor.role,
            "org": event.actor.org,
        },
        "room": event.room,
        "video": event.video,
        "remote": event.remote,
        "worker": event.worker,
        "detail": dict(event.detail),
    }


def parse_time(name: str, text: str) -> float:
    """Unix seconds, or an ISO 8601 time with its zone (`2026-01-31T09:00:00Z`)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField(
            f"{name} must be Unix seconds or an ISO 8601 time like 2026-01-31T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise InvalidField(f"{name} must say its time zone (end it with Z for UTC)")
    return moment.timestamp()


def parse_query(params: dict[str, str]) -> AuditQuery:
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise InvalidField(f"unknown filter {unknown[0][:40]!r}; the filters are {FILTERS}")
    for name, value in params.items():
        if not 1 <= len(value) <= MAX_PARAM:
            raise InvalidField(f"{name} must be 1-{MAX_PARAM} characters")
    action = params.get("action")
    if action is not None and action not in ACTIONS:
        raise InvalidField(f"action {action[:40]!r} is not one of {', '.join(ACTIONS)}")
    limit_text = params.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise InvalidField(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    since = parse_time("since", params["since"]) if "since" in params else None
    until = parse_time("until", params["until"]) if "until" in params else None
    return AuditQuery(
        room=params.get("room"),
        video=params.get("video"),
        actor=params.get("actor"),
        action=action,
        since=since,
        until=until,
        after=params.get("after"),
        limit=int(limit_text),
    )


async def read_audit(request: Request) -> Response:
    worker = worker_of(request)
    check_admin(request, worker)
    params = dict(request.query_params)
    query = parse_query(params)
    events, more = await worker.audit.log.query(query)
    # The filters go in `detail`, not in the event's own room/video: reading about a room is
    # not something that happened in it.
    worker.audit.add(
        AuditEvent(
            time=time.time(),
            action="audit.read",
            actor=ADMIN,
            remote=remote_of(request),
            detail={k: v for k, v in params.items() if k != "after"},
        )
    )
    return JSONResponse(
        {
            "events": [event_json(e) for e in events],
            "more": more,
            "next": events[-1].id if more and events else None,
        },
        headers={"Cache-Control": "no-store"},
    )
