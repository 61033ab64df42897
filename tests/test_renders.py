"""Renders show shapes and sizes (issue 20, item 9): every cell the same size, demonstration pairs shown, sizes
labelled; compare.png's bars carry their values and its agreement axis is zoomed to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hrm_edge.data.arc import ArcPair, ArcTask
from hrm_edge.solve.answers import TestAnswer as Answer
from hrm_edge.solve.compare import CompareReport, RuntimeRow
from hrm_edge.solve.render import CELL_INCHES, render_task_png, task_figure


def _task() -> tuple[ArcTask, list[Answer]]:
    g = lambda h, w, c: np.full((h, w), c, dtype=np.uint8)  # noqa: E731
    task = ArcTask("t1", [ArcPair(g(3, 3, 1), g(1, 1, 2)), ArcPair(g(2, 5, 3), g(1, 1, 4))],
                   [ArcPair(g(4, 2, 5), g(1, 1, 6))])
    ans = Answer("t1", 0, [g(1, 1, 6), g(3, 3, 7)], ranked=[object(), object()], n_candidates=2,  # type: ignore[list-item]
                     n_undecodable=0, solution=g(1, 1, 6), correct=[True, False])
    return task, [ans]


def test_every_cell_has_one_size_and_every_grid_its_size_label(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    task, answers = _task()
    fig = task_figure(task, answers)
    w_in, h_in = fig.get_size_inches()
    titles = []
    for ax in fig.axes:
        img = ax.get_images()[0]
        rows, cols = img.get_array().shape
        box = ax.get_position()
        assert box.width * w_in == pytest.approx(cols * CELL_INCHES)  # a 1x1 answer is 1 cell wide, not a box
        assert box.height * h_in == pytest.approx(rows * CELL_INCHES)
        assert ax.get_title().endswith(f"\n{rows}x{cols}")
        titles.append(ax.get_title().split("\n")[0])
    plt.close(fig)
    assert titles == ["demo 0 input", "demo 0 output", "demo 1 input", "demo 1 output", "test 0 input",
                      "attempt 1 (right)", "attempt 2 (wrong)", "solution"]
    assert render_task_png(task, answers, tmp_path / "t1.png").stat().st_size > 1000


def _report(grid_pcts: list[float]) -> CompareReport:
    rows = [RuntimeRow(f"rt{i}", "onnxruntime", "a", "ok", pass2=0.5, grid_match_pct=v, latency={"p50_ms": 10.0 + i})
            for i, v in enumerate(grid_pcts)]
    rows.append(RuntimeRow("tensorrt x", "tensorrt", "x", "unavailable", "no TensorRT"))
    return CompareReport(rows, tasks=1, test_inputs=1, puzzles=4, options={"halt": "max", "augment": 4, "batch": 4})


def test_compare_png_labels_every_bar_and_zooms_the_agreement_axis(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from hrm_edge.bench.compare import compare_figure, plot

    fig = compare_figure(_report([100.0, 97.5, 99.0]))
    passes, grids, latency = fig.axes
    assert sorted(t.get_text().strip() for t in grids.texts) == ["100.0%", "97.5%", "99.0%"]
    assert sorted(t.get_text().strip() for t in latency.texts) == ["10.0 ms", "11.0 ms", "12.0 ms"]
    lo, hi = grids.get_xlim()
    assert 90.0 <= lo < 97.5 and hi > 100.0  # 97.5 and 100 are told apart; every bar is whole
    ys = [p.get_y() for p in grids.patches]
    assert len(set(ys)) == len(ys) == 3  # one bar per runtime, none hiding another
    plt.close(fig)
    assert plot(_report([100.0, 40.0]), tmp_path / "c.png").stat().st_size > 1000
