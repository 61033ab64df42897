"""Grids in colour: a terminal rendering (rich) and one PNG per task (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rich.console import RenderableType

    from hrm_edge.data.arc import ArcTask
    from hrm_edge.solve.answers import TestAnswer

# The ARC colour palette (0 black, 1 blue, 2 red, 3 green, 4 yellow, 5 grey, 6 magenta,
# 7 orange, 8 light blue, 9 maroon), as used by the ARC testing interface.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
           "#870C25")


def grid_text(grid: np.ndarray | None) -> RenderableType:
    """A grid as rich Text: two background-coloured spaces per cell."""
    from rich.text import Text

    if grid is None:
        return Text("(no grid)", style="dim")
    t = Text()
    g = np.asarray(grid)
    for r in range(g.shape[0]):
        for c in range(g.shape[1]):
            t.append("  ", style=f"on {PALETTE[int(g[r, c])]}")
        if r < g.shape[0] - 1:
            t.append("\n")
    return t


def answer_panel(task: ArcTask, answers: list[TestAnswer]) -> RenderableType:
    """Test inputs, attempts and solutions of one task side by side, for `--verbose`."""
    from rich.console import Group
    from rich.table import Table

    parts = []
    for a in answers:
        pair = task.test[a.test_index]
        t = Table(show_header=True, box=None, padding=(0, 2), title=f"{task.id} test {a.test_index}",
                  title_justify="left")
        cells = [grid_text(pair.input)]
        t.add_column("input")
        for i, g in enumerate(a.attempts):
            mark = "" if a.correct is None else (" ✓" if a.correct[i] else " ✗")
            votes = f" ({a.ranked[i].count} votes)" if i < len(a.ranked) else ""
            t.add_column(f"attempt {i + 1}{mark}{votes}")
            cells.append(grid_text(None if a.fallback else g))
        if a.solution is not None:
            t.add_column("solution")
            cells.append(grid_text(a.solution))
        t.add_row(*cells)
        parts.append(t)
    return Group(*parts)


def _draw(ax, grid: np.ndarray | None, title: str) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.colors import ListedColormap

    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    if grid is None:
        ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8)
        return
    g = np.asarray(grid)
    ax.imshow(g, cmap=ListedColormap(PALETTE), vmin=0, vmax=9, interpolation="nearest")
    h, w = g.shape
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="#555555", linewidth=0.3)
    ax.tick_params(which="minor", length=0)


def render_task_png(task: ArcTask, answers: list[TestAnswer], path: str | Path) -> Path:
    """One figure: a row per test input with its input, each attempt, and the solution when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answers = sorted(answers, key=lambda a: a.test_index)
    n_att = max((len(a.attempts) for a in answers), default=1)
    cols = 2 + n_att
    rows = max(len(answers), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for r, a in enumerate(answers):
        pair = task.test[a.test_index]
        _draw(axes[r][0], pair.input, f"test {a.test_index} input")
        for i in range(n_att):
            g = a.attempts[i] if i < len(a.attempts) else None
            mark = "" if a.correct is None or i >= len(a.correct) else (" (right)" if a.correct[i] else " (wrong)")
            if a.fallback:
                g, mark = None, " (no grid decoded)"
            elif i >= len(a.ranked):
                mark += " (repeat)"
            _draw(axes[r][1 + i], g, f"attempt {i + 1}{mark}")
        _draw(axes[r][cols - 1], a.solution, "solution" if a.solution is not None else "solution unknown")
    fig.suptitle(task.id, fontsize=10)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=80)
    plt.close(fig)
    return p
