"""Where the test suite's time goes (issue 18): runs `pytest` the way `make test` does and
samples every process on the machine from /proc four times a second, by kind (the test
processes, Chromium, `cocoach serve`, transcode and mixing children, node, Redis), then prints
the wall time, the machine's busy CPU over the run, and each kind's share.

    .venv/bin/python -m bench.suite                 # three processes, as `make test`
    .venv/bin/python -m bench.suite --workers 0     # one process
    .venv/bin/python -m bench.suite -- tests/test_web_live_join.py   # some tests only

A process that ends between two samples loses its last quarter second, so the kinds add up
to a little less than the busy CPU; the rest (this machine's own services, the kernel, what
was missed) is printed as `unattributed`. Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import infra
from bench.kit import cli

ROOT = Path(__file__).resolve().parent.parent
HZ = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.25


def kind_of(cmdline: str, tests: set[int], pid: int) -> str:
    """What a process is, from its command line (arguments joined by spaces)."""
    if "chromium" in cmdline or "headless_shell" in cmdline or "headless-shell" in cmdline:
        for part in ("renderer", "gpu-process", "utility", "zygote"):
            if f"--type={part}" in cmdline:
                return f"Chromium: {part}"
        return "Chromium: browser"
    for module, name in (
        ("server.library.transcode", "transcode children"),
        ("server.media.mixing", "mixing children"),
        ("server.cli", "cocoach serve (supervisors and workers)"),
    ):
        if module in cmdline:
            return name
    if pid in tests:
        return "the test processes"
    program = cmdline.split(" ", 1)[0]
    if program.endswith("node") or "/node " in cmdline:
        return "node"
    if "redis-server" in cmdline or "redis-sentinel" in cmdline:
        return "Redis"
    return "other"


def _stat(pid: str) -> tuple[str, int, int] | None:
    """(start time, parent's pid, CPU ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19], int(fields[1]), int(fields[11]) + int(fields[12])


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def sample_run(command: list[str], max_seconds: float) -> dict[str, object]:
    """Run `command`, sampling /proc until it ends; its exit code, wall, busy CPU and kinds."""
    first: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], int] = {}
    kinds: dict[tuple[str, str], str] = {}
    busy0 = infra.machine_busy_seconds()
    total0 = _total_seconds()
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT)
    tests = {process.pid}
    baseline = True  # what already ran before the suite started is not the suite's
    deadline = started + max_seconds
    while True:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            stat = _stat(pid)
            if stat is None:
                continue
            key = (pid, stat[0])
            # Read again each time: a child is first seen with its parent's command line,
            # between fork and exec.
            cmdline = _cmdline(pid)
            if stat[1] == process.pid and "python" in cmdline.split(" ", 1)[0]:
                tests.add(int(pid))  # pytest-xdist's processes
            if key not in first:
                first[key] = stat[2] if baseline else 0
            last[key] = stat[2]
            if cmdline:
                kinds[key] = kind_of(cmdline, tests, int(pid))
        baseline = False
        code = process.poll()
        if code is not None:
            break
        if time.monotonic() > deadline:
            process.kill()
            code = process.wait()
            break
        time.sleep(INTERVAL)
    wall = time.monotonic() - started
    busy = infra.machine_busy_seconds() - busy0
    shares: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for key, ticks in last.items():
        used = (ticks - first[key]) / HZ
        if used > 0:
            kind = kinds.get(key, "other")
            shares[kind] += used
            counts[kind] += 1
    other = shares.pop("other", 0.0)
    counts.pop("other", None)
    unattributed = max(0.0, busy - sum(shares.values()) - other)
    return {
        "exit_code": code,
        "wall_seconds": round(wall, 1),
        "busy_cpu_seconds": round(busy, 1),
        "machine_cpu_seconds": round(_total_seconds() - total0, 1),
        "kinds": {
            k: {"cpu_seconds": round(v, 1), "processes": counts[k]} for k, v in shares.most_common()
        },
        "unattributed_cpu_seconds": round(unattributed, 1),
        "other_sampled_cpu_seconds": round(other, 1),
    }


def _total_seconds() -> float:
    """Both busy and idle time of every core since boot, in seconds."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) / HZ


def main() -> None:
    parser = cli.parser("python -m bench.suite", __doc__)
    parser.add_argument(
        "--workers", type=int, default=3, help="test processes (0: one, as TEST_WORKERS=0)"
    )
    cli.output_options(parser, max_seconds=1800.0, keep_logs=False)
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if args.workers:
        command += ["-n", str(args.workers), "--dist", "loadfile", "--no-loadscope-reorder"]
    command += args.pytest_args
    os.environ.setdefault("COCOACH_TEST_SLOWNESS", "2")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "server", "tests", "bench"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    result = sample_run(command, args.max_seconds)
    print(f"\nmachine: {infra.machine()}; suite: {' '.join(command[1:])}")
    print(
        f"wall {result['wall_seconds']} s; busy CPU {result['busy_cpu_seconds']} s of "
        f"{result['machine_cpu_seconds']} s (all cores); pytest exit code {result['exit_code']}"
    )
    print("| what | CPU s | processes |\n|---|---|---|")
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    for name, row in kinds.items():
        print(f"| {name} | {row['cpu_seconds']} | {row['processes']} |")
    print(f"| other processes sampled | {result['other_sampled_cpu_seconds']} | |")
    print(
        f"| unattributed (ended between samples, kernel) | {result['unattributed_cpu_seconds']} | |"
    )
    cli.write_json(args.json, result)
    sys.exit(0 if result["exit_code"] == 0 else 1)


if __name__ == "__main__":
    main()
