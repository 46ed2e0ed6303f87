"""What the benchmarks share, one small module a concern (bench/infra.py starts the processes):

- `cli`: running a benchmark's `main_async` under a time limit, writing its JSON;
- `stats`: nearest-rank percentiles and the usual summary of a list of seconds;
- `cpu`: a server's, this process's and everyone else's CPU over a window, waiting for quiet;
- `stamps`: notes carrying their send time, patched in just before they are sent;
- `video`: an aiortc video track with its frame numbers drawn in (the tests use it too);
- `whep`: receive-only WHEP viewers, and joining many at once.
"""


class BenchError(RuntimeError):
    """A benchmark cannot go on: an expected event did not come, a request was refused."""
