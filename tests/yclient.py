"""A y-websocket client for tests: a pycrdt Doc kept in sync over a real WebSocket.

It speaks the protocol from its bytes (written here from the y-protocols spec, not with the
server's codec), so server bugs in the codec cannot hide behind the same code on both sides.
Interoperability with the stock JavaScript client is proven separately (tests/js)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import websockets
from pycrdt import Doc, Map, Text

from tests.support import TIMEOUT


def _uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _read_uint(data, pos)
    return data[pos : pos + length], pos + length


class YClient:
    def __init__(self, ws: websockets.ClientConnection, doc: Doc[Any] | None = None) -> None:
        self.ws = ws
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.plan = self.doc.get("plan", type=Text)
        self.timeline = self.doc.get("timeline", type=Map)
        self.meta = self.doc.get("meta", type=Map)
        self.denied: asyncio.Queue[str] = asyncio.Queue()
        self.awareness: dict[int, dict[str, Any] | None] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self._remote = False
        self._outbox: list[bytes] = []
        self.doc.observe(self._on_local_change)

    def _on_local_change(self, event: Any) -> None:
        if not self._remote:
            self._outbox.append(bytes([0, 2]) + _uint(len(event.update)) + event.update)

    async def flush(self) -> None:
        """Send what changed locally since the last flush."""
        outbox, self._outbox = self._outbox, []
        for frame in outbox:
            await self.ws.send(frame)

    async def send_raw(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def send_awareness(self, client: int, clock: int, state: dict[str, Any] | None) -> None:
        body = json.dumps(state).encode()
        entry = _uint(1) + _uint(client) + _uint(clock) + _uint(len(body)) + body
        await self.ws.send(bytes([1]) + _uint(len(entry)) + entry)

    async def run(self) -> None:
        async for frame in self.ws:
            assert isinstance(frame, bytes)
            kind, pos = _read_uint(frame, 0)
            if kind == 0:
                sync, pos = _read_uint(frame, pos)
                payload, _ = _read_bytes(frame, pos)
                if sync == 0:  # the server's state vector: send what it lacks, then ask
                    mine = self.doc.get_update(payload)
                    await self.ws.send(bytes([0, 1]) + _uint(len(mine)) + mine)
                    state = self.doc.get_state()
                    await self.ws.send(bytes([0, 0]) + _uint(len(state)) + state)
                else:
                    self._remote = True
                    try:
                        self.doc.apply_update(payload)
                    finally:
                        self._remote = False
                    if sync == 1:
                        self.synced.set()
                    self.changed.set()
            elif kind == 1:
                payload, _ = _read_bytes(frame, pos)
                count, p = _read_uint(payload, 0)
                for _ in range(count):
                    client, p = _read_uint(payload, p)
                    _clock, p = _read_uint(payload, p)
                    state, p = _read_bytes(payload, p)
                    self.awareness[client] = json.loads(state)
                self.changed.set()
            elif kind == 2:
                reason, _ = _read_bytes(frame, pos + 1)
                self.denied.put_nowait(reason.decode())

    async def until(self, predicate: Any, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def ydoc(
    base: str, room: str, token: str, doc: Doc[Any] | None = None
) -> AsyncIterator[YClient]:
    """A synced client; pass the `doc` of an earlier connection to reconnect with it (the
    handshake then sends the server what was typed offline, as y-websocket does)."""
    url = f"{base.replace('http', 'ws', 1)}/yjs/{room}?token={token}"
    async with websockets.connect(url, max_size=None) as ws:
        client = YClient(ws, doc)
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.synced.wait(), TIMEOUT)
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


def state_vector(data: bytes) -> dict[int, int]:
    """A Yjs state vector as {client: clock}: the encoding's order of clients is not fixed."""
    count, pos = _read_uint(data, 0)
    clocks = {}
    for _ in range(count):
        client, pos = _read_uint(data, pos)
        clocks[client], pos = _read_uint(data, pos)
    assert pos == len(data), "trailing bytes after the state vector"
    return clocks
