"""The y-websocket sync protocol for the load generator, with two framings.

- `YWebsocket` (cocoach, and the stock y-websocket server): each WebSocket frame is one
  y-protocols message, `varuint type` then its body.
- `Hocuspocus`: every message is prefixed with `varString documentName` (one socket may carry
  several documents), and the client must authenticate each document first:
  `[name][2 auth][0 token][varString token]`, answered by `[name][2][2 authenticated][scope]`
  or `[name][2][1 permission denied][reason]` (@hocuspocus/common auth.ts). The server queues
  anything else until then. It acknowledges every update with `[name][8 syncStatus][varuint 1]`.
  Sync messages are the y-protocols ones: 0 step1, 1 step2, 2 update
  (@hocuspocus/provider OutgoingMessages/*, @hocuspocus/server MessageReceiver.ts).

Both clients open as the stock providers do: send step1 (our state vector), answer the
server's step1 with step2, and count as synced on the server's step2.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, ClassVar

import websockets
from pycrdt import Doc

# The load generator shares the server's codec (tests/yclient.py deliberately does not).
from server.yjs_wire import MessageType, Reader, SyncType, var_bytes

SYNC, AUTH = MessageType.SYNC, MessageType.AUTH
HP_SYNC_STATUS = 8  # Hocuspocus only: the server's ack of each update
STEP1, STEP2, UPDATE = SyncType.STEP1, SyncType.STEP2, SyncType.UPDATE


def sync_message(kind: int, payload: bytes) -> bytes:
    return bytes([SYNC, kind]) + var_bytes(payload)


class Adapter:
    """How one server frames the y-protocols messages of one document."""

    name: ClassVar[str]

    def url(self, base: str, room: str, token: str) -> str:
        raise NotImplementedError

    def prefix(self, room: str) -> bytes:
        """Bytes before every message of `room`."""
        return b""

    def opening(self, room: str, token: str) -> list[bytes]:
        """Messages the client sends before its step1."""
        return []

    def auth(self, body: Reader) -> str | None:
        """An auth message's meaning (`body` read past its type): None if it is a success, else
        why we were refused."""
        raise NotImplementedError


class YWebsocket(Adapter):
    name = "cocoach"

    def url(self, base: str, room: str, token: str) -> str:
        return f"{base.replace('http', 'ws', 1)}/yjs/{room}?token={token}"

    def auth(self, body: Reader) -> str | None:
        # y-protocols auth: the only message is 0 = permission denied, with a reason.
        body.var_uint("auth message type")
        return body.var_bytes("auth reason").decode(errors="replace")


class Hocuspocus(Adapter):
    name = "hocuspocus"

    def url(self, base: str, room: str, token: str) -> str:
        # The document is named in every message; the path is not read by the server.
        return f"{base.replace('http', 'ws', 1)}/{room}"

    def prefix(self, room: str) -> bytes:
        return var_bytes(room.encode())

    def opening(self, room: str, token: str) -> list[bytes]:
        return [self.prefix(room) + bytes([AUTH, 0]) + var_bytes(token.encode())]

    def auth(self, body: Reader) -> str | None:
        kind = body.var_uint("auth message type")
        if kind == 2:  # authenticated (scope follows)
            return None
        if kind == 1:
            return body.var_bytes("auth reason").decode(errors="replace")
        return f"unexpected auth message {kind}"


ADAPTERS: dict[str, Adapter] = {a.name: a for a in (YWebsocket(), Hocuspocus())}

# on_update(receive time, update bytes): called for every step2 and update the server sends.
UpdateCallback = Callable[[float, bytes], None]


class YClient:
    """One document over one WebSocket. `doc` is kept in sync when `apply` is set."""

    def __init__(
        self,
        adapter: Adapter,
        room: str,
        ws: websockets.ClientConnection,
        *,
        apply: bool = True,
        on_update: UpdateCallback | None = None,
    ) -> None:
        self.adapter = adapter
        self.room = room
        self.ws = ws
        self.prefix = adapter.prefix(room)
        self.doc: Doc[Any] = Doc()
        self.apply = apply
        self.on_update = on_update
        self.synced = asyncio.Event()
        self.synced_at: float | None = None
        self.denied: list[str] = []
        self.acks = 0
        self.closed: tuple[int | None, str] | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self, token: str) -> None:
        for frame in self.adapter.opening(self.room, token):
            await self.ws.send(frame)
        await self.ws.send(self.prefix + sync_message(STEP1, self.doc.get_state()))
        self.task = asyncio.create_task(self._run(), name=f"{self.adapter.name} {self.room}")

    async def send_frame(self, frame: bytes) -> None:
        """A whole frame, prefix included (see `update_frame`)."""
        await self.ws.send(frame)

    def update_frame(self, update: bytes) -> bytes:
        return self.prefix + sync_message(UPDATE, update)

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                now = time.perf_counter()
                assert isinstance(frame, bytes), "Yjs frames are binary"
                self._handle(now, frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = (self.ws.close_code, self.ws.close_reason or "")

    def _handle(self, now: float, frame: bytes) -> None:
        reader = Reader(frame)
        reader.pos = len(self.prefix)
        kind = reader.var_uint("message type")
        if kind == SYNC:
            sync = reader.var_uint("sync message type")
            payload = reader.var_bytes("sync payload")
            if sync == STEP1:
                reply = self.prefix + sync_message(STEP2, self.doc.get_update(payload))
                task = asyncio.create_task(self.ws.send(reply))
                task.add_done_callback(_quiet)
                return
            if self.on_update is not None:
                self.on_update(now, payload)
            if self.apply:
                self.doc.apply_update(payload)
            if sync == STEP2 and not self.synced.is_set():
                self.synced_at = now
                self.synced.set()
        elif kind == AUTH:
            problem = self.adapter.auth(reader)
            if problem is not None:
                self.denied.append(problem)
        elif kind == HP_SYNC_STATUS:
            self.acks += 1
        # Awareness and query-awareness: this benchmark has no presence; nothing to do.

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # a send on a closing socket: the reader notices the close


async def connect(
    adapter: Adapter,
    base: str,
    room: str,
    token: str,
    *,
    apply: bool = True,
    on_update: UpdateCallback | None = None,
    timeout: float = 10.0,
) -> YClient:
    ws = await asyncio.wait_for(
        websockets.connect(
            adapter.url(base, room, token),
            max_size=None,
            compression=None,  # neither server negotiates it by default; keep the cost out
            open_timeout=timeout,
            ping_interval=None,  # the servers ping us; the client needs no keepalive of its own
        ),
        timeout,
    )
    client = YClient(adapter, room, ws, apply=apply, on_update=on_update)
    await client.open(token)
    return client
