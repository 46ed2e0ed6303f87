"""People across two real worker processes on one Redis: a sign-in made on one worker is
accepted by the other, signing out on one ends it on both, and a role changed through one is
what the other says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.cli import main as cli
from tests.support import ADMIN_KEY, SECRET, TIMEOUT, RedisServer, WorkerProcess, start_worker


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer) -> Iterator[list[WorkerProcess]]:
    started = [start_worker(tmp_path / f"w{i}", redis.url, f"w{i}") for i in (1, 2)]
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


async def test_a_sign_in_holds_on_every_worker(
    workers: list[WorkerProcess],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = workers
    monkeypatch.setenv("COCOACH_SECRET", SECRET)
    flags = ["--redis", redis.url]
    add = ["person", "add", "--name", "Tia", "--email", "tia@example.org", *flags]
    assert await asyncio.to_thread(cli, add) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, ["login-link", "--email", "tia@example.org", *flags]) == 0
    secret = capsys.readouterr().out.strip().rsplit("/", 1)[1]
    async with contextlib.AsyncExitStack() as stack:
        on_one = await stack.enter_async_context(
            httpx.AsyncClient(base_url=one.base, timeout=TIMEOUT)
        )
        used = await on_one.post(f"/auth/link/{secret}")
        assert used.status_code == 303
        me = (await on_one.get("/api/me")).json()
        on_two = await stack.enter_async_context(
            httpx.AsyncClient(base_url=two.base, timeout=TIMEOUT, cookies=on_one.cookies)
        )
        assert (await on_two.get("/api/me")).json() == me  # made by w1, accepted by w2
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        changed = await on_two.patch(
            f"/api/people/{me['id']}", json={"roles": ["coach"]}, headers=admin
        )
        assert changed.status_code == 200
        assert (await on_one.get("/api/me")).json()["roles"] == ["teacher", "coach"]
        out = await on_two.post("/logout")
        assert out.status_code == 303
        assert (await on_one.get("/api/me")).status_code == 401  # ended everywhere
