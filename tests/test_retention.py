"""Consent and retention of videos: the pure rules, the retention job on real servers
(embedded and Redis), `cocoach purge` as a real process, and what consent allows."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from server.errors import InvalidField
from server.library.clip import WEBM_VP8, ClipSpec
from server.library.retention import (
    DAY,
    consent_covers,
    expires_at,
    parse_consent,
    parse_retention_days,
    select_expired,
)
from server.sync.audit import AuditQuery
from server.sync.keys import lease_key
from server.sync.redis_store import RedisStore
from server.sync.sqlite_audit import SqliteAuditLog
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord, Store, VideoRecord
from tests.clips import write_clip
from tests.media import offer_viewer
from tests.support import (
    ADMIN_KEY,
    SECRET,
    TIMEOUT,
    RedisServer,
    make_settings,
    serve_in_process,
    token,
)
from tests.test_whep import MEDIA, post_offer, ready_video
from tests.video_support import metadata

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NOW = 1_800_000_000.0


def video(created: float, days: int | None = None, **kw: object) -> VideoRecord:
    fields: dict[str, object] = {"title": "Lesson", **kw}
    return VideoRecord(
        id=f"v{uuid.uuid4().hex[:10]}",
        created=created,
        owner="admin",
        retention_days=days,
        **fields,  # type: ignore[arg-type]
    )


# ---- the pure rules -------------------------------------------------------------------------


def test_which_videos_have_expired() -> None:
    own = video(NOW - 32 * DAY, days=30)
    default = video(NOW - 366 * DAY)
    young = video(NOW - 29 * DAY, days=30)
    longer = video(NOW - 366 * DAY, days=400)
    due = select_expired([young, default, longer, own], NOW, 365)
    assert [e.record.id for e in due] == [own.id, default.id]  # longest expired first
    assert due[0].reason == "retention of 30 days ended"
    assert select_expired([default], NOW, 0) == []  # 0: kept until someone deletes it
    assert select_expired([video(NOW - 400 * DAY, status="recording")], NOW, 365) == []
    assert expires_at(own, 365) == own.created + 30 * DAY
    assert expires_at(default, 0) is None
    assert select_expired([video(NOW - 30 * DAY, days=30)], NOW, 365) != []  # due at the moment


def test_what_an_upload_may_say() -> None:
    assert parse_consent(None) == "not_obtained"
    assert [parse_consent(v) for v in ("obtained", "not_needed")] == ["obtained", "not_needed"]
    assert parse_retention_days(None) is None and parse_retention_days("30") == 30
    for bad in ("yes", "Obtained", ""):
        with pytest.raises(InvalidField, match="consent must be one of"):
            parse_consent(bad)
    for bad in ("0", "3651", "-1", "1.5", "a month"):
        with pytest.raises(InvalidField, match="retention_days must be a whole number"):
            parse_retention_days(bad)
    assert consent_covers(video(NOW, consent="obtained"))
    assert consent_covers(video(NOW, consent="not_needed"))
    assert not consent_covers(video(NOW))  # not recorded: not shown


# ---- the job --------------------------------------------------------------------------------


def with_files(data: Path, record: VideoRecord) -> VideoRecord:
    """As ingest leaves it (an `uploading` one untouched for a day would go by upload expiry)."""
    record = msgspec_replace(record, status="ready", progress=1.0, updated=time.time())
    folder = data / "videos" / record.id
    folder.mkdir(parents=True)
    (folder / "360p.webm").write_bytes(b"x" * 100)
    (folder / "upload").write_bytes(b"y" * 100)
    return record


@pytest.mark.parametrize("kind", ["embedded", "redis"])
async def test_the_job_deletes_expired_videos_with_their_files(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    old = with_files(tmp_path, video(now - 31 * DAY, days=30, filename="IMG_0412.MOV"))
    fresh = with_files(tmp_path, video(now - 1 * DAY, days=30))
    settings = make_settings(tmp_path, retention_interval_seconds=0.1)
    store: Store
    if kind == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        settings = make_settings(tmp_path, redis=redis.url, retention_interval_seconds=0.1)
        client = aioredis.Redis.from_url(redis.url)
        # The Redis is shared by the whole run: a worker another test killed may still hold
        # the job's lease (for two of its intervals). This deployment starts fresh.
        await client.delete(lease_key("retention"))
        store = RedisStore(client)
    else:
        store = SqliteStore(tmp_path / "cocoach.sqlite3")
    # A record no library made (another tool's id shape): deleted without touching the disk,
    # and without taking the job or the worker down.
    odd = msgspec_replace(video(now - 400 * DAY), id=f"v-odd-{uuid.uuid4().hex[:6]}")
    for record in (old, fresh, odd):
        await store.put_video(record)
    caplog.set_level(logging.INFO, logger="server.library.purge")
    async with serve_in_process(settings) as running:
        deadline = time.monotonic() + TIMEOUT
        # The record goes first, then its files (a crash between leaves files, never a
        # record without them): wait for both.
        while await store.get_video(old.id) is not None or (tmp_path / "videos" / old.id).exists():
            assert time.monotonic() < deadline, "the expired video was not deleted"
            await asyncio.sleep(0.05)
        assert await store.get_video(odd.id) is None
        assert await store.get_video(fresh.id) is not None
        assert (tmp_path / "videos" / fresh.id / "360p.webm").exists()
        async with httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http:
            for _ in range(100):  # bounded: the audit writer batches
                events = (
                    await http.get("/api/audit", params={"video": old.id}, headers=ADMIN)
                ).json()["events"]
                if events:
                    break
                await asyncio.sleep(0.05)
        assert [e["action"] for e in events] == ["video.purge"]
        assert events[0]["actor"]["sub"] == "system"
        assert events[0]["detail"]["reason"] == "retention of 30 days ended"
        assert events[0]["detail"]["by"] == "retention job"
    lines = [r.getMessage() for r in caplog.records if "retention: deleted" in r.getMessage()]
    assert not [r for r in caplog.records if "retention round failed" in r.getMessage()]
    lines = [line for line in lines if odd.id not in line]
    assert len(lines) == 1, lines
    assert old.id in lines[0] and "IMG_0412.MOV" in lines[0] and "30 days" in lines[0]
    assert f"{old.id}/360p.webm" in lines[0] and f"{old.id}/upload" in lines[0]
    if kind == "redis":
        await client.aclose()
    else:
        assert isinstance(store, SqliteStore)
        await store.close()


# ---- cocoach purge --------------------------------------------------------------------------


def cocoach(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COCOACH_SECRET": SECRET, "COCOACH_ADMIN_KEY": ADMIN_KEY}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
        env=env,
        check=False,
    )


async def test_cocoach_purge_dry_run_lists_and_keeps_then_purge_deletes(tmp_path: Path) -> None:
    now = time.time()
    old = with_files(tmp_path, video(now - 400 * DAY, title="Year 9", filename="year9.mp4"))
    fresh = with_files(tmp_path, video(now - 10 * DAY))
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    for record in (old, fresh):
        await store.put_video(record)

    dry = cocoach("purge", "--dry-run", data=tmp_path)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.strip().splitlines()
    assert lines[-1] == "1 video would be deleted"
    assert lines[0].startswith(f"would delete video {old.id} 'Year 9' (year9.mp4)")
    assert "retention of 365 days ended" in lines[0] and f"{old.id}/upload" in lines[0]
    assert await store.get_video(old.id) is not None  # nothing went
    assert (tmp_path / "videos" / old.id / "360p.webm").exists()

    done = cocoach("purge", data=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1 video deleted"
    assert await store.get_video(old.id) is None
    assert not (tmp_path / "videos" / old.id).exists()
    assert await store.get_video(fresh.id) is not None
    await store.close()
    audit = SqliteAuditLog(tmp_path / "audit.sqlite3")
    events, _ = await audit.query(AuditQuery(video=old.id))
    await audit.close()
    assert [(e.action, e.detail["by"]) for e in events] == [("video.purge", "cocoach purge")]

    again = cocoach("purge", "--dry-run", data=tmp_path)
    assert again.stdout.strip().splitlines() == ["0 videos would be deleted"]


# ---- consent --------------------------------------------------------------------------------


async def test_a_video_without_consent_is_not_shown_until_an_admin_records_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    clip = write_clip(
        tmp_path_factory.mktemp("clip") / "360p.webm",
        ClipSpec(seconds=2, fps=30, width=320, height=180),
        WEBM_VP8,
    )
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    record = ready_video(tmp_path, "vnoconsent", clip)
    await store.put_video(msgspec_replace(record, consent="not_obtained"))
    await store.create_room(RoomRecord(id="r1", title="Lesson", created=0.0, video=record.id))
    await store.close()
    async with (
        serve_in_process(make_settings(tmp_path, **MEDIA)) as running,
        httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http,
    ):
        viewer, offer = await offer_viewer()
        try:
            refused = await post_offer(running.base, "r1", offer, token("r1", "coach", "Cal"))
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "consent_missing"
            as_teacher = {"Authorization": f"Bearer {token('r1', 'teacher', 'Tia')}"}
            patch = await http.patch(
                f"/api/videos/{record.id}", json={"consent": "obtained"}, headers=as_teacher
            )
            assert patch.status_code == 401  # recording consent is the admin's
            bad = await http.patch(
                f"/api/videos/{record.id}", json={"consent": "maybe"}, headers=ADMIN
            )
            assert bad.status_code == 400 and "consent must be one of" in bad.text
            patch = await http.patch(
                f"/api/videos/{record.id}",
                json={"consent": "obtained", "retention_days": 30},
                headers=ADMIN,
            )
            assert patch.status_code == 200, patch.text
            changed = patch.json()
            assert changed["consent"] == "obtained" and changed["retention_days"] == 30
            assert changed["expires_at"] == pytest.approx(record.created + 30 * DAY)
            allowed = await post_offer(running.base, "r1", offer, token("r1", "coach", "Cal"))
            assert allowed.status_code == 201, allowed.text
        finally:
            await viewer.close()
        back = await http.patch(
            f"/api/videos/{record.id}", json={"retention_days": None}, headers=ADMIN
        )
        assert back.json()["retention_days"] is None
        assert back.json()["expires_at"] == pytest.approx(record.created + 365 * DAY)
        empty = await http.patch(f"/api/videos/{record.id}", json={}, headers=ADMIN)
        assert empty.status_code == 400


async def test_uploads_say_consent_and_retention(tmp_path: Path) -> None:
    async with (
        serve_in_process(make_settings(tmp_path)) as running,
        httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http,
    ):
        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", **ADMIN}
        created = await http.post(
            "/api/videos",
            headers={**tus, "Upload-Metadata": metadata(consent="obtained", retention_days="90")},
        )
        assert created.status_code == 201, created.text
        video_id = created.headers["location"].split("/")[3]
        got = (await http.get(f"/api/videos/{video_id}", headers=ADMIN)).json()
        assert got["consent"] == "obtained" and got["retention_days"] == 90
        assert got["expires_at"] == pytest.approx(got["created"] + 90 * DAY)
        plain = await http.post("/api/videos", headers={**tus, "Upload-Metadata": ""})
        plain_id = plain.headers["location"].split("/")[3]
        got = (await http.get(f"/api/videos/{plain_id}", headers=ADMIN)).json()
        assert got["consent"] == "not_obtained" and got["retention_days"] is None
        for meta, says in [
            (metadata(consent="yes"), "consent must be one of"),
            (metadata(retention_days="forever"), "retention_days must be a whole number"),
        ]:
            bad = await http.post("/api/videos", headers={**tus, "Upload-Metadata": meta})
            assert bad.status_code == 400 and says in bad.json()["error"]["message"]
        one_shot = await http.post(
            "/api/videos",
            params={"consent": "perhaps"},
            content=b"not a video",
            headers={**ADMIN, "Content-Type": "video/mp4"},
        )
        assert one_shot.status_code == 400 and "consent must be one of" in one_shot.text
        listed = (await http.get("/api/videos", headers=ADMIN)).json()["videos"]
        assert {v["id"] for v in listed} == {video_id, plain_id}  # nothing of refused uploads


def msgspec_replace(record: VideoRecord, **changes: object) -> VideoRecord:
    import msgspec

    return msgspec.structs.replace(record, **changes)
