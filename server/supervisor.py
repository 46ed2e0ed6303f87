"""`cocoach serve` keeps its worker alive: the worker is a child process on the listening
socket the supervisor bound, and a worker that dies (a crash in native code, the OOM killer, a
SIGKILL) is started again at once on that same socket. Connections that arrive meanwhile wait
in the socket's backlog; clients that were connected reconnect by themselves, and find their
rooms as the last worker saved them (it writes ahead: docs/operations.md).

SIGTERM and SIGINT (Ctrl+C) are passed on to the worker once, as SIGTERM: it drains and exits,
and the supervisor then exits with it. The supervisor itself serves nothing and runs no codec
(server/cli.py keeps its imports to parsing and supervising; of the media code it loads only
PyAV's list of codecs, checked once at start), so nothing in it can crash the way a worker can.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from server.lifeline import die_with_parent

log = logging.getLogger(__name__)

LISTEN_FD = "COCOACH_LISTEN_FD"  # the worker's listening socket, inherited from the supervisor
READY_FD = "COCOACH_READY_FD"  # the worker writes a byte here once it serves
SUPERVISOR_PID = "COCOACH_SUPERVISOR_PID"  # the worker dies with its supervisor
FIRST_DELAY = 0.1  # seconds before a worker that died while serving is started again
MAX_DELAY = 5.0  # the longest wait between restarts of a worker that keeps dying at start


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class Supervisor:
    def __init__(self, argv: list[str], sock: socket.socket) -> None:
        self.argv = argv
        self.sock = sock
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarts = 0

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        delay = FIRST_DELAY
        while True:
            started = time.monotonic()
            ready_read, ready_write = os.pipe()
            try:
                self.child = self._start(ready_write)
            finally:
                os.close(ready_write)
            try:
                code, served = self._wait(self.child, ready_read)
            finally:
                os.close(ready_read)
            if self.stopping:
                return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
            lived = time.monotonic() - started
            # A worker that served died of something that happened to it: start another at
            # once. One that never got to serve would die again: back off.
            delay = FIRST_DELAY if served else min(MAX_DELAY, delay * 2)
            self.restarts += 1
            log.error(
                "the worker process %d stopped (%s) after %.1f s; starting it again in %.1f s",
                self.child.pid,
                describe(code),
                lived,
                delay,
            )
            if self._stopped_within(delay):
                return 0

    def _stopped_within(self, seconds: float) -> bool:
        """Wait `seconds` before the next start, unless told to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping:
                return True
            time.sleep(0.05)
        return self.stopping

    def _start(self, ready_fd: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env[LISTEN_FD] = str(self.sock.fileno())
        env[READY_FD] = str(ready_fd)
        env[SUPERVISOR_PID] = str(os.getpid())
        child = subprocess.Popen(
            self.argv,
            pass_fds=(self.sock.fileno(), ready_fd),
            env=env,
            # Its own process group: a Ctrl+C reaches the supervisor, which passes it on once
            # (twice would make uvicorn skip the drain).
            start_new_session=True,
        )
        print(f"cocoach worker process {child.pid} started", flush=True)
        return child

    def _wait(self, child: subprocess.Popen[bytes], ready_fd: int) -> tuple[int, bool]:
        """The worker's exit code, and whether it said it was serving before it ended."""
        served = False
        while True:
            code = child.poll()
            if code is not None:
                return code, served
            if served:
                time.sleep(0.05)
                continue
            readable, _, _ = select.select([ready_fd], [], [], 0.05)
            if readable:
                served = os.read(ready_fd, 1) == b"1"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            # SIGTERM either way: uvicorn drains on both, and re-raises SIGINT at its end as a
            # KeyboardInterrupt traceback on the terminal.
            child.send_signal(signal.SIGTERM)


def die_with_supervisor() -> None:
    """In the worker: SIGKILL this process when the supervisor dies (Linux), so a supervisor
    that is killed leaves no worker holding the port."""
    parent = os.environ.get(SUPERVISOR_PID)
    if parent:
        die_with_parent(int(parent))


def tell_ready() -> None:
    """In the worker, once it serves: tell the supervisor (a crash after this is not a worker
    that cannot start)."""
    fd = os.environ.pop(READY_FD, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"1")
        os.close(int(fd))
    except OSError as exc:
        log.warning("could not tell the supervisor this worker serves: %s", exc)


def inherited_socket() -> socket.socket | None:
    """The listening socket the supervisor handed this worker, if it is one."""
    fd = os.environ.get(LISTEN_FD)
    if fd is None:
        return None
    return socket.socket(fileno=int(fd))


def worker_argv() -> list[str]:
    """This same command line, as the worker runs it."""
    return [sys.executable, "-m", "server.cli", *sys.argv[1:]]
