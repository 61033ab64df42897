"""Grids in colour: a terminal rendering (rich) and one PNG per task (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


CELL_INCHES = 0.16  # every grid's cells are drawn this size, so a 1x1 answer looks 1x1 beside a 3x3 input
_PAD, _TITLE, _HEAD = 0.25, 0.32, 0.45  # inches: between panels, above a panel for its title, for the task id
_SLOT = 1.2  # inches: the least width a panel takes, so titles of small grids do not run into each other


def _draw(ax, grid: np.ndarray | None, title: str) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.colors import ListedColormap

    ax.set_xticks([])
    ax.set_yticks([])
    if grid is None:
        ax.set_title(title, fontsize=7)
        ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=7)
        return
    g = np.asarray(grid)
    h, w = g.shape
    ax.set_title(f"{title}\n{h}x{w}", fontsize=7)
    ax.imshow(g, cmap=ListedColormap(PALETTE), vmin=0, vmax=9, interpolation="nearest", aspect="equal")
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="#555555", linewidth=0.3)
    ax.tick_params(which="minor", length=0)


Panel = tuple[Any, str]  # (grid or None, title)


def task_panels(task: ArcTask, answers: list[TestAnswer]) -> list[list[Panel]]:
    """The rows of a task's figure: each demonstration pair (input, output), then each test input with its
    attempts and the solution when known."""
    rows: list[list[Panel]] = [[(p.input, f"demo {i} input"), (p.output, f"demo {i} output")]
                               for i, p in enumerate(task.train)]
    answers = sorted(answers, key=lambda a: a.test_index)
    n_att = max((len(a.attempts) for a in answers), default=1)
    for a in answers:
        row: list[Panel] = [(task.test[a.test_index].input, f"test {a.test_index} input")]
        for i in range(n_att):
            g = a.attempts[i] if i < len(a.attempts) else None
            mark = "" if a.correct is None or i >= len(a.correct) else (" (right)" if a.correct[i] else " (wrong)")
            if a.fallback:
                g, mark = None, " (no grid decoded)"
            elif i >= len(a.ranked):
                mark += " (repeat)"
            row.append((g, f"attempt {i + 1}{mark}"))
        row.append((a.solution, "solution" if a.solution is not None else "solution unknown"))
        rows.append(row)
    return rows


def task_figure(task: ArcTask, answers: list[TestAnswer]) -> Any:
    """The figure of `render_task_png`: panels placed by hand so every cell is CELL_INCHES square."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = task_panels(task, answers)

    def size(g: Any) -> tuple[int, int]:
        return np.asarray(g).shape if g is not None else (3, 3)  # type: ignore[return-value]

    heights = [max(size(g)[0] for g, _ in row) * CELL_INCHES + _TITLE + _PAD for row in rows]
    widths = [sum(max(size(g)[1] * CELL_INCHES, _SLOT) + _PAD for g, _ in row) + _PAD for row in rows]
    fig_w, fig_h = max([*widths, 3.0]), sum(heights) + _HEAD
    fig = plt.figure(figsize=(fig_w, fig_h))
    top = fig_h - _HEAD
    for row, rh in zip(rows, heights):
        x = _PAD
        for g, title in row:
            h, w = size(g)
            slot = max(w * CELL_INCHES, _SLOT)
            left = x + (slot - w * CELL_INCHES) / 2
            ax = fig.add_axes((left / fig_w, (top - _TITLE - h * CELL_INCHES) / fig_h, w * CELL_INCHES / fig_w,
                               h * CELL_INCHES / fig_h))
            _draw(ax, g, title)
            x += slot + _PAD
        top -= rh
    fig.suptitle(task.id, fontsize=10, y=1 - 0.15 / fig_h, va="top")
    return fig


def render_task_png(task: ArcTask, answers: list[TestAnswer], path: str | Path) -> Path:
    """One figure: the demonstration pairs, then a row per test input with its input, each attempt, and the
    solution when known; every cell the same size, each grid labelled with its size."""
    import matplotlib.pyplot as plt

    fig = task_figure(task, answers)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=80)
    plt.close(fig)
    return p
