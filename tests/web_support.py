"""Helpers for the page's end-to-end tests: real headless Chromium (Debian's `chromium`)
driven by Playwright's Python package, and the frame number read back from the <video>."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "tests" / "artifacts"

# As root, headless, with nothing phoning home; WebRTC on loopback with real IP candidates
# (DESIGN §3); sound allowed to start without a click.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns,WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
    "--autoplay-policy=no-user-gesture-required",
]

# server/library/clip.py's read_frame_number, in the page: 16 blocks across the top, a second
# row inverted below, block edges at multiples of width / 18.
READ_FRAME_JS = """() => {
  const video = document.querySelector('#lesson')
  if (!video || !video.videoWidth) return null
  const canvas = document.createElement('canvas')
  canvas.width = video.videoWidth
  canvas.height = video.videoHeight
  const context = canvas.getContext('2d', { willReadFrequently: true })
  context.drawImage(video, 0, 0)
  const w = canvas.width
  const pixels = context.getImageData(0, 0, w, canvas.height).data
  const gray = (x, y) => {
    const i = (y * w + x) * 4
    return 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2]
  }
  const size = w / 18
  let number = 0
  for (let bit = 0; bit < 16; bit++) {
    const x = Math.floor(size + bit * size + size / 2)
    const upper = gray(x, Math.floor(size / 2 + size / 2))
    const lower = gray(x, Math.floor(size / 2 + size + size / 2))
    if ((upper > 128) === (lower > 128) ||
        Math.min(Math.abs(upper - 128), Math.abs(lower - 128)) < 48) return null
    number = (number << 1) | (upper > 128 ? 1 : 0)
  }
  return number
}"""


def chromium_path() -> str:
    """Debian's chromium-headless-shell: the same Blink, V8 and WebRTC as `chromium`, without
    the browser's own UI (what Playwright runs for headless Chromium). Measured on the live
    join test: a third less CPU, most of it in the browser process. `chromium` if the shell is
    not installed; COCOACH_CHROMIUM chooses another."""
    path = (
        os.environ.get("COCOACH_CHROMIUM")
        or shutil.which("chromium-headless-shell")
        or shutil.which("chromium")
        or "/usr/bin/chromium-headless-shell"
    )
    if not Path(path).exists():
        pytest.fail(
            f"Chromium is not installed ({path} is missing): the page's end-to-end tests drive "
            "Debian's chromium-headless-shell. `make test` and .ci/run install it "
            "(apt-get install chromium-headless-shell)."
        )
    return path


def require_built_page() -> None:
    if not all(
        (DIST / page).is_file()
        for page in (
            "session.html",
            "admin.html",
            "home.html",
            "cycle.html",
            "group.html",
            "library.html",
            "clip.html",
        )
    ):
        pytest.fail(
            "the web page is not built (web/dist/session.html is missing): `make test` builds "
            "it; by hand: cd web && npm ci && npm run build"
        )


# A browser whose pages may use the camera and microphone: Chromium's fake devices (a moving
# test picture and a beep), allowed without asking (a classroom device, a coach's talk-back).
FAKE_MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# Chromium's own fake camera makes whatever the page asks for (the classroom asks for 720p at
# 30 fps); a small file-backed camera gives the same flow of real frames for less encoding.
# (Measured: a few per cent of the live tests' CPU; most of it is page start-up.)
FAKE_CAMERA = (320, 180, 15)  # width, height, frames per second


def fake_camera_file() -> Path:
    """A one-second looping Y4M clip with a moving bar, made once per test process (never
    committed): what the fake camera shows."""
    width, height, fps = FAKE_CAMERA
    path = Path(tempfile.gettempdir()) / f"cocoach-fake-camera-{os.getpid()}.y4m"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        chroma = bytes([128]) * (width // 2 * height // 2 * 2)
        for frame in range(fps):
            bar = frame * width // fps
            row = bytes([220 if bar <= x < bar + width // 8 else 60 for x in range(width)])
            out.write(b"FRAME\n" + bytes(row) * height + chroma)
    partial.replace(path)
    return path


@asynccontextmanager
async def chromium(extra_args: list[str] | None = None) -> AsyncIterator[Browser]:
    executable = chromium_path()
    require_built_page()
    extra_args = list(extra_args or [])
    if "--use-fake-device-for-media-stream" in extra_args and not any(
        a.startswith("--use-file-for-fake-video-capture") for a in extra_args
    ):
        extra_args.append(f"--use-file-for-fake-video-capture={fake_camera_file()}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=[*CHROMIUM_ARGS, *extra_args],
            timeout=TIMEOUT * 6000,
        )
        try:
            yield browser
        finally:
            await browser.close()


async def frame_number(page: Page) -> int | None:
    result = await page.evaluate(READ_FRAME_JS)
    return None if result is None else int(result)


async def wait_for_frame(page: Page, check: str, timeout: float = 3 * TIMEOUT) -> int:
    """Poll the picture until `check` (a JS expression on `n`) holds; the frame number."""
    handle = await page.wait_for_function(
        f"() => {{ const n = ({READ_FRAME_JS})()\n"
        f"return n !== null && ({check}) ? {{ n }} : null }}",
        timeout=timeout * 1000,
        polling=50,
    )
    return int((await handle.json_value())["n"])


async def settled_frame(page: Page, quiet: float = 0.8, timeout: float = 3 * TIMEOUT) -> int:
    """Wait until the picture has shown one readable frame for `quiet` seconds; that frame."""
    await page.evaluate("() => { delete window.__settle }")
    handle = await page.wait_for_function(
        f"""() => {{
          const n = ({READ_FRAME_JS})()
          const now = performance.now()
          const s = window.__settle ?? (window.__settle = {{ n: null, since: now }})
          if (n === null || n !== s.n) {{ s.n = n; s.since = now; return null }}
          return now - s.since >= {quiet * 1000} ? {{ n }} : null
        }}""",
        timeout=timeout * 1000,
        polling=50,
    )
    return int((await handle.json_value())["n"])


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
