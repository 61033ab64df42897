"""The ladder refuses a graph that halts wrongly even when its near-tie margin is far too wide (issue 20, tests
without teeth): a loop graph whose minimum step count is off by one must fail, with the adaptive near-tie margin
as exported and with it multiplied by 10^6; the unmutated graph passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST

import hrm_edge.export.onnx as export_onnx
import hrm_edge.export.parity.l3_teacher_forced as l3
import hrm_edge.export.parity.l4_free_run as l4
from hrm_edge.export import export_checkpoint
from hrm_edge.export.parity import ParityError
from hrm_edge.export.parity.stats import halting_doubts, near_tie


def _min_steps_plus_one(monkeypatch) -> None:
    real = export_onnx.halt_mask

    def halt_mask(mode, steps_done, q_halt, q_continue, max_steps, min_steps, *rest):
        return real(mode, steps_done, q_halt, q_continue, max_steps, min_steps + 1, *rest)

    monkeypatch.setattr(export_onnx, "halt_mask", halt_mask)


def _wide_near_ties(monkeypatch) -> None:
    def wide(qh, qc, halt, spec, row, tol):
        return near_tie(qh, qc, halt, spec, row, [t * 1e6 for t in tol] if isinstance(tol, list) else tol * 1e6)

    monkeypatch.setattr(l3, "near_tie", wide)
    monkeypatch.setattr(l4, "near_tie", wide)


@pytest.mark.parametrize("wide", [False, True])
def test_a_loop_graph_with_the_wrong_minimum_steps_is_refused(wide: bool, tiny_ckpt: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    _min_steps_plus_one(monkeypatch)
    if wide:
        _wide_near_ties(monkeypatch)
    out = tmp_path / "loop"
    with pytest.raises(ParityError) as exc:
        export_checkpoint(tiny_ckpt, out, act="loop", halt="adaptive", **{**FAST, "l3_batches": (1, 3, 8)})
    assert "halt" in str(exc.value)
    assert not out.exists()


def test_the_same_loop_graph_unmutated_passes(tiny_ckpt: Path, tmp_path: Path) -> None:
    res = export_checkpoint(tiny_ckpt, tmp_path / "loop", act="loop", halt="adaptive",
                            **{**FAST, "l3_batches": (1, 3, 8)})
    assert res.report.ok


def test_near_tie_cap() -> None:
    assert halting_doubts(1, 4) is None and halting_doubts(2, 8) is None
    assert "2 of 4 halting decisions" in halting_doubts(2, 4)
    assert halting_doubts(3, 8) is not None
