"""Where the built web page is (docs/web.md): `COCOACH_WEB_DIST`, else the page built into the
installed package (`server/web`), else `web/dist` of the checkout the server runs from."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGED_DIST = Path(__file__).resolve().parent / "web"
REPO_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"


def dist_dir() -> Path:
    configured = os.environ.get("COCOACH_WEB_DIST")
    if configured:
        return Path(configured)
    if (REPO_DIST / "session.html").is_file() or not (PACKAGED_DIST / "session.html").is_file():
        return REPO_DIST
    return PACKAGED_DIST
