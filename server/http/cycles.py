"""Coaching cycles over HTTP (docs/cycles.md), for signed-in people (the session cookie).

Only a cycle's people see it (a leader does not browse); one who may not answers 404, as if it
did not exist. Every read by someone other than its teacher is in the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.audit import remote_of
from server.cycles.model import (
    Criterion,
    Cycle,
    CycleSession,
    CycleStatus,
    Focus,
    Score,
    SessionKind,
    new_cycle_id,
)
from server.cycles.rules import (
    check_member,
    check_score,
    may_accept,
    may_close,
    may_see,
    may_work,
)
from server.errors import Forbidden, InvalidField, NotFound
from server.http.admission import bearer, is_admin
from server.http.auth import actor_of_person
from server.http.cycle_view import current_actions, cycle_notes, lesson_notes, whole
from server.http.cycle_view import cycle_progress as cycle_progress_of
from server.http.request import read_json, worker_of
from server.http.signed_in import require_person
from server.people.model import Person
from server.people.rules import trust_of
from server.session.room_records import new_room_id
from server.session.worker import Worker
from server.sync.store import RoomRecord

PRIVATE = {"Cache-Control": "no-store"}
MAX_COACHES = 5
MAX_CRITERIA = 10


class NewCycle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    focus: Focus
    framework: str
    teacher: str | None = None  # a coach proposing names the teacher; else it is me
    coaches: list[str] = msgspec.field(default_factory=list)
    success_criteria: list[Criterion] = msgspec.field(default_factory=list)


class NewSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: SessionKind
    video: str | None = None


class NewLesson(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    video: str


class NewScore(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    video: str
    criterion: str
    level: int
    evidence: list[str] = msgspec.field(default_factory=list)


def cycle_json(cycle: Cycle) -> dict[str, object]:
    return msgspec.to_builtins(cycle)  # type: ignore[no-any-return]


async def _colleagues(worker: Worker, me: Person, ids: Sequence[str]) -> list[Person]:
    """People of my own trust, by id; NotFound naming the first that is not."""
    found = []
    for person_id in ids:
        person = await worker.people.get(person_id)
        if person is None or trust_of(worker.orgs, person.org) != trust_of(worker.orgs, me.org):
            raise NotFound(f"no person {person_id[:64]!r} of your trust")
        found.append(person)
    return found


async def create(request: Request) -> Response:
    """The teacher starts a cycle of their own (active at once), or a coach proposes one to a
    teacher (it starts when the teacher accepts)."""
    worker = worker_of(request)
    me = await require_person(request)
    asked = await read_json(request, NewCycle)
    worker.frameworks.get(asked.framework)  # NotFound names it
    if len(asked.coaches) > MAX_COACHES or len(asked.success_criteria) > MAX_CRITERIA:
        raise InvalidField(
            f"at most {MAX_COACHES} coaches and {MAX_CRITERIA} success criteria a cycle"
        )
    teacher_id = asked.teacher or me.id
    coach_ids = list(dict.fromkeys(asked.coaches))
    if teacher_id != me.id:
        if not me.has("coach"):
            raise Forbidden("only a coach may propose a cycle to a teacher")
        coach_ids = list(dict.fromkeys([me.id, *coach_ids]))
    if teacher_id in coach_ids:
        raise InvalidField("the teacher cannot be one of the cycle's coaches")
    await _colleagues(worker, me, [teacher_id, *coach_ids])
    cycle = Cycle(
        id=new_cycle_id(),
        teacher=teacher_id,
        coaches=tuple(coach_ids),
        focus=asked.focus.strip(),
        framework=asked.framework,
        created=time.time(),
        proposed_by=me.id,
        status="active" if teacher_id == me.id else "proposed",
        success_criteria=tuple(c.strip() for c in asked.success_criteria),
    )
    await worker.cycles.save(cycle)
    return JSONResponse(cycle_json(cycle), status_code=201, headers=PRIVATE)


async def list_mine(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    cycles = await worker.cycles.of(me.id)
    return JSONResponse({"cycles": [cycle_json(c) for c in cycles]}, headers=PRIVATE)


async def cycle_for(request: Request, me: Person, *, report: bool = False) -> Cycle:
    """The cycle of the address, for one of its people; with `report`, also for those the
    teacher shared the closed cycle's report with. 404 for anyone else; every read but the
    teacher's is audited."""
    worker = worker_of(request)
    cycle = await worker.cycles.get(request.path_params["cycle"])
    if cycle is None or (report and not may_see(me.id, cycle)):
        raise NotFound(f"no cycle {request.path_params['cycle'][:64]!r} of yours")
    if not report:
        check_member(me.id, cycle)
    if me.id != cycle.teacher:
        worker.audit.record(
            "cycle.read", actor_of_person(me), remote=remote_of(request), cycle=cycle.id
        )
    return cycle


async def get_one(request: Request) -> Response:
    """The cycle with all its page shows (server/http/cycle_view.py)."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    return JSONResponse(await whole(worker, cycle), headers=PRIVATE)


async def notes(request: Request) -> Response:
    """The notes on the cycle's lessons (`?video=` one of them): what a score or an action
    may cite as evidence."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    video = request.query_params.get("video")
    return JSONResponse({"notes": await lesson_notes(worker, cycle, video)}, headers=PRIVATE)


async def accept(request: Request) -> Response:
    return await _move(request, may_accept, "active", "only the teacher accepts a proposed cycle")


async def close(request: Request) -> Response:
    return await _move(
        request, may_close, "closed", "only the teacher closes the cycle, once it is active"
    )


async def _move(
    request: Request, allowed: Callable[[str, Cycle], bool], status: CycleStatus, refusal: str
) -> Response:
    """The teacher moves the cycle on: accepted (active), or closed."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    if not allowed(me.id, cycle):
        raise Forbidden(refusal)
    moved = msgspec.structs.replace(cycle, status=status)
    await worker.cycles.save(moved)
    return JSONResponse(cycle_json(moved), headers=PRIVATE)


def _working(me: Person, cycle: Cycle) -> None:
    if not may_work(me.id, cycle):
        raise Forbidden(f"the cycle is {cycle.status}: nothing can be added to it")


async def _lesson_of(worker: Worker, cycle: Cycle, video_id: str) -> None:
    """A lesson may join the cycle if it is the teacher's own video."""
    record = await worker.videos.get(video_id)
    if record is None or record.owner != cycle.teacher:
        raise NotFound(f"no video {video_id[:64]!r} of the cycle's teacher")


async def add_session(request: Request) -> Response:
    """A room bound to the cycle, with its framework and its people."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    _working(me, cycle)
    asked = await read_json(request, NewSession)
    lessons = cycle.lessons
    if asked.video is not None:
        await _lesson_of(worker, cycle, asked.video)
        lessons = tuple(dict.fromkeys([*lessons, asked.video]))
    teacher = await worker.people.get(cycle.teacher)
    assert teacher is not None
    org = teacher.org if worker.orgs.configured else None
    people = {cycle.teacher: "teacher", **{coach: "coach" for coach in cycle.coaches}}
    coach_orgs = set()
    for coach_id in cycle.coaches:
        coach = await worker.people.get(coach_id)
        if coach is not None and org is not None and coach.org != org:
            coach_orgs.add(coach.org)
    number = len(cycle.sessions) + 1
    record = RoomRecord(
        id=new_room_id(),
        title=f"{cycle.focus[:80]}: {asked.kind} {number}",
        created=time.time(),
        org=org,
        shared=tuple(sorted(coach_orgs)),
        framework=cycle.framework,
        video=asked.video,
        people=people,
        cycle=cycle.id,
    )
    await worker.store.create_room(record)
    if cycle.sessions:  # what we agreed to try, in view from the first moment of this one
        await worker.documents.carry_actions(record, await current_actions(worker, cycle))
    session = CycleSession(record.id, asked.kind, record.created, asked.video)
    changed = msgspec.structs.replace(cycle, sessions=(*cycle.sessions, session), lessons=lessons)
    await worker.cycles.save(changed)
    return JSONResponse(
        {"room": record.id, "cycle": cycle_json(changed)}, status_code=201, headers=PRIVATE
    )


async def add_lesson(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    _working(me, cycle)
    asked = await read_json(request, NewLesson)
    await _lesson_of(worker, cycle, asked.video)
    changed = msgspec.structs.replace(
        cycle, lessons=tuple(dict.fromkeys([*cycle.lessons, asked.video]))
    )
    await worker.cycles.save(changed)
    return JSONResponse(cycle_json(changed), headers=PRIVATE)


async def score(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    asked = await read_json(request, NewScore)
    framework = worker.frameworks.get(cycle.framework)
    given = Score(
        cycle=cycle.id,
        video=asked.video,
        scorer=me.id,
        criterion=asked.criterion,
        level=asked.level,
        evidence=tuple(dict.fromkeys(asked.evidence)),
        at=time.time(),
    )
    cited = [note for note, _ in (await cycle_notes(worker, cycle)).get(asked.video, [])]
    check_score(given, cycle, framework, cited)
    await worker.cycles.score(given)
    return JSONResponse(msgspec.to_builtins(given), headers=PRIVATE)


async def cycle_progress(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    return JSONResponse(await cycle_progress_of(worker, cycle), headers=PRIVATE)


class Share(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    person: str


async def share(request: Request) -> Response:
    """The teacher shares a closed cycle's report with a named person of their trust."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me)
    if me.id != cycle.teacher or cycle.status != "closed":
        raise Forbidden("only the teacher shares the report of a cycle, once it is closed")
    asked = await read_json(request, Share)
    (person,) = await _colleagues(worker, me, [asked.person])
    changed = msgspec.structs.replace(
        cycle, shared_with=tuple(dict.fromkeys([*cycle.shared_with, person.id]))
    )
    await worker.cycles.save(changed)
    worker.audit.record(
        "cycle.share",
        actor_of_person(me),
        remote=remote_of(request),
        cycle=cycle.id,
        person=person.id,
    )
    return JSONResponse(cycle_json(changed), headers=PRIVATE)


async def report(request: Request) -> Response:
    """The whole cycle as JSON, for the teacher's portfolio: the cycle, its scores and its
    progress. Its people, and whom the teacher shared the closed cycle with."""
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me, report=True)
    body = {
        "cycle": cycle_json(cycle),
        "scores": [msgspec.to_builtins(s) for s in await worker.cycles.scores(cycle.id)],
        "progress": await cycle_progress_of(worker, cycle),
    }
    headers = {
        **PRIVATE,
        "Content-Disposition": f'attachment; filename="cocoach-cycle-{cycle.id}.json"',
    }
    return JSONResponse(body, headers=headers)


async def person_progress(request: Request) -> Response:
    """A person's progress across their cycles as teacher: for them, for their coaches in
    those cycles (only the cycles they coach), and for the admin key."""
    worker = worker_of(request)
    person_id = request.path_params["person"]
    viewer: Person | None = None
    if not is_admin(worker, bearer(request.headers)):
        viewer = await require_person(request)
    cycles = [c for c in await worker.cycles.of(person_id) if c.teacher == person_id]
    if viewer is not None and viewer.id != person_id:
        cycles = [c for c in cycles if viewer.id in c.coaches]
        if not cycles:
            raise NotFound("no progress of that person that you may see")
        for cycle in cycles:
            worker.audit.record(
                "cycle.read", actor_of_person(viewer), remote=remote_of(request), cycle=cycle.id
            )
    rows = [
        {"cycle": c.id, "focus": c.focus, "status": c.status, **await cycle_progress_of(worker, c)}
        for c in sorted(cycles, key=lambda c: c.created)
    ]
    return JSONResponse({"person": person_id, "cycles": rows}, headers=PRIVATE)
