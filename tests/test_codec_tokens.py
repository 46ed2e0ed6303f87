"""Bad input at the codec and the token check: each kind gets its own clear error."""

from __future__ import annotations

import time

import jwt
import msgspec
import pytest

from server.codec import decode_client, encode
from server.errors import (
    FrameTooLarge,
    InvalidField,
    MalformedFrame,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRoleUnknown,
    TokenWrongRoom,
    UnknownType,
)
from server.messages import Buffering, Lock, Ping, Presence, Ready, Seek, Step, Wait
from server.tokens import verify
from server.worker_wire import ForwardLock, ForwardPlayback, ForwardViewer, ToHome, decode_forward
from tests.support import SECRET, token

pack = msgspec.msgpack.encode


@pytest.mark.parametrize(
    ("frame", "error", "words"),
    [
        (b"\xc1", MalformedFrame, "not valid MessagePack"),
        (b"", MalformedFrame, "not valid MessagePack"),
        (b"\xa4\x00\x00\x00\x80", MalformedFrame, "not valid MessagePack"),  # bad UTF-8
        (pack([1, 2]), MalformedFrame, "map, got list"),
        (pack({"t": 1}), MalformedFrame, "`type`"),
        (pack({"type": 5}), MalformedFrame, "`type`"),
        (pack({"type": "dance"}), UnknownType, "'dance'"),
        (pack({"type": "ping", "id": 1}), InvalidField, "t0"),
        (pack({"type": "ping", "id": 1, "t0": "now"}), InvalidField, "$.t0"),
        (pack({"type": "seek", "position": [1]}), InvalidField, "$.position"),
        (pack({"type": "presence", "status": "asleep"}), InvalidField, "$.status"),
        (pack({"type": "presence", "state": {"k": [1]}}), InvalidField, "$.state"),
        (pack({"type": "presence", "state": {"k": "x" * 2000}}), InvalidField, "over the limit"),
        (pack({"type": "step"}), InvalidField, "frames"),
        (pack({"type": "step", "frames": 1.5}), InvalidField, "$.frames"),
        (pack({"type": "step", "frames": 2.0}), InvalidField, "$.frames"),  # whole, not float
        (pack({"type": "step", "frames": True}), InvalidField, "$.frames"),
        (pack({"type": "wait", "wait_for_me": 0}), InvalidField, "$.wait_for_me"),
        (pack({"type": "lock"}), InvalidField, "locked"),
        (pack({"type": "buffering", "ref": [1]}), InvalidField, "$.ref"),
        (pack({"type": "ping", "id": 1, "t0": 0, "pad": "x" * 70000}), FrameTooLarge, "over"),
    ],
)
def test_bad_frames(frame: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        decode_client(frame, max_bytes=64 * 1024)
    assert words in str(caught.value)


def test_good_frames_and_extra_fields() -> None:
    assert decode_client(pack({"type": "ping", "id": 3, "t0": 1}), max_bytes=999) == Ping(3, 1.0)
    seek = decode_client(pack({"type": "seek", "position": 2, "ref": "a", "new": 1}), max_bytes=999)
    assert seek == Seek(position=2.0, ref="a")
    presence = decode_client(pack({"type": "presence", "status": "away"}), max_bytes=999)
    assert presence == Presence(status="away")
    for frame, message in [
        ({"type": "step", "frames": -3, "ref": 1}, Step(frames=-3, ref=1)),
        ({"type": "buffering"}, Buffering()),
        ({"type": "ready", "ref": "r"}, Ready(ref="r")),
        ({"type": "wait", "wait_for_me": False}, Wait(wait_for_me=False)),
        ({"type": "lock", "locked": True}, Lock(locked=True)),
    ]:
        assert decode_client(pack(frame), max_bytes=999) == message


def test_new_intents_cross_between_workers() -> None:
    for forward in [
        ForwardPlayback("m-1", Step(frames=2, ref="s")),
        ForwardViewer("m-1", Buffering()),
        ForwardViewer("m-1", Ready(ref=3)),
        ForwardViewer("m-1", Wait(wait_for_me=False)),
        ForwardLock("m-1", Lock(locked=True)),
    ]:
        assert decode_forward(encode(ToHome("w1", 7, forward))).message == forward


def test_error_ref_is_the_clients_ref() -> None:
    with pytest.raises(InvalidField) as caught:
        decode_client(pack({"type": "seek", "position": "x", "ref": 42}), max_bytes=999)
    assert caught.value.ref == 42


def test_valid_token() -> None:
    claims = verify(SECRET, token("r1", "teacher", "Tess", org="north"), room="r1")
    assert (claims.name, claims.role.value, claims.org, claims.sub) == (
        "Tess",
        "teacher",
        "north",
        "user:tess",
    )


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: None, TokenMissing),
        (lambda: "", TokenMissing),
        (lambda: "not-a-jwt", TokenInvalid),
        (lambda: token("r1", secret="another-secret-that-is-long-enough!!"), TokenInvalid),
        (lambda: token("r1", ttl=-10), TokenExpired),
        (lambda: token("r2"), TokenWrongRoom),
        (lambda: "x" * 5000, TokenInvalid),
        (
            lambda: jwt.encode(
                {"sub": "a", "name": "A", "room": "r1", "role": "janitor", "exp": time.time() + 60},
                SECRET,
            ),
            TokenRoleUnknown,
        ),
        (
            lambda: jwt.encode({"sub": "a", "name": "A", "room": "r1", "role": "coach"}, SECRET),
            TokenInvalid,
        ),
        (
            lambda: jwt.encode(
                {"sub": "a", "name": "A", "room": "r1", "role": "coach", "exp": time.time() + 60},
                SECRET,
                algorithm="HS512",
            ),
            TokenInvalid,
        ),
        (
            lambda: jwt.encode(
                {"sub": 5, "name": "A", "room": "r1", "role": "coach", "exp": time.time() + 60},
                SECRET,
            ),
            TokenInvalid,
        ),
    ],
)
def test_refused_tokens(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify(SECRET, make(), room="r1")  # type: ignore[operator]
