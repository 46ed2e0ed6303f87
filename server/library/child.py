"""Running the transcode child (`python -m server.library.transcode`): every codec call the
server makes happens in such a child, so a crash in libvpx, libopus or FFmpeg ends that child,
never a worker and its rooms (docs/videos.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import server

PACKAGE_ROOT = Path(server.__file__).resolve().parent.parent
PROBE_SECONDS = 60.0  # a probe reads the header and one picture
STALL_SECONDS = 300.0  # an encode that prints no progress for this long is killed


class IngestFailed(Exception):
    """The child said why (`not a video: ...`), or crashed (`crashed` is then True)."""

    def __init__(self, message: str, *, crashed: bool = False) -> None:
        super().__init__(message)
        self.crashed = crashed


async def run_child(
    args: list[str],
    *,
    nice: int = 0,
    stall: float = STALL_SECONDS,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Run `python -m server.library.transcode ARGS`; its `done` result, or IngestFailed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.library.transcode",
        "--parent",
        str(os.getpid()),
        "--nice",
        str(nice),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr = process.stderr
    tail: deque[str] = deque(maxlen=5)

    async def read_stderr() -> None:
        async for line in stderr:
            tail.append(line.decode(errors="replace").strip())

    errors = asyncio.create_task(read_stderr())
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        while True:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), stall)
            except TimeoutError:
                raise IngestFailed(
                    f"the transcoder made no progress for {stall:.0f} s", crashed=True
                ) from None
            if not line:
                break
            text = line.decode(errors="replace").strip()
            if text.startswith("progress ") and on_progress is not None:
                with contextlib.suppress(ValueError):
                    await on_progress(float(text.split()[1]))
            elif text.startswith("done "):
                result = json.loads(text[5:])
            elif text.startswith("error: "):
                error = text[7:]
        code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
        errors.cancel()
        await asyncio.gather(errors, return_exceptions=True)
    if error is not None:
        raise IngestFailed(error)
    if code != 0 or result is None:
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        last = f": {tail[-1]}" if tail else ""
        raise IngestFailed(f"the transcoder crashed ({how}){last}", crashed=True)
    return result


async def probe(path: Path, nice: int = 0) -> dict[str, Any]:
    """What the file is (see transcode.Probe); IngestFailed `not a video: ...` if it is not."""
    return await run_child(["probe", str(path)], nice=nice, stall=PROBE_SECONDS)
