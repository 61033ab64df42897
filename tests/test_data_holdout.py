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


# --------------------------------------------------------------------------- --validation (issue 21, item 8)


def _build_val(tmp: Path) -> Path:
    out = tmp / "val"
    build_dataset(BuildConfig(sources=["arc-agi-1/training"], out=out, augment=2, seed=1, canvas=CANVAS,
                              translate=False, workers=1, hold_out_tests=True, skip_larger=True, validation=True))
    return out


def _rows_of(ds: HrmDataset, identifier: str) -> tuple[set[bytes], set[bytes]]:
    """(input rows, label rows) of one puzzle identifier in a split."""
    arr = ds.sets["all"]
    names = [ds.identifiers[i] for i in arr.puzzle_identifiers]
    if identifier not in names:
        return set(), set()
    p = names.index(identifier)
    lo, hi = arr.puzzle_indices[p], arr.puzzle_indices[p + 1]
    return {bytes(r) for r in np.asarray(arr.inputs[lo:hi])}, {bytes(r) for r in np.asarray(arr.labels[lo:hi])}


def test_validation_holds_out_each_tasks_last_demonstration_pair(tmp_path: Path) -> None:
    want = _fitting()
    out = _build_val(tmp_path)
    record = json.loads((out / "build.json").read_text())
    assert record["validation"] is True and record["validation_min_pairs"] == 3
    copies = {r["id"]: r["copies"] for r in record["task_records"]}
    held = {r["id"]: r["validation_pair"] for r in record["task_records"]}
    big = [t for t in want if len(t.train) >= 3]
    assert len(big) == 24 and {t.id for t in want} - {t.id for t in big} == {"6150a2bd"}  # its 2 pairs all train
    assert held == {t.id: (len(t.train) - 1 if len(t.train) >= 3 else None) for t in want}
    train, val, test = (HrmDataset(out, s) for s in ("train", "val", "test"))
    assert val.num_examples == sum(copies[t.id] for t in big)  # one pair per copy of each task with >= 3
    assert train.num_examples == sum((len(t.train) - (t in big)) * copies[t.id] for t in want)
    assert test.num_examples == sum(len(t.test) * copies[t.id] for t in want)
    for t in want:  # the task's own puzzle: val holds the last demonstration, train the others, never both
        tr_in, tr_lab = _rows_of(train, t.id)
        va_in, va_lab = _rows_of(val, t.id)
        demos = t.train[:-1] if t in big else t.train
        assert tr_in == {bytes(encode_grid(p.input, CANVAS)) for p in demos}, t.id
        assert tr_lab == {bytes(encode_grid(p.output, CANVAS)) for p in demos}, t.id
        if t in big:
            last = t.train[-1]
            assert va_in == {bytes(encode_grid(last.input, CANVAS))} and va_lab == {bytes(encode_grid(last.output,
                                                                                                      CANVAS))}
            if not any(np.array_equal(last.input, p.input) for p in demos):  # an ARC task may repeat an input
                assert not va_in & tr_in, t.id
        else:
            assert va_in == set(), t.id


def test_validation_changes_no_identifier_and_no_test_example(tmp_path: Path) -> None:
    """The val/ split only moves pairs out of train/: the puzzle table (identifiers.json) and test/ are the same
    as without it, so a model trained either way reads the same rows and is scored on the same inputs."""
    with_val, without = _build_val(tmp_path), _build(tmp_path, hold_out=True)
    assert (with_val / "identifiers.json").read_bytes() == (without / "identifiers.json").read_bytes()
    for name in ("all__inputs.npy", "all__labels.npy", "all__puzzle_identifiers.npy", "all__puzzle_indices.npy"):
        assert (with_val / "test" / name).read_bytes() == (without / "test" / name).read_bytes(), name
    assert not (without / "val").exists()
