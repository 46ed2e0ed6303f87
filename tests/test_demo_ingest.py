"""The demo lesson's progress (issue 18): while the server makes it and then prepares it, the
"being prepared (N% done)" a newcomer sees only ever moves forward, from its making on
(server/library/ingest.py, GENERATING_SHARE)."""

from __future__ import annotations

from pathlib import Path

from server.library.ingest import GENERATING_SHARE
from server.library.library import add_generated_video
from tests.support import serve_in_process
from tests.test_clip_media import library_of
from tests.video_support import http, library_settings, wait_for


async def test_a_generated_lessons_progress_moves_from_its_making_on(tmp_path: Path) -> None:
    async with serve_in_process(library_settings(tmp_path)) as running:
        videos = library_of(running)
        record = await add_generated_video(videos.store, videos.root, "Demo lesson", 20.0)
        assert await videos.ingest.submit(record)
        async with http(running.base) as client:
            video = await wait_for(client, record.id)
        assert video["status"] == "ready" and video["progress"] == 1.0, video
        seen = video["seen"]
        assert seen == sorted(seen), f"progress went back: {seen}"
        # Its making is shown as it goes, before any rendition is encoded.
        assert any(0.0 < p < GENERATING_SHARE for p in seen), seen
        assert any(GENERATING_SHARE <= p < 1.0 for p in seen), seen
