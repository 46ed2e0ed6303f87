"""Ingest: each finished upload is probed and transcoded once, in the background, by a child
process (`python -m server.library.transcode`), so a crash or a huge file cannot take the worker
down and a job is cancelled by killing its child.

Each worker runs a bounded queue with `ingest_concurrency` jobs at a time. A video being
ingested, or waiting in some worker's queue, is held by a lease (`ingest:<id>`, renewed while
held), so every worker can tell an orphan from a video another worker is busy with: a sweep at
start-up and every `ingest_sweep_seconds` re-queues the orphans (a worker that crashed or
stopped mid-ingest, a queue that was full) and deletes uploads abandoned for
`upload_expiry_seconds`.

A clip's media (a record with `clip_of`, docs/groups.md) is ingested the same way, but its
source is the largest rendition of the video it is cut from, encoded from `clip_start` to
`clip_end`: the video itself is never ingested again, and nothing of it is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec

from server.errors import CocoachError, NotFound, ServiceUnavailable
from server.library.child import PROBE_SECONDS, IngestFailed, run_child
from server.library.holds import HoldFrames
from server.library.renditions import AUDIO_BITRATE, UPLOAD_FILE, output_fps, plan_for
from server.settings import Settings
from server.sync.lease import Lease
from server.sync.store import Rendition, SourceInfo, Store, VideoRecord

log = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 1.0  # at most one progress write to the store per second per job
MAX_ATTEMPTS = 3  # ingests started for one video before it is given up as failed
CHILD_ATTEMPTS = 3  # runs of one transcode step whose child crashed, before the video fails
RETRY_SECONDS = 1.0  # after a child crashed, before the step runs again


def ingest_lease(video_id: str) -> str:
    return f"ingest:{video_id}"


def needs_ingest(record: VideoRecord) -> bool:
    """Waiting, being ingested, or ready with a larger rendition still to make."""
    if record.status in ("queued", "ingesting"):
        return True
    return record.status == "ready" and record.progress < 1.0 and record.error is None


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
    def __init__(
        self, library: Shelf, settings: Settings, *, lease: Lease, holder: str, holds: HoldFrames
    ) -> None:
        self.library = library
        self.holds = holds
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
        if record.generate:
            await self._generated(record)
            return
        library = self.library
        nice = self.settings.ingest_nice
        source = library.upload_path(record.id)
        cut: list[str] = []
        if record.clip_of is not None:
            try:
                source = await self._clip_source(record)
            except IngestFailed as exc:
                await self._fail(record, str(exc))
                return
            cut = ["--start", str(float(record.clip_start)), "--end", str(float(record.clip_end))]
            await asyncio.to_thread(library.directory(record.id).mkdir, exist_ok=True)
        try:
            probed, record = await self._step(
                record, None, ["probe", str(source)], nice=nice, stall=PROBE_SECONDS
            )
        except IngestFailed as exc:
            await self._fail(record, str(exc))
            return
        probed_record = with_probe(record, probed)
        if record.clip_of is not None:  # the parent's length: a clip's is known once made
            probed_record = msgspec.structs.replace(probed_record, duration=record.duration)
        record = await library.save(probed_record)
        # A clip's plan is sized from the parent's rendition: never larger than it.
        plans = plan_for(probed["width"], probed["height"])
        made = [r for r in record.renditions if (library.root / r.file).is_file()]
        for index, plan in enumerate(plans):
            if any(r.name == plan.name for r in made):
                continue  # made before this worker was stopped
            out = library.root / library.rendition_file(record.id, plan.name)
            progress = _Progress(library, record, index, len(plans))
            try:
                done, record = await self._step(
                    record,
                    progress,
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
                        *cut,
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
            await self._make_hold(done["width"], done["height"])  # before any viewer can ask
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
        # The upload is done with; a clip's source is its parent's rendition, which stays.
        await asyncio.to_thread(library.upload_path(record.id).unlink, missing_ok=True)

    async def _clip_source(self, record: VideoRecord) -> Path:
        """The file a clip is cut from: the largest rendition its video has on disk."""
        parent_id = record.clip_of
        assert parent_id is not None
        parent = await self.library.store.get_video(parent_id)
        if parent is None:
            raise IngestFailed(f"the video it is cut from ({parent_id}) no longer exists")
        root = self.library.root

        def existing() -> list[Rendition]:
            return [r for r in parent.renditions if (root / r.file).is_file()]

        have = await asyncio.to_thread(existing)
        if not have:
            raise IngestFailed(
                f"the video it is cut from ({parent_id}) has no rendition to cut from "
                f"(it is {parent.status})"
            )
        largest = max(have, key=lambda r: (r.width * r.height, r.bytes))
        return root / largest.file

    async def _step(
        self,
        record: VideoRecord,
        progress: _Progress | None,
        args: list[str],
        **options: Any,
    ) -> tuple[dict[str, Any], VideoRecord]:
        """One transcode step in a child process, run again if the child crashed (a signal, a
        stall): meanwhile the video says `failed` and why, then goes back to `ingesting`. A
        step that fails for a reason (`not a video`) or crashes CHILD_ATTEMPTS times raises.
        Returns the child's result and the record as last saved."""
        for attempt in range(1, CHILD_ATTEMPTS + 1):
            try:
                return await run_child(args, **options), record
            except IngestFailed as exc:
                if not exc.crashed or attempt == CHILD_ATTEMPTS:
                    raise
                log.warning(
                    "video %s: %s (attempt %d of %d); trying again",
                    record.id,
                    exc,
                    attempt,
                    CHILD_ATTEMPTS,
                )
                current = progress.record if progress is not None else record
                serving = current.status == "ready"  # a smaller rendition plays meanwhile
                note = f"{exc}; trying again ({attempt + 1} of {CHILD_ATTEMPTS})"
                record = await self.library.save(
                    msgspec.structs.replace(
                        current, status=current.status if serving else "failed", error=note
                    )
                )
                await asyncio.sleep(RETRY_SECONDS)
                record = await self.library.save(
                    msgspec.structs.replace(
                        record, status="ready" if serving else "ingesting", error=None
                    )
                )
                if progress is not None:
                    progress.record = record
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _generated(self, record: VideoRecord) -> None:
        """A generated lesson (the demo) is made straight into its served 360p rendition:
        nothing to probe or transcode, so it plays in seconds (the first run usually makes it
        before the server starts: `make_served`, called by the CLI)."""
        progress = _Progress(self.library, record, 0, 1)
        try:
            rendition = await make_served(
                self.library.root, record, nice=self.settings.ingest_nice, on_progress=progress
            )
        except IngestFailed as exc:
            await self._fail(progress.record, str(exc))
            return
        await self._make_hold(rendition.width, rendition.height)
        await self.library.save(served_ready(progress.record, rendition))
        log.info(
            "video %s: generated, %s ready (%d bytes)", record.id, rendition.name, rendition.bytes
        )

    async def _make_hold(self, width: int, height: int) -> None:
        """The rendition's hold frame, now, so no viewer waits for it (a failure here only
        means the first viewer's request makes it)."""
        try:
            await self.holds.get(width, height)
        except ServiceUnavailable as exc:
            log.warning("hold frame %dx%d not made ahead: %s", width, height, exc.message)

    async def _fail(self, record: VideoRecord, error: str) -> None:
        log.info("video %s failed: %s", record.id, error)
        # Its files go first: a record that says failed has nothing left behind (clients and
        # the tests look as soon as they read it).
        await asyncio.to_thread(_remove_contents, self.library.directory(record.id))
        await self.library.save(
            msgspec.structs.replace(record, status="failed", progress=0.0, error=error)
        )


async def make_served(
    root: Path,
    record: VideoRecord,
    *,
    nice: int = 0,
    on_progress: Callable[[float], Awaitable[None]] | None = None,
) -> Rendition:
    """Make a generated video's 360p rendition in a child process; what was made. The empty
    upload that stood for its source goes: there is nothing to ingest any more."""
    assert record.generate
    file = f"{record.id}/360p.webm"
    await asyncio.to_thread((root / record.id).mkdir, parents=True, exist_ok=True)
    done = await run_child(
        ["served", str(root / file), "--seconds", str(record.generate)],
        nice=nice,
        on_progress=on_progress,
    )
    await asyncio.to_thread((root / record.id / UPLOAD_FILE).unlink, missing_ok=True)
    return Rendition(
        name="360p",
        width=done["width"],
        height=done["height"],
        file=file,
        bytes=done["bytes"],
        fps=done["fps"],
        duration=done["duration"],
    )


def served_ready(record: VideoRecord, rendition: Rendition) -> VideoRecord:
    """The generated video, ready: its one rendition is what is served."""
    return msgspec.structs.replace(
        record,
        status="ready",
        progress=1.0,
        error=None,
        renditions=(rendition,),
        duration=rendition.duration,
        fps=float(rendition.fps),
        width=rendition.width,
        height=rendition.height,
    )


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
        # Short of 1.0 until the step's rendition is saved: the transcoder says 1.0 as it
        # finishes, and a record at 1.0 must have every rendition (clients wait for that).
        overall = round((self.index + min(0.999, max(0.0, fraction))) / self.count, 4)
        self.record = await self.library.save(
            msgspec.structs.replace(self.record, progress=overall)
        )


def _remove_contents(directory: Path) -> None:
    for child in directory.glob("*"):
        child.unlink(missing_ok=True)
