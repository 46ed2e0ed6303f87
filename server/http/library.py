"""The trust library over HTTP (docs/groups.md): a clip's owner publishes it once its video's
consent is recorded; everyone of the trust finds it by words and tags; the owner unpublishes it
at any time, at once on every worker."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.clips.library import tag_counts
from server.clips.model import Published, Summary
from server.clips.rules import check_publishable
from server.errors import InvalidField, NotFound
from server.http.auth import actor_of_person
from server.http.clips import clip_json, trust_of_org
from server.http.clips import mine as owned_clip
from server.http.request import read_json, worker_of
from server.http.signed_in import require_person
from server.sync.audit import ADMIN

PRIVATE = {"Cache-Control": "no-store"}
MAX_LIMIT = 100
MAX_TAGS = 10


class Publish(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    clip: str
    summary: Summary = ""


async def publish(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    asked = await read_json(request, Publish)
    clip = await worker.clips.get(asked.clip)
    if clip is None or clip.owner != me.id:
        raise NotFound(f"clip: no clip {asked.clip[:64]!r} of yours")
    video = await worker.videos.get(clip.video)
    media = await worker.videos.get(clip.media)
    if video is None or media is None:
        raise NotFound(f"clip: its video was deleted ({clip.id!r})")
    check_publishable(video.consent)
    published = Published(summary=asked.summary.strip(), at=time.time(), by=me.id)
    changed = msgspec.structs.replace(clip, published=published)
    await worker.clips.save(changed)
    await worker.library.changed(clip.id)
    worker.audit.record(
        "clip.publish",
        actor_of_person(me),
        video=clip.video,
        remote=remote_of(request),
        clip=clip.id,
    )
    return JSONResponse(
        await clip_json(worker, changed, full=True), status_code=201, headers=PRIVATE
    )


async def unpublish(request: Request) -> Response:
    worker = worker_of(request)
    clip, me = await owned_clip(request)
    if clip.published is None:
        raise NotFound("the clip is not in the library")
    await worker.clips.save(msgspec.structs.replace(clip, published=None))
    await worker.library.changed(clip.id)
    worker.audit.record(
        "clip.unpublish",
        actor_of_person(me) if me is not None else ADMIN,
        video=clip.video,
        remote=remote_of(request),
        clip=clip.id,
    )
    return Response(status_code=204)


def _limit(text: str | None) -> int:
    if text is None:
        return 20
    try:
        limit = int(text)
    except ValueError:
        raise InvalidField("limit: a whole number, 1-100") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidField("limit: a whole number, 1-100")
    return limit


async def search(request: Request) -> Response:
    """`GET /api/library?q=&tag=&framework=&limit=`: the trust's published clips."""
    worker = worker_of(request)
    me = await require_person(request)
    params = request.query_params
    tags = tuple(dict.fromkeys(params.getlist("tag")))
    if len(tags) > MAX_TAGS or any(len(t) > 64 for t in tags):
        raise InvalidField(f"tag: at most {MAX_TAGS} tags of up to 64 characters")
    framework = params.get("framework") or None
    if framework is not None and len(framework) > 64:
        raise InvalidField("framework: at most 64 characters")
    trust = trust_of_org(worker, me.org)
    found = worker.library.search(
        trust, params.get("q", ""), tags, framework, _limit(params.get("limit"))
    )
    entries = []
    for clip_id in found:
        clip = await worker.clips.get(clip_id)
        if clip is None or clip.published is None or await worker.videos.get(clip.media) is None:
            continue  # gone since the index last heard: never shown
        owner = await worker.people.get(clip.owner)
        entries.append(
            {
                "clip": clip.id,
                "title": clip.title,
                "description": clip.description,
                "summary": clip.published.summary,
                "duration": clip.duration,
                "owner_name": owner.name if owner else None,
                "org": clip.org,
                "framework": clip.framework,
                "tags": tag_counts(clip),
                "notes": [msgspec.to_builtins(n) for n in clip.notes],
                "published": clip.published.at,
            }
        )
    return JSONResponse({"entries": entries}, headers=PRIVATE)
