"""The demo lesson (issue 18): generated straight into its served 360p rendition, nothing to
probe or transcode, so it plays seconds after it is asked for; its "N% done" moves while it is
made and never goes back."""

from __future__ import annotations

from pathlib import Path

from server.library.library import add_generated_video
from tests.support import serve_in_process
from tests.test_clip_media import library_of
from tests.video_support import check_rendition, http, library_settings, removed, wait_for


async def test_a_generated_lesson_is_made_as_it_is_served(tmp_path: Path) -> None:
    async with serve_in_process(library_settings(tmp_path)) as running:
        videos = library_of(running)
        record = await add_generated_video(videos.store, videos.root, "Demo lesson", 20.0)
        assert await videos.ingest.submit(record)
        async with http(running.base) as client:
            video = await wait_for(client, record.id)
        assert video["status"] == "ready" and video["progress"] == 1.0, video
        seen = video["seen"]
        assert seen == sorted(seen), f"progress went back: {seen}"
        assert any(0.0 < p < 1.0 for p in seen), seen  # its making is shown as it goes
        made = await videos.get(record.id)
        assert made is not None and [r.name for r in made.renditions] == ["360p"]
        assert made.duration == 20.0 and (made.width, made.height) == (640, 360)
        # What WebRTC serving needs (VP8, Opus, a keyframe each second), every frame there.
        numbers = check_rendition(tmp_path / "videos" / made.renditions[0].file)
        assert numbers == list(range(600))
        await removed(tmp_path / "videos" / record.id / "upload")
