"""uvicorn, taught to drain. uvicorn's own shutdown closes every WebSocket with 1012 before the
app hears of it, so clients would never get the `reconnect` frame and the worker would still
hold its rooms' leases while they reconnected elsewhere. This server stops listening, lets the
worker drain (docs/operations.md#stopping-a-worker), and only then runs uvicorn's shutdown."""

from __future__ import annotations

import logging
import socket

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette, drain_seconds: float) -> None:
        super().__init__(config)
        self.starlette = app
        self.drain_seconds = drain_seconds

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting: the load balancer sends new clients elsewhere
        for sock in sockets or []:
            sock.close()
        worker = getattr(self.starlette.state, "worker", None)
        if worker is not None and not self.force_exit:
            await worker.drain(self.drain_seconds)
        await super().shutdown(sockets)
