"""People for the multi-worker tests: added with the CLI to the shared store, each signed in
once (a login link) on the first worker, their session cookie then used on every worker."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
import pytest

from server.cli import main as cli
from tests.support import TIMEOUT, WorkerProcess


@dataclass
class Person:
    id: str
    name: str
    org: str
    on: dict[str, httpx.AsyncClient]  # worker base -> a client with this person's cookie


async def sign_in_everywhere(
    stack: contextlib.AsyncExitStack,
    workers: list[WorkerProcess],
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    *,
    name: str,
    email: str,
    role: str = "teacher",
    org: str | None = None,
) -> Person:
    """`flags`: the CLI's store flags (`--redis URL`); the clients close with `stack`."""
    add = ["person", "add", "--name", name, "--email", email, "--role", role, *flags]
    if org is not None:
        add += ["--org", org]
    assert await asyncio.to_thread(cli, add) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, ["login-link", "--email", email, *flags]) == 0
    secret = capsys.readouterr().out.strip().rsplit("/", 1)[1]
    first = await stack.enter_async_context(
        httpx.AsyncClient(base_url=workers[0].base, timeout=TIMEOUT)
    )
    used = await first.post(f"/auth/link/{secret}")
    assert used.status_code == 303, used.text
    on = {workers[0].base: first}
    for worker in workers[1:]:
        on[worker.base] = await stack.enter_async_context(
            httpx.AsyncClient(base_url=worker.base, timeout=TIMEOUT, cookies=first.cookies)
        )
    me = (await first.get("/api/me")).json()
    return Person(me["id"], me["name"], me["org"], on)
