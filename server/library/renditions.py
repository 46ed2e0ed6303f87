"""The renditions the ingest makes of a video, and which one a viewer is served."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from server.errors import NotFound
from server.sync.store import Rendition, VideoRecord

MAX_FPS = 30


def output_fps(source_fps: float) -> int:
    """The frame rate a rendition of a source with this rate gets."""
    return max(1, min(MAX_FPS, round(source_fps or MAX_FPS)))


@dataclass(frozen=True, slots=True)
class RenditionPlan:
    name: str
    short_side: int  # pixels; the picture is never scaled up past the source
    video_bitrate: int  # bits per second


# The order matters: the first is made first, and the video is ready once it exists.
RENDITIONS = (
    RenditionPlan("360p", 360, 700_000),
    RenditionPlan("720p", 720, 2_000_000),
)
RENDITION_NAMES = tuple(plan.name for plan in RENDITIONS)
AUDIO_BITRATE = 64_000
UPLOAD_FILE = "upload"  # a video's uploaded source, in its folder, until it is ingested


def plan_for(width: int, height: int) -> list[RenditionPlan]:
    """The renditions a source of this size gets: 360p always, and each larger one only when
    the source is larger than the one before (a 360p source gets no 720p copy of itself)."""
    short = min(width, height)
    plans = [RENDITIONS[0]]
    for smaller, plan in itertools.pairwise(RENDITIONS):
        if short > smaller.short_side:
            plans.append(plan)
    return plans


def path_of(root: Path, record: VideoRecord, rendition_name: str) -> Path:
    """The file of one rendition of a video, exactly that rendition; NotFound if it has none."""
    for rendition in record.renditions:
        if rendition.name == rendition_name:
            return root / rendition.file
    have = ", ".join(r.name for r in record.renditions) or "none yet"
    raise NotFound(f"video {record.id!r} has no {rendition_name} rendition (it has: {have})")


def pick_rendition(record: VideoRecord, wanted: str) -> Rendition:
    """`wanted` if the video has it, else the largest one below it (a 720p request for a video
    whose 720p is still being made, or was never needed, gets the 360p)."""
    if wanted not in RENDITION_NAMES:
        raise NotFound(f"there is no rendition {wanted[:20]!r}; choose one of {RENDITION_NAMES}")
    have = {r.name: r for r in record.renditions}
    for name in reversed(RENDITION_NAMES[: RENDITION_NAMES.index(wanted) + 1]):
        if name in have:
            return have[name]
    if record.renditions:
        return record.renditions[0]
    raise NotFound(f"video {record.id!r} has no rendition yet")
