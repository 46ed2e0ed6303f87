"""Nearest-rank percentiles: every figure is a value that was measured, never interpolated."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.inf
    rank = max(1, math.ceil(q * len(values)))
    return values[min(rank, len(values)) - 1]


def summary(
    values_s: Sequence[float], quantiles: Sequence[float] = (0.5, 0.95)
) -> dict[str, float]:
    """The count, the `quantiles` (p50_ms, p95_ms, ...) and the largest of `values_s`, which
    are seconds, in milliseconds."""
    ordered = sorted(values_s)
    figures: dict[str, float] = {"n": len(ordered)}
    for q in quantiles:
        figures[f"p{100 * q:g}_ms"] = 1000 * percentile(ordered, q)
    figures["max_ms"] = 1000 * ordered[-1] if ordered else math.inf
    return figures
