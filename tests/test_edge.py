"""The edge of a worker (docs/operations.md#web-security): client addresses, WebSocket Origin,
CORS, security headers, per-address limits, request ids, readiness and metrics. Pure rules
first, then a real server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from server.edge.address import client_address, parse_networks
from server.edge.limits import AddressBuckets
from server.edge.origin import origin_allowed, parse_origins
from server.errors import CloseCode, ConfigError
from server.sync.sqlite_store import SqliteStore
from server.sync.store import RoomRecord
from tests.support import ADMIN_KEY, TIMEOUT, Running, make_settings, serve_in_process, token

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# ---- pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", "198.51.100.1", "", "203.0.113.9"),  # no trusted proxy: the peer
        ("203.0.113.9", "198.51.100.1", "10.0.0.0/8", "203.0.113.9"),  # an untrusted peer
        ("10.0.0.2", "198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", "10.0.0.0/8", "198.51.100.1"),  # left is forged
        ("10.0.0.2", "198.51.100.1, 10.0.0.7", "10.0.0.0/8", "198.51.100.1"),  # two proxies
        ("10.0.0.2", "junk, 198.51.100.1", "10.0.0.0/8", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, junk", "10.0.0.0/8", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.0/8", "10.0.0.2"),
        ("::1", "2001:db8::5", "::1", "2001:db8::5"),
        (None, None, "", "unknown"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    peer: str | None, forwarded: str | None, trusted: str, expected: str
) -> None:
    assert client_address(peer, forwarded, parse_networks(trusted)) == expected


def test_a_bad_trusted_proxy_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        parse_networks("10.0.0.1, nonsense")


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "cocoach.example:8000", "", True),  # not a browser: the token decides
        ("http://cocoach.example:8000", "cocoach.example:8000", "", True),
        ("https://cocoach.example", "cocoach.example", "", True),  # TLS ended in front
        ("https://cocoach.example", "cocoach.example:443", "", True),
        ("https://evil.example", "cocoach.example", "", False),
        ("http://cocoach.example:9000", "cocoach.example:8000", "", False),
        ("null", "cocoach.example", "", False),
        ("https://portal.trust.example", "cocoach.example", "https://portal.trust.example", True),
        ("HTTPS://Portal.Trust.Example:443", "x", "https://portal.trust.example", True),
        ("https://portal.trust.example", None, "", False),
    ],
)
def test_websocket_origins(origin: str | None, host: str | None, allowed: str, ok: bool) -> None:
    assert origin_allowed(origin, host, parse_origins(allowed, None)) is ok


def test_public_url_is_an_allowed_origin_and_bad_origins_are_refused() -> None:
    assert parse_origins("", "https://coach.example/base") == {"https://coach.example"}
    with pytest.raises(ConfigError, match="ftp://x"):
        parse_origins("ftp://x", None)


def test_address_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    buckets = AddressBuckets(per_minute=60, burst=2, max_addresses=3, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(1.0)  # one a second refills
    assert buckets.blocked_for("a") == pytest.approx(1.0)
    now[0] = 1.0
    assert buckets.blocked_for("a") == 0 and buckets.take("a") == 0
    for address in ("b", "c", "d", "e"):
        buckets.take(address)
    assert len(buckets) == 3  # the least recently seen went first
    assert buckets.blocked_for("a") == 0  # forgotten: a full bucket again
    assert buckets.blocked_for("never-seen") == 0


# ---- a real server ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def server(tmp_path: Path, **overrides: Any) -> AsyncIterator[Running]:
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    store = SqliteStore(tmp_path / "cocoach.sqlite3")
    await store.create_room(RoomRecord(id="r1", title="Lesson one", created=0.0))
    await store.close()
    async with serve_in_process(make_settings(tmp_path, **overrides)) as running:
        yield running


def ws_url(base: str, path: str, tok: str | None = None) -> str:
    url = base.replace("http", "ws", 1) + path
    return url if tok is None else f"{url}?token={tok}"


async def close_of(url: str, **kw: Any) -> tuple[int, str]:
    """The close code and reason the server ends this socket with (None if it stays open)."""
    async with websockets.connect(url, max_size=None, **kw) as ws:
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            for _ in range(100):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code is not None, "the server kept the socket open"
        return ws.close_code, ws.close_reason or ""


async def opens(url: str, **kw: Any) -> bool:
    async with websockets.connect(url, max_size=None, **kw) as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)  # welcome, or the Yjs sync step 1
        return True


async def test_a_foreign_page_cannot_open_either_websocket(tmp_path: Path) -> None:
    async with server(tmp_path, allowed_origins="https://portal.trust.example") as running:
        base, tok = running.base, token("r1", "coach")
        own = base  # the page's own origin: same host and port
        for path in ("/rooms/r1/ws", "/yjs/r1"):
            url = ws_url(base, path, tok)
            code, reason = await close_of(url, origin="https://evil.example")
            assert code == CloseCode.ORIGIN_REFUSED
            assert reason.startswith("origin_refused: ") and "evil.example" in reason
            assert await opens(url)  # no Origin: a non-browser client
            assert await opens(url, origin=own)
            assert await opens(url, origin="https://portal.trust.example")


async def test_cors_is_closed_by_default(tmp_path: Path) -> None:
    async with server(tmp_path) as running, httpx.AsyncClient(base_url=running.base) as http:
        origin = {"Origin": "https://portal.trust.example"}
        for method, path in (
            ("GET", "/api/rooms"),
            ("OPTIONS", "/rooms/r1/whep"),
            ("OPTIONS", "/api/videos"),
        ):
            answer = await http.request(method, path, headers={**origin, **ADMIN})
            assert "access-control-allow-origin" not in answer.headers, (method, path)
        preflight = await http.options(
            "/rooms/r1/whep",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers


async def test_cors_opens_for_named_origins_only(tmp_path: Path) -> None:
    allowed = "https://portal.trust.example"
    async with (
        server(tmp_path, allowed_origins=allowed) as running,
        httpx.AsyncClient(base_url=running.base) as http,
    ):
        for path in ("/rooms/r1/whep", "/api/videos", "/api/videos/v1/upload", "/api/rooms"):
            preflight = await http.options(
                path,
                headers={
                    "Origin": allowed,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            assert preflight.status_code == 200, (path, preflight.text)
            assert preflight.headers["access-control-allow-origin"] == allowed
        answer = await http.get("/api/rooms", headers={"Origin": allowed, **ADMIN})
        assert answer.headers["access-control-allow-origin"] == allowed
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
        # A plain OPTIONS (a WHEP client asking what is supported) still reaches the route.
        plain = await http.options("/rooms/r1/whep")
        assert plain.status_code == 204 and plain.headers["accept-post"] == "application/sdp"
        other = await http.get("/api/rooms", headers={"Origin": "https://evil.example", **ADMIN})
        assert "access-control-allow-origin" not in other.headers


async def test_pages_carry_the_security_headers_and_hsts_only_when_told(tmp_path: Path) -> None:
    async with server(tmp_path) as running, httpx.AsyncClient(base_url=running.base) as http:
        page = await http.get("/r/r1", params={"token": "x"})
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "camera=(self)" in page.headers["permissions-policy"]
        assert "microphone=(self)" in page.headers["permissions-policy"]
        for path in ("/admin", "/healthz", "/api/frameworks"):
            answer = await http.get(path)
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["referrer-policy"] == "no-referrer", path
            assert "strict-transport-security" not in answer.headers
    async with (
        server(tmp_path / "tls", hsts_seconds=31536000) as running,
        httpx.AsyncClient(base_url=running.base) as http,
    ):
        answer = await http.get("/r/r1")
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_failed_authentications_are_limited_per_address(tmp_path: Path) -> None:
    async with (
        server(
            tmp_path,
            auth_failure_burst=3,
            auth_failures_per_minute=6,
            trusted_proxies="127.0.0.1",
        ) as running,
        httpx.AsyncClient(base_url=running.base) as http,
    ):
        bad = {"X-Forwarded-For": "198.51.100.7"}
        for _ in range(2):
            answer = await http.get("/api/rooms", headers={**bad, "Authorization": "Bearer no"})
            assert answer.status_code == 401
        code, _ = await close_of(
            ws_url(running.base, "/rooms/r1/ws", "not-a-token"), additional_headers=bad
        )
        assert code == CloseCode.TOKEN_INVALID  # the third failure: the bucket is now empty
        refused = await http.get("/api/rooms", headers={**bad, **ADMIN})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "auth_rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        export = await http.get(
            "/api/rooms/r1/export.csv", params={"token": token("r1")}, headers=bad
        )
        assert export.status_code == 429  # every endpoint that takes a token
        code, reason = await close_of(
            ws_url(running.base, "/yjs/r1", token("r1")), additional_headers=bad
        )
        assert code == CloseCode.AUTH_RATE_LIMITED and reason.startswith("auth_rate_limited")
        assert (await http.get("/healthz", headers=bad)).status_code == 200  # probes go on
        # Another address (the proxy's own, or another client behind it) is not affected.
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert (await http.get("/api/rooms", headers={**other, **ADMIN})).status_code == 200
        # Without a trusted proxy the header means nothing: the peer (127.0.0.1) is judged.
    async with (
        server(tmp_path / "b", auth_failure_burst=1) as running,
        httpx.AsyncClient(base_url=running.base) as http,
    ):
        fake = {"X-Forwarded-For": "203.0.113.1"}
        assert (await http.get("/api/rooms", headers=fake)).status_code == 401
        assert (await http.get("/api/rooms", headers=ADMIN)).status_code == 429


async def test_upload_creations_and_concurrent_uploads_are_limited(tmp_path: Path) -> None:
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", **ADMIN}
    async with (
        server(tmp_path, upload_burst=2, uploads_per_minute=1, max_concurrent_uploads=1) as running,
        httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http,
    ):
        for _ in range(2):
            assert (await http.post("/api/videos", headers=tus)).status_code == 201
        limited = await http.post("/api/videos", headers=tus)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "upload_rate_limited"
        assert int(limited.headers["retry-after"]) >= 1

    async with (
        server(tmp_path / "b", max_concurrent_uploads=1, upload_burst=1000) as running,
        httpx.AsyncClient(base_url=running.base, timeout=TIMEOUT) as http,
    ):
        # An upload still sending its body, written by hand so that it surely is on its way.
        port = int(running.base.rsplit(":", 1)[1])
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/videos HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {ADMIN_KEY}\r\n".encode()
            + b"Content-Type: video/mp4\r\nContent-Length: 4096\r\n\r\n"
            + b"\0" * 1024
        )
        await writer.drain()
        try:
            busy = None
            for _ in range(100):  # until the first upload holds the one slot
                busy = await http.post("/api/videos", headers=tus)
                if busy.status_code == 429:
                    break
                await asyncio.sleep(0.05)
            assert busy is not None and busy.status_code == 429
            assert busy.json()["error"]["code"] == "too_many_uploads"
        finally:
            writer.close()
            await writer.wait_closed()
        for _ in range(100):  # the abandoned upload gives its slot back
            if (await http.post("/api/videos", headers=tus)).status_code == 201:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the slot was never given back")


async def test_request_ids_are_echoed_or_made(tmp_path: Path) -> None:
    async with server(tmp_path) as running, httpx.AsyncClient(base_url=running.base) as http:
        given = await http.get("/healthz", headers={"X-Request-Id": "lb-1234.a"})
        assert given.headers["x-request-id"] == "lb-1234.a"
        made = await http.get("/healthz", headers={"X-Request-Id": "bad id!" + "x" * 80})
        assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
        missing = await http.get("/api/rooms")  # errors carry one too
        assert missing.status_code == 401 and missing.headers["x-request-id"]


async def test_readyz_names_what_is_unreachable(tmp_path: Path) -> None:
    from tests.support import redis_server

    with redis_server() as redis:
        async with (
            server(tmp_path, redis=redis.url) as running,
            httpx.AsyncClient(base_url=running.base, timeout=3 * TIMEOUT) as http,
        ):
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            redis.process.kill()
            redis.process.wait(TIMEOUT)
            down = await http.get("/readyz")
            assert down.status_code == 503
            failed = down.json()["failed"]
            assert [f.split(":")[0] for f in failed] == ["store", "broker"], failed
            assert (await http.get("/healthz")).status_code == 200  # alive all the same
            redis.start()
            for _ in range(100):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("never ready again after Redis came back")


def sample(text: str, name: str, **labels: str) -> float:
    label = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{label}}}" if label else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in the metrics"
    return float(match.group(1))


async def test_metrics_count_a_session(tmp_path: Path) -> None:
    from tests.support import join
    from tests.yclient import ydoc

    async with (
        server(tmp_path, metrics_token="metrics-secret") as running,
        httpx.AsyncClient(base_url=running.base) as http,
    ):
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        scrape = {"Authorization": "Bearer metrics-secret"}
        async with (
            join(running.base, "r1", "coach", "Ann") as ann,
            join(running.base, "r1", "teacher", "Tess") as tess,
            ydoc(running.base, "r1", token("r1", "coach", "Ann")) as ydoc_ann,
            ydoc(running.base, "r1", token("r1", "teacher", "Tess")) as ydoc_tess,
        ):
            await ann.expect("member_joined")
            await tess.send(type="ping", id=1, t0=0.0)
            await tess.expect("pong")
            for i in range(5):
                ydoc_ann.plan += f"step {i}. "
                await ydoc_ann.flush()
            await ydoc_tess.until(lambda: "step 4" in str(ydoc_tess.plan))
            answer = await http.get("/metrics", headers=scrape)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = answer.text
            assert sample(text, "cocoach_rooms") == 1
            assert sample(text, "cocoach_members") == 2
            assert sample(text, "cocoach_document_clients") == 2
            assert sample(text, "cocoach_media_viewers") == 0
            assert sample(text, "cocoach_ingest_queue") >= 0
            assert sample(text, "cocoach_redis_reconnects_total") == 0
            assert sample(text, "cocoach_messages_received_total", protocol="room") >= 1
            assert sample(text, "cocoach_messages_sent_total", protocol="room") >= 3
            assert sample(text, "cocoach_messages_received_total", protocol="yjs") >= 5
            assert sample(text, "cocoach_messages_sent_total", protocol="yjs") >= 5
            assert sample(text, "cocoach_fanout_seconds_count") >= 5
            assert sample(text, "cocoach_fanout_seconds_bucket", le="+Inf") >= 5
            worker = (await http.get("/healthz")).json()["worker"]
            assert sample(text, "cocoach_worker", worker=worker) == 1
