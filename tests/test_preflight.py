"""`cocoach --version`, and what `cocoach serve` says when something it needs is missing or
wrong at start (server/preflight.py): one line a person can act on, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.preflight import codec_problems, page_problem
from tests.test_cli import run_cli


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == "cocoach 0.1.0"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://127.0.0.1:1", "Connection refused"),
        ("redis+sentinel://127.0.0.1:1/cocoach", "no Sentinel of 127.0.0.1:1 names a primary"),
        ("redis+sentinel://127.0.0.1:1", "a sentinel URL names its service"),
        ("redis+cluster://127.0.0.1:1", "Redis Cluster cannot be connected"),
    ],
    ids=["redis", "sentinel", "sentinel-without-service", "cluster"],
)
def test_a_redis_that_cannot_be_reached_is_one_line(tmp_path: Path, url: str, says: str) -> None:
    done = run_cli("serve", "--port", "0", "--data", str(tmp_path), "--redis", url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "Redis" in line]
    assert line.startswith(f"cocoach: Redis at {url} cannot be reached")
    assert says in line and "COCOACH_REDIS" in line and len(line) < 400


def test_an_unwritable_data_folder_is_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    done = run_cli("serve", "--port", "0", "--data", str(not_a_folder / "data"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "data folder" in line]
    assert "cannot be written" in line and "--data or COCOACH_DATA" in line


def test_a_page_not_built_and_a_pyav_without_its_codecs_say_what_to_do(tmp_path: Path) -> None:
    said = page_problem(tmp_path)
    assert said is not None and not said.fatal and "make web" in said.text
    assert page_problem(Path(__file__).resolve().parents[1] / "web" / "dist") is None
    missing = codec_problems({"h264", "libopus"})
    assert [p.fatal for p in missing] == [True]
    assert "libvpx" in missing[0].text and "pip install --force-reinstall av" in missing[0].text
    assert codec_problems({"libvpx", "libopus", "h264", "vp8"}) == []
