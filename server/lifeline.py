"""A child process's lifeline to its parent: Linux kills the child (SIGKILL) when the parent
dies, so a crashed server leaves no worker, transcoder or mixer behind holding a port or a core.
Used by the worker under its supervisor, the transcode child and the mixing child."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies; exit at once if `parent` (its pid; 0: do not
    check) already died before the kernel was told. Elsewhere than Linux, nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os._exit(1)
