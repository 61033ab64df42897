"""The acceptance presets (lite-5.7m, hrm-6m, trm-7m) in all three ACT modes: slow, so opt-in.

Run with `HRM_EDGE_SLOW=1 python -m pytest tests/test_export_presets.py` (about 15-25 min on 2 CPU cores;
trm-7m alone: 11 min wall under load average ~10).
Random weights (parity does not need training). Each export runs the full ladder with L3 at batch 1 and 2
and L4 on 2 real ARC test inputs; the step graph must be under 30 MB and the unrolled / loop graphs within
10% of it (every weight stored once).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hrm_edge.config import preset
from hrm_edge.export import export_model
from hrm_edge.model import build_model

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.environ.get("HRM_EDGE_SLOW"),
                                                   reason="slow preset exports: set HRM_EDGE_SLOW=1")]

MB = 1_000_000


@pytest.mark.parametrize("name", ["lite-5.7m", "hrm-6m"])
def test_preset_exports_all_modes(tmp_path: Path, name: str) -> None:
    _exports_all_modes(tmp_path, name, l3_batches=(1, 2), l4_puzzles=2)


def test_trm_7m_exports_all_modes(tmp_path: Path) -> None:
    """trm-7m (30 block calls a segment) at its cheapest: 2 segments (the least that makes unrolled and loop
    differ from step), L3 at batch 1, L4 on 1 puzzle."""
    _exports_all_modes(tmp_path, "trm-7m", segments=2, l3_batches=(1,), l4_puzzles=1)


def _exports_all_modes(tmp_path: Path, name: str, **kw) -> None:
    model = build_model(preset(name), seed=0)
    sizes = {}
    for act in ("step", "unrolled", "loop"):
        r = export_model(model, tmp_path / act, act=act, **kw)
        m = r.manifest
        assert m["parity"]["ok"], m["parity"]
        assert m["targets"]["trt-8.5"]["ok"] and m["targets"]["trt-10"]["ok"]
        sizes[act] = m["onnx"]["bytes"]
    assert sizes["step"] < 30 * MB
    for act in ("unrolled", "loop"):
        assert sizes[act] <= 1.10 * sizes["step"], sizes
