"""`hrm-edge solve` as a user runs it: real ARC tasks in, a valid ARC Prize submission out.

Models here are random (the trained one is in test_solve_e2e.py); any accuracy is fine, the
checks are on the pipeline: format, skipping bad tasks with exit 1, one-line errors with exit 2,
rendering, the blank-identifier note, and the lite family's batch-mean halting.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tasks

from hrm_edge.data.arc import load_tasks
from hrm_edge.model.checkpoint import load_checkpoint
from hrm_edge.solve.submission import validate_submission


@pytest.fixture(scope="module")
def kit(tiny_ckpt: Path, lite_ckpt: Path, tasks_dir: Path) -> dict:
    return {"ckpt": tiny_ckpt, "lite": lite_ckpt, "tasks": tasks_dir,
            "ids": sorted(t.id for t in load_tasks(tasks_dir).tasks)}


def pass_at_2(sub: dict, tasks: list) -> float:
    """pass@2 computed here from the submission and the tasks' known outputs: per task, the share of test
    inputs with an attempt equal to the solution; mean over tasks."""
    per = []
    for t in tasks:
        hits = [any(np.array_equal(np.asarray(att[k]), pair.output) for k in ("attempt_1", "attempt_2"))
                for att, pair in zip(sub[t.id], t.test)]
        per.append(np.mean(hits))
    return float(np.mean(per))


def test_solve_torch_writes_valid_submission_scores_and_renders(kit, cli_fast, tmp_path: Path) -> None:
    out = tmp_path / "sub.json"
    r = cli_fast("solve", str(kit["tasks"]), "--ckpt", str(kit["ckpt"]), "--augment", "3", "--batch", "4",
            "--out", str(out), "--render", str(tmp_path / "png"), "--verbose")
    assert r.returncode == 0, r.stderr
    sub = json.loads(out.read_text())
    tasks = load_tasks(kit["tasks"], canvas=10).tasks
    assert validate_submission(sub, tasks) == []
    assert sorted(sub) == sorted(kit["ids"])
    scores = json.loads((tmp_path / "sub_scores.json").read_text())
    assert scores["summary"]["tasks_with_solutions"] == 3
    assert scores["summary"]["pass@2"] == pass_at_2(sub, tasks)
    assert len(scores["per_task"]) == 3 and scores["options"]["augment"] == 3
    assert sorted(p.stem for p in (tmp_path / "png").glob("*.png")) == sorted(kit["ids"])
    assert "pass@2" in r.stdout and "attempt 1" in r.stdout  # summary and the verbose grids
    # random puzzle table, no identifier index beside the checkpoint: every puzzle is blank, said once
    assert r.stderr.count("blank puzzle identifier") == 1


def test_bad_tasks_are_reported_skipped_and_exit_1(kit, cli, tmp_path: Path) -> None:
    folder = write_tasks(tmp_path / "mixed", load_tasks(kit["tasks"], canvas=10).tasks[:2])
    write_tasks(folder, {
        "ragged": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
        "notjson": "{ this is not json",
        "notest": {"train": [{"input": [[1]], "output": [[2]]}]},
        "colour": {"train": [{"input": [[12]], "output": [[2]]}], "test": [{"input": [[1]]}]}})
    out = tmp_path / "sub.json"
    r = cli("solve", str(folder), "--ckpt", str(kit["ckpt"]), "--augment", "2", "--out", str(out), threads=1)
    assert r.returncode == 1, r.stderr
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 4, r.stderr
    for name, why in (("ragged", "ragged"), ("notjson", "not valid JSON"), ("notest", "missing 'test'"),
                      ("colour", "outside 0..9")):
        assert any(name in s and why in s for s in skipped), (name, skipped)
    # the ARC Prize format: every task id, attempt_1 and attempt_2 for each test input; skipped ones as placeholders
    sub = json.loads(out.read_text())
    good = [t.id for t in load_tasks(kit["tasks"], canvas=10).tasks[:2]]
    assert sorted(sub) == sorted(good + ["ragged", "notjson", "notest", "colour"])
    assert validate_submission(sub) == []
    for tid in ("ragged", "notjson", "notest", "colour"):
        assert sub[tid] == [{"attempt_1": [[0]], "attempt_2": [[0]]}], tid
    assert "4 task(s) skipped (4 problem(s))" in r.stderr
    assert any(line.startswith("placeholder attempts") and "4 skipped task(s)" in line for line in
               r.stderr.splitlines()), r.stderr
    scores = json.loads((tmp_path / "sub_scores.json").read_text())
    assert scores["placeholder_tasks"] == {"ragged": 1, "notjson": 1, "notest": 1, "colour": 1}


def test_grids_larger_than_the_model_canvas_are_skipped(kit, cli_fast, tmp_path: Path) -> None:
    big = [t for t in load_tasks("arc-agi-1/evaluation").tasks if max(max(s) for s in t.shapes()) > 10
           and len(t.test) == 1 and len(t.train) >= 3][:1]
    small = load_tasks(kit["tasks"], canvas=10).tasks[:1]
    folder = write_tasks(tmp_path / "big", big + small)
    out = tmp_path / "s.json"
    r = cli_fast("solve", str(folder), "--ckpt", str(kit["ckpt"]), "--augment", "1", "--out", str(out))
    assert r.returncode == 1
    assert "larger than the 10x10 canvas" in r.stderr
    n_problems = sum(line.startswith("skipped:") for line in r.stderr.splitlines())
    assert n_problems > 1  # several grids too large: still one task
    assert f"1 task(s) skipped ({n_problems} problem(s))" in r.stderr
    sub = json.loads(out.read_text())
    assert sorted(sub) == sorted([big[0].id, small[0].id]) and validate_submission(sub) == []
    assert sub[big[0].id] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    assert len(sub[small[0].id]) == len(small[0].test)


def test_a_task_too_large_for_the_canvas_gets_a_placeholder_per_test_input(kit, cli_fast, tmp_path: Path) -> None:
    """One of its two test inputs is wider than the canvas: the task is skipped and both entries are owed (the
    count comes from the file, since the task never loaded), with as many attempts as --attempts."""
    wide = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1] * 11]}, {"input": [[2]]}]}
    folder = write_tasks(tmp_path / "w", {"wide": wide})
    write_tasks(folder, load_tasks(kit["tasks"], canvas=10).tasks[:1])
    out = tmp_path / "s.json"
    r = cli_fast("solve", str(folder), "--ckpt", str(kit["ckpt"]), "--augment", "1", "--out", str(out),
                 "--attempts", "3")
    assert r.returncode == 1, r.stderr
    sub = json.loads(out.read_text())
    assert sub["wide"] == [{"attempt_1": [[0]], "attempt_2": [[0]], "attempt_3": [[0]]}] * 2
    assert validate_submission(sub, attempts=3) == []


@pytest.mark.parametrize("args, message", [
    (["--runtime", "onnxruntime"], "--runtime onnxruntime needs --bundle"),
    (["--halt", "sometimes"], "--halt must be one of"),
    (["--halt", "batch-mean"], "not available for the act-v1 family"),
])
def test_solve_usage_errors_are_one_line_exit_2(kit, cli_fast, tmp_path: Path, args: list[str], message: str) -> None:
    r = cli_fast("solve", str(kit["tasks"]), "--ckpt", str(kit["ckpt"]), *args, "--out", str(tmp_path / "s.json"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_single_invalid_task_file_and_missing_artifacts_exit_2(kit, cli, cli_fast, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}))
    r = cli("solve", str(bad), "--ckpt", str(kit["ckpt"]))
    assert r.returncode == 2 and "ragged rows" in r.stderr and "Traceback" not in r.stderr
    r = cli_fast("solve", str(kit["tasks"]), "--ckpt", str(tmp_path / "nope.pt"))
    assert r.returncode == 2 and "no such checkpoint file" in r.stderr
    r = cli_fast("solve", str(kit["tasks"]), "--bundle", str(tmp_path / "nobundle"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_lite_family_batch_mean_halting(kit, cli_fast, tmp_path: Path, monkeypatch) -> None:
    """`--halt batch-mean` reaches the ACT driver, and the rule acts: whole batches stop before the last
    cycle, every sample of a batch at the same segment (the batch mean decides for all)."""
    from hrm_edge.runtime.base import Runner

    calls = []
    run_act = Runner.run_act

    def spy(self, tokens, puzzle_emb=None, halt="max"):
        res = run_act(self, tokens, puzzle_emb, halt=halt)
        calls.append((halt, res.steps.copy()))
        return res

    monkeypatch.setattr(Runner, "run_act", spy)
    out = tmp_path / "lite.json"
    r = cli_fast("solve", str(kit["tasks"]), "--ckpt", str(kit["lite"]), "--halt", "batch-mean", "--augment", "2",
                 "--batch", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "blank puzzle identifier" not in r.stderr  # lite has no puzzle embedding
    assert validate_submission(json.loads(out.read_text())) == []
    assert calls and {h for h, _ in calls} == {"batch-mean"}
    assert all(len(set(steps.tolist())) == 1 for _, steps in calls)  # one decision per batch
    max_cycles = load_checkpoint(kit["lite"]).model.config.max_steps
    assert min(int(steps[0]) for _, steps in calls) < max_cycles, calls


@pytest.mark.parametrize("act, halt", [("unrolled", "max"), ("loop", "batch-mean")])
def test_solve_with_unrolled_and_loop_bundles_matches_torch(kit, bundles, cli_fast, tmp_path: Path, act: str,
                                                            halt: str) -> None:
    """A graph with the ACT loop inside gives the submission PyTorch gives (lite: no puzzle table, so the
    inputs are identical and the fp32 graph agrees to rounding)."""
    subs = {}
    for rt, flag, art in (("torch", "--ckpt", kit["lite"]),
                          ("onnxruntime", "--bundle", bundles[("tiny-lite", act, halt)].path)):
        out = tmp_path / f"{rt}.json"
        r = cli_fast("solve", str(kit["tasks"]), "--runtime", rt, flag, str(art), "--augment", "2", "--batch", "3",
                     "--halt", halt, "--out", str(out))
        assert r.returncode == 0, r.stderr
        subs[rt] = out.read_bytes()
    assert subs["torch"] == subs["onnxruntime"]
