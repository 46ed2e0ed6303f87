"""One client's WebSocket: a bounded outbound queue drained by a writer task.

Delivering never blocks the sender: a client too slow to keep up is dropped with a reason rather
than buffered forever, and no other member waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.errors import CloseCode
from server.metrics import FrameCounts

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        member_id: str,
        queue_size: int,
        counts: FrameCounts | None = None,
    ) -> None:
        self.websocket = websocket
        self.counts = counts if counts is not None else FrameCounts()
        self.member_id = member_id
        self.welcomed = False
        self.closing: tuple[int, str] | None = None
        self.dropped = asyncio.Event()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)

    def deliver(self, frame: bytes) -> None:
        if self.closing is not None:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("dropping member %s: send queue full", self.member_id)
            self.drop(CloseCode.SLOW_CONSUMER, "slow_consumer: client did not read its frames")

    def drop(self, code: int, reason: str) -> None:
        """Close after the frames already queued, or at once if they cannot all fit: the close
        itself must always get through."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        if code == CloseCode.SLOW_CONSUMER or self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(None)
        self.dropped.set()

    async def serve(self, reader: Coroutine[Any, Any, None]) -> None:
        """Run the writer and `reader` until the client leaves or is dropped."""
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self.write_loop())
            reading = group.create_task(reader)
            dropped = group.create_task(self.dropped.wait())
            await asyncio.wait({writer, reading, dropped}, return_when=asyncio.FIRST_COMPLETED)
            dropped.cancel()
            reading.cancel()
            if self.closing is None:  # the client went away
                writer.cancel()
                return
            code, reason = self.closing
            if code != CloseCode.SLOW_CONSUMER:
                # Let the writer flush what is queued (the error that explains the close).
                await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT)
            if not writer.done():
                # A slow client's send may never complete: stop waiting for it.
                writer.cancel()
                await self.close(code, reason)

    async def write_loop(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                code, reason = self.closing or (CloseCode.NORMAL, "")
                await self.close(code, reason)
                return
            try:
                await self.websocket.send_bytes(frame)
            except WebSocketDisconnect:
                return  # the client went away mid-send: nothing more to write, no error
            self.counts.sent += 1

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.websocket.close(code, reason[:120])
        except (TimeoutError, RuntimeError, OSError) as exc:
            # The peer is gone or not reading; returning ends the handler and uvicorn drops
            # the transport.
            log.info("close of member %s did not complete: %r", self.member_id, exc)
