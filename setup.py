"""The wheel carries the built web page (docs/web.md#the-package): building it runs the page's
build (node and npm) and puts `web/dist` into the package as `server/web`, where
server/web_dist.py finds it. An editable install (`make`'s `pip install -e`) skips this: a
checkout serves `web/dist` itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
NEEDS_NODE = (
    "building the cocoach package builds its web page, which needs node (18 or newer) and "
    "npm: install them (Debian: apt-get install nodejs npm) and build again"
)


class BuildWithPage(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if shutil.which("node") is None or shutil.which("npm") is None:
            raise SystemExit(f"error: {NEEDS_NODE}")
        for step in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "build"]):
            done = subprocess.run(step, cwd=WEB, check=False)
            if done.returncode != 0:
                raise SystemExit(f"error: the web page did not build (`{' '.join(step)}` in web/)")
        target = Path(self.build_lib) / "server" / "web"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(WEB / "dist", target, ignore=shutil.ignore_patterns(".built"))


setup(cmdclass={"build_py": BuildWithPage})
