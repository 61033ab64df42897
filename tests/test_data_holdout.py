"""build-data --hold-out-tests / --skip-larger: the demo model's selection rule and held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hrm_edge.data.arc import load_tasks
from hrm_edge.data.build import BuildConfig, build_dataset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.data.tokens import encode_grid

CANVAS = 5


def _fitting() -> list:
    """Counted here without the builder: tasks whose every grid side is <= CANVAS."""
    tasks = load_tasks("arc-agi-1/training").tasks
    return [t for t in tasks if all(max(g.shape) <= CANVAS for g in t.grids())]


def _build(tmp: Path, hold_out: bool) -> Path:
    out = tmp / ("held" if hold_out else "ref")
    build_dataset(BuildConfig(sources=["arc-agi-1/training"], out=out, augment=2, seed=1, canvas=CANVAS,
                              translate=False, workers=1, hold_out_tests=hold_out, skip_larger=True))
    return out


def test_skip_larger_selects_exactly_the_fitting_tasks(tmp_path: Path) -> None:
    want = _fitting()
    out = _build(tmp_path, hold_out=True)
    record = json.loads((out / "build.json").read_text())
    assert record["tasks"] == len(want) == 25
    assert record["errors"] == []  # oversized tasks are a selection, not problems
    assert len(record["larger_than_canvas"]) == 400 - len(want)
    assert {r["id"] for r in record["task_records"]} == {t.id for t in want}


def test_hold_out_tests_keeps_every_test_input_out_of_training(tmp_path: Path) -> None:
    want = _fitting()
    out = _build(tmp_path, hold_out=True)
    train, test = HrmDataset(out, "train"), HrmDataset(out, "test")
    copies = {r["id"]: r["copies"] for r in json.loads((out / "build.json").read_text())["task_records"]}
    assert test.num_examples == sum(len(t.test) * copies[t.id] for t in want)
    assert train.num_examples == sum(len(t.train) * copies[t.id] for t in want)
    names = train.identifiers
    arr = train.sets["all"]
    for t in want:  # the task's own (untransformed) puzzle trains on its demonstrations only
        puzzle = int(np.flatnonzero(np.asarray([names[i] for i in arr.puzzle_identifiers]) == t.id)[0])
        lo, hi = arr.puzzle_indices[puzzle], arr.puzzle_indices[puzzle + 1]
        rows = {bytes(r) for r in np.asarray(arr.inputs[lo:hi])}
        assert rows == {bytes(encode_grid(p.input, CANVAS)) for p in t.train}, t.id


def test_reference_rule_trains_on_training_tasks_test_pairs(tmp_path: Path) -> None:
    out = _build(tmp_path, hold_out=False)
    assert not (out / "test").exists()
    want = _fitting()
    copies = {r["id"]: r["copies"] for r in json.loads((out / "build.json").read_text())["task_records"]}
    train = HrmDataset(out, "train")
    assert train.num_examples == sum((len(t.train) + len(t.test)) * copies[t.id] for t in want)
