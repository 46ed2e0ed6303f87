"""Sampling profiles of the cocoach workers while a benchmark step runs, with py-spy.

py-spy is not a project dependency: `.venv/bin/pip install py-spy` to use `--profile`. It
samples another process without changing it, so the profiled run is the measured run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.infra import Proc


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start(proc: Proc, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    binary = py_spy()
    if binary is None:
        print("py-spy is not installed: no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(proc.pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",  # collapsed stacks: one "frame;frame;... count" line per stack
            "--nonblocking",  # never pause the worker: the profile must not change the run
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish(popen: subprocess.Popen[bytes] | None) -> None:
    if popen is None:
        return
    try:
        popen.wait(30)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def summary(path: Path, top: int = 15) -> list[str]:
    """The frames most samples were in (inclusive), as percentages of the samples taken."""
    if not path.exists():
        return [f"(no profile at {path})"]
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if total == 0:
        return ["(empty profile)"]
    # Project code and the libraries it calls, not the event loop's outer frames that every
    # sample shares.
    skip = (
        "runpy",
        "asyncio/runners",
        "asyncio/base_events.py",
        "asyncio/events.py",
        "uvicorn/server",
        "uvicorn/_compat",
        "cli.py",
    )
    lines = [f"{total} samples; inclusive:"]
    shown = 0
    for frame, samples in inclusive.most_common():
        if any(s in frame for s in skip) or samples == total:
            continue
        lines.append(f"  {100 * samples / total:5.1f}%  {frame}")
        shown += 1
        if shown >= top:
            break
    lines.append("self:")
    lines.extend(f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(8))
    return lines
