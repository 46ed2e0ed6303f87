"""What `cocoach serve` checks before it starts (docs/operations.md#starting): each thing
missing or wrong is one line a person can act on, not a traceback. A problem that would stop
the server (an unwritable data folder, a Redis it cannot reach, a PyAV without the codecs) stops
it with exit status 2; a page that is not built is only said, since the API works without it
and the page itself then says how to build it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from server.settings import Settings

# What the ingest and the conversation need of PyAV's FFmpeg: VP8 and Opus out, and the
# common phone formats in.
NEEDED_CODECS = {
    "libvpx": "encoding VP8 (every rendition)",
    "libopus": "encoding Opus (lesson sound, the conversation)",
    "h264": "decoding H.264 (phone videos)",
}
REDIS_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Problem:
    text: str
    fatal: bool


def data_problem(data: Path) -> Problem | None:
    try:
        data.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Problem(
            f"the data folder {data} cannot be written ({reason}): give this user write access "
            "to it, or choose another with --data or COCOACH_DATA",
            fatal=True,
        )
    return None


def page_problem(dist: Path) -> Problem | None:
    if (dist / "session.html").is_file():
        return None
    return Problem(
        f"the web page is not built ({dist} has no session.html): run `make web` in the "
        "repository (it needs node and npm), or point COCOACH_WEB_DIST at a built page; the "
        "API works meanwhile, and the pages say how to build",
        fatal=False,
    )


def codec_problems(available: Iterable[str]) -> list[Problem]:
    have = set(available)
    return [
        Problem(
            f"this PyAV has no {codec} codec, needed for {purpose}: install the PyAV wheel "
            "from the Python package index (`pip install --force-reinstall av`), which carries "
            "an FFmpeg with it, rather than one built against a reduced system FFmpeg",
            fatal=True,
        )
        for codec, purpose in NEEDED_CODECS.items()
        if codec not in have
    ]


def available_codecs() -> set[str]:
    import av  # here, not at import: the CLI's other commands need no FFmpeg

    return set(av.codecs_available)


def redis_problem(url: str) -> Problem | None:
    from server.sync.redis_connect import unreachable  # here: embedded mode needs no redis-py

    reason = unreachable(url, REDIS_TIMEOUT)
    if reason is None:
        return None
    return Problem(
        f"Redis at {_without_password(url)} cannot be reached ({reason}): start it, or check "
        "--redis / COCOACH_REDIS (leave both unset to run embedded, without Redis)",
        fatal=True,
    )


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def problems(settings: Settings, dist: Path) -> list[Problem]:
    found = [data_problem(settings.data), page_problem(dist)]
    found += codec_problems(available_codecs())
    if settings.redis:
        found.append(redis_problem(settings.redis))
    return [p for p in found if p is not None]
