"""The room's rules with no event loop: table-driven, as h11 tests its state machine."""

from __future__ import annotations

import ast
import pathlib

import msgspec
import pytest

from server.messages import (
    Error,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    Pause,
    Play,
    PlaybackChanged,
    Rate,
    Seek,
    Welcome,
)
from server.rooms.effects import Broadcast, Persist, Send
from server.rooms.events import (
    AnnounceMembers,
    ChangePresence,
    ControlPlayback,
    Join,
    Leave,
    LoseWorker,
)
from server.rooms.member import Member
from server.rooms.playback import position_at
from server.rooms.roles import ROLE_PERMISSIONS, Permission, Role, permissions_for
from server.rooms.room import Room, RoomState

ROOMS = pathlib.Path(__file__).parent.parent / "server" / "rooms"
FORBIDDEN_IMPORTS = {"asyncio", "redis", "aiortc", "aioice", "av", "starlette", "websockets"}


def test_rooms_package_imports_no_io() -> None:
    for path in ROOMS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path.name} imports {name}"
                if name.startswith("server."):
                    # Only pure modules of our own: the rules, messages and errors.
                    assert name.split(".")[1] in {"rooms", "messages", "errors"}, (path, name)


def member(mid: str, role: Role = Role.COACH, worker: str = "w1", **kw: object) -> Member:
    return Member(
        id=mid,
        user=f"user:{mid}",
        name=mid.upper(),
        role=role,
        worker=worker,
        permissions=permissions_for(role),
        **kw,  # type: ignore[arg-type]
    )


def room_with(*members: Member) -> Room:
    room = Room("r", "Room")
    for m in members:
        room.handle(Join(m, 1.0))
    return room


# ---- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.COACH, {"view", "control_playback", "edit", "annotate", "talkback"}),
        (Role.TEACHER, {"view", "control_playback", "edit", "annotate", "publish"}),
        (Role.OBSERVER, {"view"}),
        (Role.CAMERA, {"publish"}),
    ],
)
def test_role_table(role: Role, allowed: set[str]) -> None:
    assert {p.value for p in ROLE_PERMISSIONS[role]} == allowed


@pytest.mark.parametrize(
    ("role", "grants", "has", "lacks"),
    [
        (Role.TEACHER, {"talkback": True}, Permission.TALKBACK, None),
        (Role.COACH, {"talkback": False}, None, Permission.TALKBACK),
        (Role.OBSERVER, {"annotate": True, "nonsense": True}, Permission.ANNOTATE, Permission.EDIT),
    ],
)
def test_grants_widen_and_narrow(
    role: Role, grants: dict[str, bool], has: Permission | None, lacks: Permission | None
) -> None:
    permissions = permissions_for(role, grants)
    if has:
        assert has in permissions
    if lacks:
        assert lacks not in permissions


# ---- joins and leaves ---------------------------------------------------------------------


def test_first_join_is_welcomed_and_announced() -> None:
    room = Room("r", "Room")
    ann = member("ann")
    effects = room.handle(Join(ann, 5.0))
    assert isinstance(effects[0], Send) and effects[0].to == "ann"
    welcome = effects[0].message
    assert isinstance(welcome, Welcome)
    assert welcome.you.id == "ann" and welcome.server_time == 5.0
    assert [m.id for m in welcome.members] == ["ann"]
    assert welcome.playback.status == "paused" and welcome.playback.position == 0.0
    assert "control_playback" in welcome.permissions
    assert effects[1:] == [Broadcast(MemberJoined(ann.info()), exclude="ann"), Persist()]


def test_second_join_sees_first() -> None:
    room = room_with(member("ann"))
    effects = room.handle(Join(member("bob", Role.OBSERVER), 2.0))
    welcome = effects[0].message  # type: ignore[union-attr]
    assert isinstance(welcome, Welcome)
    assert {m.id for m in welcome.members} == {"ann", "bob"}
    assert welcome.permissions == ["view"]


def test_repeated_join_is_welcomed_again_but_announced_once() -> None:
    ann = member("ann")
    room = room_with(ann)
    effects = room.handle(Join(ann, 3.0))
    assert len(effects) == 1 and isinstance(effects[0], Send)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (Leave("ann", 2.0), [Broadcast(MemberLeft(id="ann", reason="left")), Persist()]),
        (Leave("nobody", 2.0), []),
        (
            LoseWorker("w1", 2.0),
            [Broadcast(MemberLeft(id="ann", reason="disconnected")), Persist()],
        ),
        (LoseWorker("w9", 2.0), []),
    ],
)
def test_leaving(event: Leave | LoseWorker, expected: list[object]) -> None:
    room = room_with(member("ann"), member("bob", worker="w2"))
    assert room.handle(event) == expected
    assert "bob" in room.members


def test_announce_reconciles_one_workers_members() -> None:
    ann, bob, cy = member("ann"), member("bob"), member("cy", worker="w2")
    room = room_with(ann, bob, cy)
    away = msgspec.structs.replace(bob, status="away")
    dan = member("dan")
    effects = room.handle(AnnounceMembers("w1", (away, dan), 9.0))
    assert Broadcast(MemberLeft(id="ann", reason="left")) in effects
    assert Broadcast(MemberUpdated(away.info())) in effects
    assert Broadcast(MemberJoined(dan.info())) in effects
    assert effects[-1] == Persist()
    assert set(room.members) == {"bob", "cy", "dan"}
    assert room.handle(AnnounceMembers("w1", (away, dan), 9.5)) == []


# ---- presence -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state", "expect"),
    [
        ("away", None, "updated"),
        (None, {"typing": True}, "updated"),
        ("here", None, "nothing"),  # no change, no frame
        ("asleep", None, "error"),
    ],
)
def test_presence(status: str | None, state: dict[str, object] | None, expect: str) -> None:
    room = room_with(member("ann"))
    effects = room.handle(ChangePresence("ann", 2.0, status, state, ref=7))  # type: ignore[arg-type]
    if expect == "updated":
        assert isinstance(effects[0], Broadcast)
        assert isinstance(effects[0].message, MemberUpdated)
    elif expect == "nothing":
        assert effects == []
    else:
        assert effects == [
            Send("ann", Error(code="invalid_field", message=effects[0].message.message, ref=7))
        ]  # type: ignore[union-attr]


# ---- playback and permission refusals -----------------------------------------------------


@pytest.mark.parametrize(
    ("role", "intent", "outcome"),
    [
        (Role.COACH, Play(), "playing"),
        (Role.TEACHER, Play(), "playing"),
        (Role.OBSERVER, Play(), "forbidden"),
        (Role.CAMERA, Play(), "forbidden"),
        (Role.OBSERVER, Seek(position=3.0, ref="s1"), "forbidden"),
        (Role.COACH, Pause(), "unchanged"),
        (Role.COACH, Seek(position=12.5), "paused"),
        (Role.COACH, Seek(position=-1.0), "invalid_field"),
        (Role.COACH, Seek(position=float("nan")), "invalid_field"),
        (Role.COACH, Rate(rate=2.0), "paused"),
        (Role.COACH, Rate(rate=2.5), "invalid_field"),
        (Role.COACH, Rate(rate=0.1), "invalid_field"),
    ],
)
def test_playback_intents(role: Role, intent: object, outcome: str) -> None:
    room = room_with(member("m", role))
    effects = room.handle(ControlPlayback("m", intent, 10.0))  # type: ignore[arg-type]
    if outcome in ("forbidden", "invalid_field"):
        assert len(effects) == 1 and isinstance(effects[0], Send)
        error = effects[0].message
        assert isinstance(error, Error) and error.code == outcome
        expected_ref = getattr(intent, "ref", None) or type(intent).__name__.lower()
        assert error.ref == expected_ref
        assert room.state.playback.seq == 0
    elif outcome == "unchanged":
        assert effects == []
    else:
        assert isinstance(effects[0], Broadcast)
        assert isinstance(effects[0].message, PlaybackChanged)
        assert effects[0].message.playback.status == outcome
        assert effects[0].message.playback.by == "m"
        assert effects[0].message.playback.seq == 1


def test_play_is_scheduled_ahead_and_extrapolates() -> None:
    room = room_with(member("m"))
    room.handle(ControlPlayback("m", Seek(position=30.0), 10.0))
    room.handle(ControlPlayback("m", Rate(rate=2.0), 10.0))
    room.handle(ControlPlayback("m", Play(), 20.0))
    state = room.state.playback
    assert state.status == "playing" and state.at == pytest.approx(20.0 + room.rules.lead)
    assert position_at(state, state.at + 5.0) == pytest.approx(40.0)
    room.handle(ControlPlayback("m", Pause(), state.at + 5.0))
    assert room.state.playback.status == "paused"
    assert room.state.playback.position == pytest.approx(40.0)
    assert room.state.playback.seq == 4


def test_seek_past_known_duration_is_refused() -> None:
    room = Room("r", "Room", state=RoomState(duration=60.0))
    room.handle(Join(member("m"), 1.0))
    effects = room.handle(ControlPlayback("m", Seek(position=61.0), 2.0))
    assert isinstance(effects[0], Send) and "past the end" in effects[0].message.message  # type: ignore[union-attr]


def test_intent_from_unknown_member_is_ignored() -> None:
    assert Room("r", "Room").handle(ControlPlayback("ghost", Play(), 1.0)) == []


def test_state_round_trips_through_msgpack() -> None:
    room = room_with(member("ann"), member("bob", Role.OBSERVER, worker="w2"))
    room.handle(ControlPlayback("ann", Play(), 3.0))
    data = msgspec.msgpack.encode(room.state)
    again = msgspec.msgpack.decode(data, type=RoomState)
    assert again == room.state
