"""The shared document over one WebSocket, in the standard y-websocket protocol, so a stock
`WebsocketProvider` (or pycrdt's client) joins with no adapter (docs/documents.md)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import assert_never

from starlette.websockets import WebSocket

from server import yjs_wire
from server.audit import actor_of, remote_of
from server.edge.rate import TokenBucket
from server.errors import (
    ClientError,
    CloseCode,
    ServiceUnavailable,
)
from server.http.admission import admit, close_with
from server.rooms.roles import Permission
from server.session.connection import Connection
from server.session.doc_state import BAD_UPDATE
from server.session.document import RoomDocument
from server.session.worker import Worker
from server.tokens import Claims

log = logging.getLogger(__name__)


async def serve_yjs_socket(websocket: WebSocket, worker: Worker) -> None:
    admitted = await admit(websocket, worker, needs=Permission.VIEW)
    if admitted is None:
        return
    claims, permissions, record = admitted
    room_id = record.id
    try:
        document = await worker.documents.open(record)
    except ServiceUnavailable as error:
        await close_with(websocket, error)
        return
    connection = Connection(
        websocket, f"y-{secrets.token_hex(6)}", worker.settings.send_queue, worker.metrics.yjs
    )
    try:
        await document.catch_up()
    except (TimeoutError, ServiceUnavailable) as exc:
        log.warning("room %s: joining before the replica caught up: %r", room_id, exc)
    document.add(connection)
    actor, remote = actor_of(claims), remote_of(websocket)
    joined = time.monotonic()
    worker.audit.record("room.join", actor, room=room_id, remote=remote, socket="yjs")
    try:
        # The server speaks first, as y-websocket servers do: our state vector, then who is here.
        connection.deliver(yjs_wire.sync_step1(document.content.state_vector()))
        aware = document.awareness_frame()
        if aware is not None:
            connection.deliver(aware)
        await connection.serve(_read(connection, document, worker, claims, permissions))
    finally:
        document.remove(connection)
        worker.audit.record(
            "room.leave",
            actor,
            room=room_id,
            remote=remote,
            socket="yjs",
            seconds=round(time.monotonic() - joined, 1),
        )


async def _read(
    connection: Connection,
    document: RoomDocument,
    worker: Worker,
    claims: Claims,
    permissions: frozenset[Permission],
) -> None:
    settings = worker.settings
    bucket = TokenBucket(settings.yjs_rate_per_second, settings.yjs_rate_burst)
    counts = connection.counts
    while True:
        frame = await connection.websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        arrived = time.perf_counter()
        counts.received += 1
        if not bucket.take():
            # No Yjs message can say "slow down", and dropping an update would lose it: close,
            # and the client's reconnect re-syncs by state vectors with nothing lost.
            connection.drop(CloseCode.FLOOD, "flood: too many Yjs messages; reconnect")
            return
        data = frame.get("bytes")
        if data is None:
            connection.deliver(yjs_wire.permission_denied("frames must be binary"))
            continue
        limit = settings.yjs_max_frame_bytes
        if len(data) > limit:
            reason = f"frame_too_large: {len(data)} bytes is over the limit of {limit}"
            connection.deliver(yjs_wire.permission_denied(reason))
            continue
        try:
            message = yjs_wire.decode(data)
        except ClientError as error:
            connection.deliver(yjs_wire.permission_denied(f"{error.code}: {error.message}"))
            continue
        await _dispatch(message, connection, document, worker, claims, permissions, arrived)


async def _dispatch(
    message: yjs_wire.YMessage,
    connection: Connection,
    document: RoomDocument,
    worker: Worker,
    claims: Claims,
    permissions: frozenset[Permission],
    arrived: float,
) -> None:
    match message:
        case yjs_wire.SyncStep1(state_vector=state_vector):
            try:
                connection.deliver(document.content.sync_step2_for(state_vector))
            except BAD_UPDATE:
                connection.deliver(yjs_wire.permission_denied("malformed: bad state vector"))
        case yjs_wire.SyncStep2(update=update) | yjs_wire.SyncUpdate(update=update):
            problem, store = document.apply_client_update(update, claims.sub, permissions)
            added = document.content.added  # read now: another client's update may follow
            if problem is not None:
                log.info("room %s: update from %s refused: %s", document.id, claims.sub, problem)
                connection.deliver(yjs_wire.permission_denied(problem))
            elif store:
                await worker.documents.write(
                    document, update, connection.member_id, received=arrived
                )
                bound = document.content.bind_added(added)  # notes added without their lesson
                if bound is not None:
                    await worker.documents.write(document, bound, None)
        case yjs_wire.AwarenessUpdate():
            document.local_awareness(connection.member_id, message)
        case yjs_wire.QueryAwareness():
            frame = document.awareness_frame()
            if frame is not None:
                connection.deliver(frame)
        case yjs_wire.Auth():
            pass  # clients do not send these; ignoring one costs nothing
        case _:
            assert_never(message)
