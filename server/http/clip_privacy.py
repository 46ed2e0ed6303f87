"""A clip follows its video (docs/groups.md#privacy): deleted with it, shown only under its
consent. Called where a video is deleted or its consent changes."""

from __future__ import annotations

import msgspec

from server.clips.model import Clip
from server.clips.rules import SHOWN
from server.session.worker import Worker
from server.sync.store import VideoRecord


async def remove(worker: Worker, clip: Clip) -> None:
    """The clip and all of it: shares, library entry, media (its viewers cut off by the
    library's withdrawal of the media, on every worker)."""
    await worker.clips.delete(clip.id)
    await worker.library.changed(clip.id)
    await worker.videos.delete(clip.media)


async def video_gone(worker: Worker, video_id: str) -> None:
    """A video was deleted: so are its clips, their shares and library entries."""
    for clip in await worker.clips.of_video(video_id):
        if clip.video == video_id:
            await remove(worker, clip)


async def consent_changed(worker: Worker, video: VideoRecord) -> None:
    """A clip shows what its video may show: its media takes the video's consent, and
    viewers are cut off when that no longer covers it (the caller withdraws the video)."""
    for clip in await worker.clips.of_video(video.id):
        media = await worker.videos.get(clip.media)
        if media is not None and media.consent != video.consent:
            await worker.videos.save(msgspec.structs.replace(media, consent=video.consent))
            if video.consent not in SHOWN:
                await worker.videos.withdraw(media.id, "consent for the video was withdrawn")
