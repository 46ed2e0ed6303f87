"""One client's WebSocket: a bounded outbound queue drained by a writer task.

Delivering never blocks the sender: a client too slow to keep up is dropped with a reason rather
than buffered forever, and no other member waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketState

from server.errors import CloseCode

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0


class Connection:
    def __init__(self, websocket: WebSocket, member_id: str, queue_size: int) -> None:
        self.websocket = websocket
        self.member_id = member_id
        self.welcomed = False
        self.closing: tuple[int, str] | None = None
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

    async def write_loop(self) -> None:
        while True:
            frame = await self._queue.get()
            if frame is None:
                code, reason = self.closing or (CloseCode.NORMAL, "")
                await self.close(code, reason)
                return
            await self.websocket.send_bytes(frame)

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
