"""PNG charts (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["latency_cdf", "throughput"]

_STYLE: dict[str, dict[str, Any]] = {
    "bare-aiohttp": {"color": "#555555", "linestyle": "--"},
    "authlib": {"color": "#d62728"},
    "aiohttp-oauth2-client": {"color": "#ff7f0e"},
    "ours-plain": {"color": "#1f77b4", "linewidth": 2.5},
    "ours-typed": {"color": "#17becf"},
}


def throughput(
    path: Path,
    levels: Sequence[int],
    rps: Mapping[str, Sequence[float]],
    cpu: Mapping[str, Sequence[float]],
) -> None:
    """Requests/s and CPU µs/request against concurrency, one line per client."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, values in rps.items():
        left.plot(levels, values, marker="o", label=name, **_STYLE.get(name, {}))
    for name, values in cpu.items():
        right.plot(levels, values, marker="o", label=name, **_STYLE.get(name, {}))
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(levels), [str(level) for level in levels])
        axis.set_xlabel("concurrent requests")
        axis.grid(True, alpha=0.3)
    left.set_ylabel("requests/s")
    left.set_ylim(bottom=0)
    left.set_title("Throughput (higher is better)")
    right.set_ylabel("client CPU µs per request")
    right.set_ylim(bottom=0)
    right.set_title("Client CPU per request (lower is better)")
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_cdf(path: Path, title: str, latencies: Mapping[str, Sequence[float]]) -> None:
    """Cumulative distribution of per-request latency (ms), one line per client."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, values in latencies.items():
        if not values:
            continue
        ordered = sorted(v * 1000 for v in values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axis.plot(ordered, fractions, label=name, **_STYLE.get(name, {}))
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms, log scale)")
    axis.set_ylabel("fraction of requests completed")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
