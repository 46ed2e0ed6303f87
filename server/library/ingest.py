"""Ingest: each finished upload is probed and transcoded once, in the background, by a child
process (`python -m server.library.transcode`), so a crash or a huge file cannot take the worker
down and a job is cancelled by killing its child.

Each worker runs a bounded queue with `ingest_concurrency` jobs at a time. A video being
ingested, or waiting in some worker's queue, is held by a lease (`ingest:<id>`, renewed while
held), so every worker can tell an orphan from a video another worker is busy with: a sweep at
start-up and every `ingest_sweep_seconds` re-queues the orphans (a worker that crashed or
stopped mid-ingest, a queue that was full) and deletes uploads abandoned for
`upload_expiry_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec

import server
from server.errors import CocoachError, NotFound, ServiceUnavailable
from server.library.renditions import AUDIO_BITRATE, plan_for
from server.library.transcode import output_fps
from server.settings import Settings
from server.sync.lease import Lease
from server.sync.store import Rendition, SourceInfo, Store, VideoRecord

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(server.__file__).resolve().parent.parent
PROBE_SECONDS = 60.0  # a probe reads the header and one picture
STALL_SECONDS = 300.0  # an encode that prints no progress for this long is killed
PROGRESS_WRITE_SECONDS = 1.0  # at most one progress write to the store per second per job
MAX_ATTEMPTS = 3  # ingests started for one video before it is given up as failed


class IngestFailed(Exception):
    """The child said why (`not a video: ...`), or crashed."""


def ingest_lease(video_id: str) -> str:
    return f"ingest:{video_id}"


def needs_ingest(record: VideoRecord) -> bool:
    """Waiting, being ingested, or ready with a larger rendition still to make."""
    if record.status in ("queued", "ingesting"):
        return True
    return record.status == "ready" and record.progress < 1.0 and record.error is None


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
                raise IngestFailed(f"the transcoder made no progress for {stall:.0f} s") from None
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
        raise IngestFailed(f"the transcoder crashed ({how}){last}")
    return result


async def probe(path: Path, nice: int = 0) -> dict[str, Any]:
    """What the file is (see transcode.Probe); IngestFailed `not a video: ...` if it is not."""
    return await run_child(["probe", str(path)], nice=nice, stall=PROBE_SECONDS)


def source_info(probed: dict[str, Any]) -> SourceInfo:
    return SourceInfo(
        container=probed["container"],
        video_codec=probed["video_codec"],
        audio_codec=probed["audio_codec"],
        width=probed["width"],
        height=probed["height"],
        fps=probed["fps"],
        rotation=probed["rotation"],
    )


def with_probe(record: VideoRecord, probed: dict[str, Any]) -> VideoRecord:
    return msgspec.structs.replace(
        record,
        duration=probed["duration"],
        fps=float(output_fps(probed["fps"])),
        width=probed["width"],
        height=probed["height"],
        source=source_info(probed),
    )


class Shelf(Protocol):
    """What the ingest needs of the library it fills (`VideoLibrary`)."""

    store: Store
    root: Path

    async def save(self, record: VideoRecord) -> VideoRecord: ...
    async def delete(self, video_id: str) -> bool: ...
    def directory(self, video_id: str) -> Path: ...
    def upload_path(self, video_id: str) -> Path: ...
    def rendition_file(self, video_id: str, name: str) -> str: ...


class Ingest:
    def __init__(self, library: Shelf, settings: Settings, *, lease: Lease, holder: str) -> None:
        self.library = library
        self.settings = settings
        self.lease = lease
        self.holder = holder
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max(1, self.settings.ingest_queue))
        self.held: set[str] = set()  # ingest leases this worker holds: queued or running here
        self.jobs: dict[str, asyncio.Task[None]] = {}
        self._why: dict[str, str] = {}  # why a job was cancelled: "deleted" or "lost"

    # ---- lifetime -----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._run_jobs(), name=f"ingest {n}")
                for n in range(max(1, self.settings.ingest_concurrency))
            ]
            tasks.append(group.create_task(self._keep_leases(), name="ingest leases"))
            tasks.append(group.create_task(self._sweep_forever(), name="ingest sweep"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
        for video_id in list(self.held):  # queued here: let the next sweep anywhere take them
            with contextlib.suppress(ServiceUnavailable):
                await self.lease.release(ingest_lease(video_id), self.holder)
        self.held.clear()

    async def submit(self, record: VideoRecord) -> bool:
        """Queue the video's ingest here. False when this worker's queue is full or another
        worker holds the video: it stays `queued` and a sweep picks it up."""
        if record.id in self.held:
            return True
        if self.queue.full():
            return False
        ttl = self.settings.ingest_lease_seconds
        if not await self.lease.acquire(ingest_lease(record.id), self.holder, ttl):
            return False
        if self.queue.full():
            await self.lease.release(ingest_lease(record.id), self.holder)
            return False
        self.held.add(record.id)
        self.queue.put_nowait(record.id)
        return True

    def cancel(self, video_id: str, why: str) -> None:
        task = self.jobs.get(video_id)
        if task is not None:
            self._why[video_id] = why
            task.cancel()

    # ---- background ---------------------------------------------------------------------

    async def _run_jobs(self) -> None:
        while True:
            video_id = await self.queue.get()
            job = asyncio.create_task(self._job(video_id), name=f"ingest {video_id}")
            self.jobs[video_id] = job
            try:
                await asyncio.wait({job})  # a job cancelled alone must not stop this loop
            except asyncio.CancelledError:
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
                raise
            finally:
                self.jobs.pop(video_id, None)
                self._why.pop(video_id, None)
                self.held.discard(video_id)
                with contextlib.suppress(ServiceUnavailable):
                    await self.lease.release(ingest_lease(video_id), self.holder)
            if not job.cancelled() and (exc := job.exception()) is not None:
                if isinstance(exc, NotFound):
                    log.info("ingest of %s stopped: %s", video_id, exc)
                elif isinstance(exc, CocoachError):
                    log.warning("ingest of %s stopped: %s", video_id, exc)
                else:
                    log.error("ingest of %s failed", video_id, exc_info=exc)

    async def _keep_leases(self) -> None:
        ttl = self.settings.ingest_lease_seconds
        while True:
            await asyncio.sleep(ttl / 3)
            for video_id in list(self.held):
                try:
                    kept = await self.lease.renew(ingest_lease(video_id), self.holder, ttl)
                except ServiceUnavailable:
                    continue  # try again next round; the lease outlives a short outage
                if not kept:
                    log.warning("lost the ingest lease of %s: another worker has it", video_id)
                    self.held.discard(video_id)
                    self.cancel(video_id, "lost")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except ServiceUnavailable as exc:
                log.warning("video sweep: %s", exc)
            except Exception:
                log.exception("video sweep failed")
            await asyncio.sleep(self.settings.ingest_sweep_seconds)

    async def sweep(self) -> None:
        """Queue orphaned ingests; delete abandoned uploads."""
        now = time.time()
        for record in await self.library.store.list_videos():
            if needs_ingest(record) and record.id not in self.held:
                if await self.submit(record):
                    log.info("video %s (%s): ingest queued by the sweep", record.id, record.status)
            elif (
                record.status == "uploading"
                and now - record.updated > self.settings.upload_expiry_seconds
                and await self.lease.holder(f"upload:{record.id}") is None
            ):
                log.info("video %s: upload abandoned, deleting it", record.id)
                await self.library.delete(record.id)

    # ---- one job ------------------------------------------------------------------------

    async def _job(self, video_id: str) -> None:
        library = self.library
        record = await library.store.get_video(video_id)
        if record is None or not needs_ingest(record):
            return
        if record.attempts >= MAX_ATTEMPTS:
            await self._fail(record, f"ingest was interrupted {record.attempts} times; giving up")
            return
        if record.status == "ready":  # a larger rendition is missing: keep serving the smaller
            record = await library.save(
                msgspec.structs.replace(record, attempts=record.attempts + 1)
            )
        else:
            record = await library.save(
                msgspec.structs.replace(
                    record,
                    status="ingesting",
                    attempts=record.attempts + 1,
                    progress=0.0,
                    error=None,
                    renditions=(),
                )
            )
        try:
            await self._ingest(record)
        except asyncio.CancelledError:
            if self._why.get(video_id) is None:  # the worker is stopping: hand the job back
                with contextlib.suppress(CocoachError):
                    await self._hand_back(video_id)
            raise

    async def _hand_back(self, video_id: str) -> None:
        current = await self.library.store.get_video(video_id)
        if current is not None and needs_ingest(current):
            status = "queued" if current.status == "ingesting" else current.status
            await self.library.store.update_video(
                msgspec.structs.replace(
                    current, status=status, attempts=max(0, current.attempts - 1)
                )
            )

    async def _ingest(self, record: VideoRecord) -> None:
        library = self.library
        nice = self.settings.ingest_nice
        source = library.upload_path(record.id)
        try:
            if record.generate and not await asyncio.to_thread(_has_bytes, source):
                await run_child(["clip", str(source), "--seconds", str(record.generate)], nice=nice)
                size = (await asyncio.to_thread(source.stat)).st_size
                record = msgspec.structs.replace(record, upload_length=size, upload_offset=size)
            probed = await probe(source, nice)
        except IngestFailed as exc:
            await self._fail(record, str(exc))
            return
        record = await library.save(with_probe(record, probed))
        plans = plan_for(probed["width"], probed["height"])
        made = [r for r in record.renditions if (library.root / r.file).is_file()]
        for index, plan in enumerate(plans):
            if any(r.name == plan.name for r in made):
                continue  # made before this worker was stopped
            out = library.root / library.rendition_file(record.id, plan.name)
            progress = _Progress(library, record, index, len(plans))
            try:
                done = await run_child(
                    [
                        "encode",
                        str(source),
                        str(out),
                        "--short-side",
                        str(plan.short_side),
                        "--video-bitrate",
                        str(plan.video_bitrate),
                        "--audio-bitrate",
                        str(AUDIO_BITRATE),
                    ],
                    nice=nice,
                    on_progress=progress,
                )
            except IngestFailed as exc:
                if not made:
                    await self._fail(progress.record, f"{plan.name}: {exc}")
                    return
                # The smaller rendition plays; say what went wrong with the larger one.
                record = await library.save(
                    msgspec.structs.replace(
                        progress.record, progress=1.0, error=f"{plan.name} failed: {exc}"
                    )
                )
                break
            made.append(
                Rendition(
                    name=plan.name,
                    width=done["width"],
                    height=done["height"],
                    file=library.rendition_file(record.id, plan.name),
                    bytes=done["bytes"],
                    fps=done["fps"],
                    duration=done["duration"],
                )
            )
            # Ready as soon as the first (smallest) rendition exists.
            record = await library.save(
                msgspec.structs.replace(
                    progress.record,
                    status="ready",
                    renditions=tuple(made),
                    progress=round((index + 1) / len(plans), 4),
                    duration=made[0].duration,
                )
            )
            log.info("video %s: %s ready (%d bytes)", record.id, plan.name, done["bytes"])
        await asyncio.to_thread(source.unlink, missing_ok=True)

    async def _fail(self, record: VideoRecord, error: str) -> None:
        log.info("video %s failed: %s", record.id, error)
        await self.library.save(
            msgspec.structs.replace(record, status="failed", progress=0.0, error=error)
        )
        await asyncio.to_thread(_remove_contents, self.library.directory(record.id))


class _Progress:
    """Writes a job's progress to its record, at most once a second."""

    def __init__(self, library: Shelf, record: VideoRecord, index: int, count: int) -> None:
        self.library, self.record = library, record
        self.index, self.count = index, count
        self._last = time.monotonic()

    async def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_WRITE_SECONDS:
            return
        self._last = now
        overall = round((self.index + min(1.0, max(0.0, fraction))) / self.count, 4)
        self.record = await self.library.save(
            msgspec.structs.replace(self.record, progress=overall)
        )


def _has_bytes(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _remove_contents(directory: Path) -> None:
    for child in directory.glob("*"):
        child.unlink(missing_ok=True)
