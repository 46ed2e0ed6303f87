"""The web page (docs/web.md): the session at `/r/{room}`, the admin page at `/admin`, and the
bundle that `web/` builds into `web/dist`, served from `/static`.

The page is built, not committed: `make run` builds it before serving. A server started
without a build still answers `/r/{room}` and `/admin`, with a page that says how to build.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from server.web_dist import dist_dir

# The HTML carries no secret itself, but the address it was loaded from does (the invite's
# token): never send it on as a Referer, never cache the page, never let it be framed.
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The page may use this device's camera and microphone (talk-back, a classroom tablet);
    # nothing framed in it may, and it needs no other powerful feature.
    "Permissions-Policy": (
        "camera=(self), microphone=(self), display-capture=(), geolocation=(), usb=(), payment=()"
    ),
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
}

NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cocoach: the page is not built</title>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
padding: 0 1rem">
<h1>The cocoach page has not been built</h1>
<p>This server is running, but the web page it serves was never built on this machine, so
there is nothing to show here yet.</p>
<p>Whoever runs the server: stop it and start it with <code>make run</code>, which builds the
page first, or build it by hand with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>
(Node.js 18 or newer). Then reload this page; your link stays valid.</p>
</body></html>"""


def page_response(name: str) -> Response:
    """A built page of web/dist, or a page that says to build it."""
    path = dist_dir() / name
    if not path.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers=PAGE_HEADERS)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def session_page(request: Request) -> Response:
    """`/r/{room}?token=…`: the session. The page reads its room and token from the address."""
    return page_response("session.html")


async def admin_page(request: Request) -> Response:
    return page_response("admin.html")


async def group_page(request: Request) -> Response:
    """`/g/{group}`: a Film Club group (docs/groups.md)."""
    return page_response("group.html")


async def library_page(request: Request) -> Response:
    """`/library`: the trust library."""
    return page_response("library.html")


async def clip_page(request: Request) -> Response:
    """`/clips/{clip}`: a clip."""
    return page_response("clip.html")


async def cycle_page(request: Request) -> Response:
    """`/c/{cycle}`: a coaching cycle. The page asks the API, which checks the person."""
    return page_response("cycle.html")


class BuiltFiles(StaticFiles):
    """The bundle's files. Their names carry a content hash, so they may be cached for good."""

    def __init__(self) -> None:
        super().__init__(directory=dist_dir(), check_dir=False)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.endswith(".html"):  # pages go through their routes, with their headers
            return Response("Not Found", status_code=404, media_type="text/plain")
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response
