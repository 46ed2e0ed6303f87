"""The room protocol's codec: a client's frames become typed messages here, and only here.

Client frames are decoded in two steps (any MessagePack, then the typed message) so each kind of
wrongness gets its own error code and a message naming what was wrong. The other wire protocols
have a module each: `worker_wire.py` (between workers), `media_wire.py` (media requests to a
room's home), `yjs_wire.py` (y-websocket).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from server.errors import FrameTooLarge, InvalidField, MalformedFrame, UnknownType
from server.messages import (
    CLIENT_TYPES,
    ClientMessage,
    Presence,
    ServerMessage,
)

PRESENCE_STATE_MAX_BYTES = 1024
T = TypeVar("T")

_any = msgspec.msgpack.Decoder()
_encoder = msgspec.msgpack.Encoder()


def encode(message: ServerMessage | msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def decode_client(frame: bytes, *, max_bytes: int) -> ClientMessage:
    if len(frame) > max_bytes:
        raise FrameTooLarge(f"frame of {len(frame)} bytes is over the limit of {max_bytes}")
    try:
        obj = _any.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # A str with bytes that are not UTF-8 raises the latter (found by tests/test_fuzz.py).
        raise MalformedFrame(f"frame is not valid MessagePack: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedFrame(f"frame must be a MessagePack map, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MalformedFrame("frame has no `type` key with a string value")
    cls = CLIENT_TYPES.get(kind)
    if cls is None:
        raise UnknownType(f"unknown message type {kind[:40]!r}", ref=kind[:40])
    ref = obj.get("ref")
    ref = ref if isinstance(ref, str | int) and not isinstance(ref, bool) else kind
    try:
        message = msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise InvalidField(f"{kind}: {exc}", ref=ref) from None
    if isinstance(message, Presence) and message.state is not None:
        size = len(_encoder.encode(message.state))
        if size > PRESENCE_STATE_MAX_BYTES:
            raise InvalidField(
                f"presence.state is {size} bytes, over the limit of {PRESENCE_STATE_MAX_BYTES}",
                ref=ref,
            )
    return message


def decode_as(data: bytes, cls: type[T]) -> T:
    """Decode trusted internal data (our own snapshots) into `cls`."""
    return msgspec.msgpack.decode(data, type=cls)
