"""The y-websocket wire protocol (y-protocols sync, awareness and auth messages).

Like server/codec.py for the room protocol, this is the one place Yjs frames become typed
messages; everything here checks lengths before it trusts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from server.errors import MalformedFrame, UnknownType

MAX_VAR_UINT_BYTES = 8  # 2**56: far beyond any real length, clock or client id


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    payload: bytes  # kept as sent, to relay unchanged
    states: tuple[tuple[int, int, str], ...]  # (client id, clock, state JSON or "null")


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    pass


YMessage = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness | Auth
EMPTY_STATE = b"\x00"


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self, what: str) -> int:
        value = shift = 0
        for _ in range(MAX_VAR_UINT_BYTES):
            if self.pos >= len(self.data):
                raise MalformedFrame(f"truncated {what}")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise MalformedFrame(f"{what} is too long")

    def var_bytes(self, what: str) -> bytes:
        length = self.var_uint(f"{what} length")
        end = self.pos + length
        if end > len(self.data):
            raise MalformedFrame(f"truncated {what}: {length} bytes announced")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self, what: str) -> str:
        try:
            return self.var_bytes(what).decode()
        except UnicodeDecodeError:
            raise MalformedFrame(f"{what} is not UTF-8") from None


def decode(frame: bytes) -> YMessage:
    reader = Reader(frame)
    kind = reader.var_uint("message type")
    match kind:
        case MessageType.SYNC:
            sync = reader.var_uint("sync message type")
            payload = reader.var_bytes("sync payload")
            match sync:
                case SyncType.STEP1:
                    return SyncStep1(payload)
                case SyncType.STEP2:
                    return SyncStep2(payload)
                case SyncType.UPDATE:
                    return SyncUpdate(payload)
            raise UnknownType(f"unknown sync message type {sync}")
        case MessageType.AWARENESS:
            payload = reader.var_bytes("awareness payload")
            return AwarenessUpdate(payload, decode_awareness(payload))
        case MessageType.QUERY_AWARENESS:
            return QueryAwareness()
        case MessageType.AUTH:
            return Auth()
    raise UnknownType(f"unknown message type {kind}")


def decode_awareness(payload: bytes, max_states: int = 64) -> tuple[tuple[int, int, str], ...]:
    reader = Reader(payload)
    count = reader.var_uint("awareness count")
    if count > max_states:
        raise MalformedFrame(f"awareness update has {count} states, more than {max_states}")
    states = []
    for _ in range(count):
        client = reader.var_uint("awareness client id")
        clock = reader.var_uint("awareness clock")
        state = reader.var_string("awareness state")
        try:
            json.loads(state)
        except (ValueError, RecursionError):  # "[[[[..." nests past the parser's stack
            raise MalformedFrame("awareness state is not JSON") from None
        states.append((client, clock, state))
    return tuple(states)


def decode_state_vector(data: bytes) -> dict[int, int]:
    """A state vector ({client id: next clock}); the encoding's order of clients is not fixed."""
    reader = Reader(data)
    clocks: dict[int, int] = {}
    for _ in range(reader.var_uint("state vector length")):
        client = reader.var_uint("state vector client")
        clocks[client] = reader.var_uint("state vector clock")
    return clocks


def first_client(update: bytes) -> int | None:
    """The first Yjs client an update (v1) carries structs of: a client's own update carries
    only its own, so this names its author's document."""
    reader = Reader(update)
    if reader.var_uint("update client count") == 0:
        return None
    reader.var_uint("update struct count")
    return reader.var_uint("update client")


def covering(client: int) -> bytes:
    """A state vector that holds everything `client` could ever write."""
    return var_uint(1) + var_uint(client) + var_uint(2**53)


def var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def sync_step1(state_vector: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP1]) + var_bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.STEP2]) + var_bytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes([MessageType.SYNC, SyncType.UPDATE]) + var_bytes(update)


def awareness(states: list[tuple[int, int, str]]) -> bytes:
    body = var_uint(len(states)) + b"".join(
        var_uint(client) + var_uint(clock) + var_bytes(state.encode())
        for client, clock, state in states
    )
    return bytes([MessageType.AWARENESS]) + var_bytes(body)


def permission_denied(reason: str) -> bytes:
    """y-protocols auth message: the client logs `reason`; nothing it sent was applied."""
    return bytes([MessageType.AUTH, 0]) + var_bytes(reason.encode())
