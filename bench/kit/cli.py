"""The frame of a benchmark's command line: its options for output and limits, the servers'
stack, a time limit over the whole run, SIGTERM, and the JSON file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bench import infra

T = TypeVar("T")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help shows the module's docstring as written."""
    return argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def output_options(
    parser: argparse.ArgumentParser, max_seconds: float, *, keep_logs: bool = True
) -> None:
    """--json, --keep-logs (unless the benchmark has no logs to keep) and --max-seconds."""
    parser.add_argument("--json", help="also write the results to this file")
    if keep_logs:
        parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--max-seconds", type=float, default=max_seconds, help="hard limit for the whole run"
    )


@contextlib.contextmanager
def stack(keep: bool = False) -> Iterator[infra.Stack]:
    """The processes and files of a run, stopped and removed at its end, however it ends;
    with `keep`, the files stay and where they are is said."""
    servers = infra.Stack(keep=keep)
    try:
        yield servers
    finally:
        servers.close()
        if keep:
            print(f"logs kept in {servers.directory}", file=sys.stderr)


def run(main_async: Callable[[argparse.Namespace], Coroutine[Any, Any, T]], args: Any) -> T:
    """`main_async(args)`, stopped after `args.max_seconds`. Stopped by a signal, it unwinds,
    so the servers it started are stopped too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    async def bounded() -> T:
        async with asyncio.timeout(args.max_seconds):
            return await main_async(args)

    return asyncio.run(bounded())


def write_json(path: str | None, data: Any) -> None:
    """`data` to the file `path` (--json), if one was given."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))
