"""Signing in (docs/people.md) against a real OpenID Connect provider (`oidc-provider`, run by
tests/oidc_support.py on loopback): the whole code flow with PKCE, the session cookie, and each
refusal: a forged or replayed callback, another browser's callback, a person of no school, a
tampered or ended cookie, one-time links used twice, an open redirect."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.people.cookie import SESSION_COOKIE
from server.people.directory import People
from server.sync.sqlite_store import SqliteStore
from tests.oidc_support import (
    Provider,
    follow_to_callback,
    oidc_provider,
    reach_callback,
    sign_in_with_httpx,
)
from tests.support import TIMEOUT, Running, make_settings, serve_in_process

CLIENT_ID, CLIENT_SECRET = "cocoach", "s3cret-" + "y" * 24
OTHER_CLIENT = "another-app"  # another relying party of the same provider
ANN = {"sub": "ann-1", "email": "ann@ashby.sch.uk", "name": "Ann Archer", "password": "a-pass"}
BEN = {"sub": "ben-2", "email": "ben@brook.sch.uk", "name": "Ben Brook", "password": "b-pass"}
EVE = {"sub": "eve-3", "email": "eve@gmail.com", "name": "Eve", "password": "e-pass"}
ORGS = "north: ashby-primary, brook-academy"


@dataclass
class Env:
    server: Running
    provider: Provider
    second: Provider  # another issuer: the trust's other school's provider

    @property
    def base(self) -> str:
        return self.server.base


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with serve_with_providers(tmp_path) as running:
        yield running


@contextlib.asynccontextmanager
async def serve_with_providers(tmp_path: Path) -> AsyncIterator[Env]:
    """A server and two identity providers that know it: its socket is bound first, so that
    its redirect URI is registered at the providers before either starts."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clients = [
        {
            "client_id": client_id,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [f"{base}/auth/callback"],
        }
        for client_id in (CLIENT_ID, OTHER_CLIENT)
    ]
    async with (
        oidc_provider(clients, [ANN, BEN, EVE]) as provider,
        oidc_provider(clients, [ANN]) as second,
    ):
        other = {
            "name": "brook",
            "issuer": second.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "label": "Brook Google",
            "org_domains": "ashby.sch.uk: brook-academy",
        }
        settings = make_settings(
            tmp_path,
            public_url=base,
            orgs=ORGS,
            default_org="ashby-primary",
            oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_org_domains="ashby.sch.uk: ashby-primary; brook.sch.uk: brook-academy",
            oidc_providers=json.dumps([other]),
        )
        async with serve_in_process(settings, sock) as server:
            yield Env(server, provider, second)


def browser() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)


async def test_a_teacher_signs_in_and_is_known_again(env: Env) -> None:
    async with browser() as ann:
        done = await sign_in_with_httpx(ann, f"{env.base}/login?next=/r/room-1", "ann-1", "a-pass")
        assert done.status_code == 303 and done.headers["location"] == "/r/room-1"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert "code=" not in done.headers["location"]  # no token or code in a URL after
        me = (await ann.get(f"{env.base}/api/me")).json()
        assert me["name"] == "Ann Archer" and me["email"] == "ann@ashby.sch.uk"
        assert me["org"] == "ashby-primary" and me["roles"] == ["teacher"]
        # Signing out ends the sign-in on the server: the old cookie is refused after.
        old = ann.cookies.get(SESSION_COOKIE)
        out = await ann.post(f"{env.base}/logout")
        assert out.status_code == 303
        ann.cookies.set(SESSION_COOKIE, old or "")
        assert (await ann.get(f"{env.base}/api/me")).status_code == 401
    async with browser() as again:
        await sign_in_with_httpx(again, f"{env.base}/login", "ann-1", "a-pass")
        assert (await again.get(f"{env.base}/api/me")).json()["id"] == me["id"]  # stable


async def test_a_person_of_no_school_is_refused_with_a_page(env: Env) -> None:
    async with browser() as eve:
        done = await sign_in_with_httpx(eve, f"{env.base}/login", "eve-3", "e-pass")
        assert done.status_code == 403
        assert "not one of a school of this trust" in done.text
        assert (await eve.get(f"{env.base}/api/me")).status_code == 401


async def test_forged_and_replayed_callbacks_are_refused(env: Env) -> None:
    async with browser() as ann:
        callback = await reach_callback(ann, f"{env.base}/login", "ann-1", "a-pass")
        forged = await ann.get(callback.with_params(state="not-the-state"))
        assert forged.status_code == 401 and "state" in forged.text.lower()
        assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    async with browser() as ann:
        callback = await reach_callback(ann, f"{env.base}/login", "ann-1", "a-pass")
        first = await ann.get(callback.url)
        assert first.status_code == 303
        replayed = await ann.get(callback.url)  # the same code and state again
        assert replayed.status_code == 401
    # Login CSRF: a callback made in the attacker's browser, opened in the victim's.
    async with browser() as attacker, browser() as victim:
        callback = await reach_callback(attacker, f"{env.base}/login", "ben-2", "b-pass")
        await victim.get(f"{env.base}/login")  # the victim has a sign-in under way of its own
        planted = await victim.get(callback.url)
        assert planted.status_code == 401
        assert (await victim.get(f"{env.base}/api/me")).status_code == 401


async def test_tampered_cookies_and_open_redirects(env: Env) -> None:
    async with browser() as ann:
        done = await sign_in_with_httpx(
            ann, f"{env.base}/login?next=//evil.example/x", "ann-1", "a-pass"
        )
        assert done.headers["location"] == "/"
        value = ann.cookies.get(SESSION_COOKIE) or ""
        ann.cookies.set(SESSION_COOKIE, value[:-2] + ("00" if value[-2:] != "00" else "11"))
        assert (await ann.get(f"{env.base}/api/me")).status_code == 401


async def test_one_time_links(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with serve_in_process(settings) as server:
        store = SqliteStore(tmp_path / "cocoach.sqlite3")
        people = People(store)
        tia = await people.add(name="Tia", org="default", email="tia@example.org")
        secret = await people.make_link(tia, 600)
        stale = await people.make_link(tia, -1)
        await store.close()
        async with browser() as client:
            shown = await client.get(f"{server.base}/auth/link/{secret}")
            assert shown.status_code == 200 and "<form method='post'" in shown.text
            assert (await client.get(f"{server.base}/api/me")).status_code == 401  # not spent
            used = await client.post(f"{server.base}/auth/link/{secret}")
            assert used.status_code == 303
            assert (await client.get(f"{server.base}/api/me")).json()["name"] == "Tia"
        async with browser() as client:
            twice = await client.post(f"{server.base}/auth/link/{secret}")
            assert twice.status_code == 401 and "used already" in twice.text
            expired = await client.post(f"{server.base}/auth/link/{stale}")
            assert expired.status_code == 401 and "expired" in expired.text


async def test_two_issuers_and_a_rotated_key(env: Env) -> None:
    async with browser() as ann:
        page = await ann.get(f"{env.base}/", headers={"accept": "text/html"})
        assert "Sign in with Brook Google" in page.text
        await sign_in_with_httpx(ann, f"{env.base}/login", "ann-1", "a-pass")
        first = (await ann.get(f"{env.base}/api/me")).json()
    async with browser() as ann:
        done = await sign_in_with_httpx(ann, f"{env.base}/login?provider=brook", "ann-1", "a-pass")
        assert done.status_code == 303
        second = (await ann.get(f"{env.base}/api/me")).json()
    # The same subject at another issuer is another person, of that provider's school.
    assert second["id"] != first["id"] and second["org"] == "brook-academy"
    # The provider rotates its signing key: the next ID token verifies against the new one.
    await env.provider.rotate_keys(keep_old=False)
    async with browser() as ann:
        done = await sign_in_with_httpx(ann, f"{env.base}/login", "ann-1", "a-pass")
        assert done.status_code == 303, done.text
        assert (await ann.get(f"{env.base}/api/me")).json()["id"] == first["id"]


async def test_a_code_made_for_another_app_is_refused(env: Env) -> None:
    """The browser's own sign-in, but the code at the end was issued to another relying party
    of the same provider (another audience): the provider will not give us its tokens."""
    async with browser() as ann:
        start = await ann.get(f"{env.base}/login")
        authorize = httpx.URL(start.headers["location"])
        assert authorize.params["client_id"] == CLIENT_ID
        for_other = authorize.copy_set_param("client_id", OTHER_CLIENT)
        callback = await follow_to_callback(ann, str(for_other), "ann-1", "a-pass")
        assert callback.code and callback.state == authorize.params["state"]
        answer = await ann.get(callback.url)
        assert answer.status_code == 401, answer.text
        assert (await ann.get(f"{env.base}/api/me")).status_code == 401
