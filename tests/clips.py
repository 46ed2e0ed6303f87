"""The tests' generated clips, each encoded once per test process and copied where a test wants
it: many tests use the same few clips, and encoding one costs 1-2 s of CPU (never committed,
made on the spot as before)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from server.library import clip as clip_module
from server.library.clip import PHONE_MP4, ClipSpec, Encoding
from server.library.clip import write_clip as encode_clip

# The clip's recipe and the code that follows it: a change to either makes a new clip.
_SOURCE = hashlib.sha256(Path(clip_module.__file__).read_bytes()).hexdigest()[:12]


def _cache_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"cocoach-test-clips-{os.getpid()}-{_SOURCE}"
    path.mkdir(exist_ok=True)
    return path


def write_clip(path: Path, spec: ClipSpec | None = None, encoding: Encoding = PHONE_MP4) -> Path:
    """server.library.clip.write_clip's clip at `path`, a copy of the one made first."""
    spec = spec or ClipSpec()
    key = hashlib.sha256(f"{spec!r}{encoding!r}{path.suffix}".encode()).hexdigest()[:16]
    made = _cache_dir() / f"{key}{path.suffix}"
    if not made.exists():
        partial = made.with_name(made.name + ".partial" + path.suffix)
        encode_clip(partial, spec, encoding)
        partial.replace(made)
    shutil.copyfile(made, path)
    return path
