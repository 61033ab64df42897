"""`hrm-edge solve TASKS --server URL`: solve through a running `hrm-edge serve`, same files as local solving.

The server owns the model and its solving options, so the client checks first that what the user asked
for explicitly (augment, attempts, halt, seed) is what the server does, and says so instead of silently
answering with other settings. The submission is validated and written like a local one; scores use the
same ARC Prize scoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError
from hrm_edge.serve.client import option_mismatches, server_info, solve_remote


@dataclass
class RemoteSolve:
    """What `solve --server` prints: the server's facts, the summary, and what was skipped."""

    info: dict[str, Any]
    n_tasks: int
    summary: dict[str, Any]
    problems: list[str]
    wall_s: float


def solve_on_server(url: str, tasks: str, out: Path, scores_path: Path, *, token: str | None = None,
                    wanted: dict[str, Any] | None = None, limit: int | None = None, concurrency: int = 4,
                    say: Callable[[str], None] = lambda _: None,
                    on_task: Callable[[str], None] | None = None) -> RemoteSolve:
    """Solve `tasks` (a named set, file or folder) on the server at `url`; write `out` and `scores_path`.

    `wanted` holds only the options the user gave explicitly; any the server does not use is an error."""
    from hrm_edge.fileio import atomic_write_json
    from hrm_edge.solve.run import load_task_list
    from hrm_edge.solve.submission import score_submission, validate_submission, write_submission

    info = server_info(url, token=token)
    bad = option_mismatches(info, **(wanted or {}))
    if bad:
        raise HrmEdgeError(f"the server at {url} solves with other settings: {'; '.join(bad)} "
                           "(drop those flags, or restart the server with them)")
    task_list, problems = load_task_list(tasks, int(info["canvas"]), limit, say)
    t0 = time.perf_counter()
    res = solve_remote(url, task_list, token=token, concurrency=concurrency, on_task=on_task)
    wall = time.perf_counter() - t0
    invalid = validate_submission(res.submission, task_list, attempts=int(info["attempts"]))
    if invalid:
        raise HrmEdgeError(f"the server's answers do not form a valid submission ({invalid[0]})", url)
    write_submission(out, res.submission)
    summary = score_submission(res.submission, task_list)
    atomic_write_json(scores_path, {"runtime": f"server {url}", "server": info, "summary": summary,
                                    "wall_s": wall, "retries": res.retries, "skipped": problems})
    return RemoteSolve(info, len(task_list), summary, problems, wall)
