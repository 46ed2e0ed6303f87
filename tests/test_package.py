"""The package carries the built page (setup.py, docs/web.md#the-package): a wheel built from
the repository holds it as `server/web`, and a server run from the installed files (not from a
checkout) serves a working page. Without node and npm the build stops with a clear message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx

from tests.support import TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
BUILD_SECONDS = 20 * TIMEOUT  # npm ci and the page's build, and setuptools fetched for pip


def source_copy(into: Path) -> Path:
    """The repository's sources, as a clone would have them: never this checkout's built page
    or installed modules, so the build is the package's own."""
    tree = into / "src"
    skip = shutil.ignore_patterns("node_modules", "dist", ".built", "__pycache__", "*.egg-info")
    for name in ("server", "web"):
        shutil.copytree(ROOT / name, tree / name, ignore=skip)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    return tree


def build_wheel(tree: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        env=env,
    )


def test_the_wheel_carries_the_page_and_an_installed_server_serves_it(tmp_path: Path) -> None:
    built = build_wheel(source_copy(tmp_path), tmp_path / "wheel", dict(os.environ))
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("cocoach-*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(installed)
    for page in ("session.html", "admin.html", "home.html", "cycle.html", "library.html"):
        assert f"server/web/{page}" in names, page

    # The installed files alone (run from elsewhere, no checkout beside them) serve the page.
    env = {k: v for k, v in os.environ.items() if k != "COCOACH_WEB_DIST"}
    env["PYTHONPATH"] = str(installed)
    env["COCOACH_DEMO_CLIP_SECONDS"] = "2"  # the first run makes it before it listens
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0", "--data", str(tmp_path / "d")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = None
        deadline = time.monotonic() + 6 * TIMEOUT
        said = []
        while base is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            said.append(line)
            if "listening on" in line:
                base = line.rsplit(" ", 1)[1].strip()
        assert base is not None, "".join(said)
        assert not any("not built" in line for line in said), "".join(said)
        page = httpx.get(f"{base}/admin", timeout=TIMEOUT)
        assert page.status_code == 200 and "/static/admin-" in page.text
        script = page.text.split('src="', 1)[1].split('"', 1)[0]
        assert httpx.get(f"{base}{script}", timeout=TIMEOUT).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=3 * TIMEOUT)
        if server.stdout is not None:
            server.stdout.close()


def test_without_node_the_build_says_what_it_needs(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with Python and nothing else: no node, no npm
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    built = build_wheel(
        source_copy(tmp_path), tmp_path / "wheel", {**os.environ, "PATH": str(bare)}
    )
    assert built.returncode != 0
    assert "needs node (18 or newer) and npm" in built.stdout + built.stderr
