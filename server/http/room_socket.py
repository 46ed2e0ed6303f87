"""The room protocol over one WebSocket (docs/protocol.md): authenticate, join, then read
frames until the client leaves, answering pings here and forwarding intents to the home."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import assert_never

import msgspec
from starlette.websockets import WebSocket

from server.audit import actor_of, remote_of
from server.codec import decode_client, encode
from server.edge.rate import TokenBucket
from server.errors import ClientError, CloseCode, ServiceUnavailable
from server.http.admission import admit, close_with
from server.messages import (
    AllowSpeak,
    Buffering,
    ClientMessage,
    Error,
    Lock,
    Mute,
    Pause,
    Ping,
    Play,
    Pong,
    Presence,
    Rate,
    Ready,
    Seek,
    Step,
    Wait,
)
from server.rooms.member import Member
from server.session.connection import Connection
from server.session.worker import Worker
from server.worker_wire import (
    ForwardLock,
    ForwardPlayback,
    ForwardPresence,
    ForwardViewer,
    ForwardVoice,
)

log = logging.getLogger(__name__)


async def serve_room_socket(websocket: WebSocket, worker: Worker) -> None:
    admitted = await admit(websocket, worker)
    if admitted is None:
        return
    claims, permissions, record = admitted
    room_id = record.id
    member = Member(
        id=f"m-{secrets.token_hex(6)}",
        user=claims.sub,
        name=claims.name,
        role=claims.role,
        worker=worker.id,
        permissions=permissions,
        org=claims.org,
    )
    connection = Connection(websocket, member.id, worker.settings.send_queue, worker.metrics.room)
    actor, remote = actor_of(claims), remote_of(websocket)
    joined = time.monotonic()
    try:
        try:
            await worker.attach(connection, member, record)
        except ServiceUnavailable as error:
            await close_with(websocket, error)
            return
        worker.audit.record(
            "room.join", actor, room=room_id, remote=remote, socket="room", member=member.id
        )
        await connection.serve(_read(connection, member, worker, room_id))
    finally:
        reason = "left" if connection.closing is None else connection.closing[1].split(":")[0]
        worker.audit.record(
            "room.leave",
            actor,
            room=room_id,
            remote=remote,
            socket="room",
            member=member.id,
            reason=reason,
            seconds=round(time.monotonic() - joined, 1),
        )
        # Shielded: a cancelled handler (server shutdown) must still tell the home we left.
        await asyncio.shield(worker.detach(room_id, member.id, reason))


async def _read(connection: Connection, member: Member, worker: Worker, room_id: str) -> None:
    settings = worker.settings
    bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
    refused = 0
    counts = connection.counts
    while True:
        frame = await connection.websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        counts.received += 1
        if not bucket.take():
            refused += 1
            if refused == 1:
                _error(connection, "rate_limited", "too many frames: slow down", None)
            if refused >= settings.flood_close_after:
                connection.drop(CloseCode.FLOOD, "flood: too many frames over the rate limit")
                return
            continue
        refused = 0
        data = frame.get("bytes")
        if data is None:
            _error(connection, "malformed", "frames must be binary MessagePack, not text", None)
            continue
        try:
            message = decode_client(data, max_bytes=settings.max_frame_bytes)
        except ClientError as error:
            _error(connection, error.code, error.message, error.ref)
            continue
        member = await _dispatch(message, connection, member, worker, room_id)


async def _dispatch(
    message: ClientMessage, connection: Connection, member: Member, worker: Worker, room_id: str
) -> Member:
    local = worker.rooms[room_id]
    match message:
        case Ping(id=ping_id, t0=t0):
            connection.deliver(encode(Pong(id=ping_id, t0=t0, server_time=time.time())))
        case Presence(status=status, state=state, ref=ref):
            # Kept here as well, so a new home can be told this member's presence.
            if status is not None or state is not None:
                member = msgspec.structs.replace(
                    member,
                    status=member.status if status is None else status,
                    state=member.state if state is None else state,
                )
                local.update(member)
            await local.forward(ForwardPresence(member.id, status, state, ref))
        case Play() | Pause() | Seek() | Rate() | Step():
            await local.forward(ForwardPlayback(member.id, message))
        case Buffering() | Ready() | Wait():
            await local.forward(ForwardViewer(member.id, message))
        case Lock():
            await local.forward(ForwardLock(member.id, message))
        case Mute() | AllowSpeak():
            await local.forward(ForwardVoice(member.id, message))
        case _:
            assert_never(message)
    return member


def _error(connection: Connection, code: str, message: str, ref: str | int | None) -> None:
    connection.deliver(encode(Error(code=code, message=message, ref=ref)))
