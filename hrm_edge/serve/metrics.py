"""GET /metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Why by hand: a dozen lines of text need no client library on the device. Gauges for the queue and
the slots, counters for puzzles, requests (by status) and segments, and two summaries (request and
puzzle latency: quantiles over the last 1000, `_sum` / `_count` since start). tests/test_serve.py
reads the output back with prometheus_client's own parser.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

QUANTILES = (0.5, 0.9, 0.99)


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_num(v)}" for labels, v in samples]
    return lines


def _num(v: float) -> str:
    if v != v:
        return "NaN"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def _summary(name: str, help_text: str, window: Iterable[float], total_s: float, count: float) -> list[str]:
    vals = np.asarray(list(window), np.float64)
    qs = [(f'{{quantile="{q}"}}', float(np.quantile(vals, q)) if vals.size else float("nan")) for q in QUANTILES]
    return _family(name, "summary", help_text, qs) + [f"{name}_sum {_num(total_s)}", f"{name}_count {_num(count)}"]


def render(service: Any) -> str:
    """The service's state now (`serve.service.Service`)."""
    m, o, sched = service.metrics, service.options, service.scheduler
    stats = sched.stats if sched is not None else None
    lines: list[str] = []
    lines += _family("hrm_edge_queue_depth", "gauge", "Puzzles waiting for a slot.", [("", service.waiting)])
    lines += _family("hrm_edge_slots", "gauge", f"Slots of the {o.schedule} scheduler.", [("", o.slots)])
    lines += _family("hrm_edge_slots_busy", "gauge", "Slots holding a puzzle now.", [("", service.busy)])
    lines += _family("hrm_edge_puzzles_per_second", "gauge", "Puzzles answered per second over the last minute.",
                     [("", m.rate())])
    lines += _family("hrm_edge_puzzles", "counter", "Puzzles answered (augmented test inputs).",
                     [("_total", m.puzzles)])
    lines += _family("hrm_edge_requests", "counter", "Requests to /solve by HTTP status.",
                     [(f'_total{{code="{c}"}}', n) for c, n in sorted(m.requests.items())])
    lines += _family("hrm_edge_segments", "counter", "ACT segment calls (one per batch step).",
                     [("_total", stats.segments if stats else 0)])
    occ = stats.occupancy if stats else None
    lines += _family("hrm_edge_slot_occupancy", "gauge", "Busy fraction of slot-segments since start.",
                     [("", float("nan") if occ is None else occ)])
    lines += _summary("hrm_edge_request_latency_seconds", "Time from a solve request's arrival to its answer.",
                      m.request_latency, m.totals["request_s"], m.totals["requests"])
    lines += _summary("hrm_edge_puzzle_latency_seconds", "Time from a puzzle's queueing to its answer.",
                      m.puzzle_latency, m.totals["puzzle_s"], m.puzzles)
    return "\n".join(lines) + "\n"
