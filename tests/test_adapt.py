"""`hrm-edge adapt`: unseen tasks learned from their demonstration pairs alone, into an ordinary checkpoint.

What would break each test: reading a test pair (the planted marker changes the adapted weights), appending rows
for anything but the adaptation's names or moving a base row, training the trunk in embedding mode, a Ctrl-C that
loses the state or leaves a partial file, a re-run that appends the same rows again, a bundle whose updated table
answers differently from the checkpoint, or an update that lets a full-mode checkpoint's weights through.
"""

from __future__ import annotations

import copy
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_inprocess, small_checkpoint, small_real_tasks, write_tasks

from hrm_edge.adapt.demos import build_demos
from hrm_edge.adapt.rows import append_rows
from hrm_edge.adapt.run import AdaptOptions, adapt_checkpoint
from hrm_edge.data.arc import ArcPair
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.checkpoint import load_checkpoint

QUICK = {"augment": 2, "batch": 8, "evals": 1, "eval_augment": 2}


@pytest.fixture(scope="module")
def tasks() -> list:
    return small_real_tasks(3)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("adapt") / "base.pt")


def _marked(tasks: list) -> list:
    """The same tasks with every test pair replaced by a marker (colour 7 everywhere, another shape)."""
    out = copy.deepcopy(tasks)
    for t in out:
        t.test = [ArcPair(np.full((3, 5), 7, np.uint8), np.full((5, 3), 7, np.uint8)) for _ in t.test]
    return out


def _state(path: Path) -> tuple[dict, list]:
    ck = load_checkpoint(path)
    return ck.model.state_dict(), ck.train_state["identifiers"]


def test_test_pairs_never_reach_the_adapted_model(base: Path, tasks: list, tmp_path: Path) -> None:
    marked = _marked(tasks)
    assert any(not np.array_equal(a.output, b.output) for t, m in zip(tasks, marked) for a, b in zip(t.test, m.test))
    d1, d2 = build_demos(tasks, 2, 10, 0), build_demos(marked, 2, 10, 0)
    assert np.array_equal(d1.inputs, d2.inputs) and np.array_equal(d1.labels, d2.labels) and d1.names == d2.names
    opts = AdaptOptions(steps=3, **QUICK)
    r1 = adapt_checkpoint(base, tasks, tmp_path / "a.pt", opts)
    r2 = adapt_checkpoint(base, marked, tmp_path / "b.pt", opts)
    (s1, n1), (s2, n2) = _state(tmp_path / "a.pt"), _state(tmp_path / "b.pt")
    assert n1 == n2 and s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in r.history] for r in (r1, r2)]
    assert strip[0] == strip[1] and len(strip[0]) == 2  # the held-out scoring reads demonstrations only, too


def test_rows_appended_for_the_new_tasks_alone(base: Path, tasks: list, tmp_path: Path) -> None:
    before = load_checkpoint(base)
    rows0 = before.config.num_puzzle_identifiers
    res = adapt_checkpoint(base, tasks, tmp_path / "a.pt", AdaptOptions(steps=4, hold_out=False, **QUICK))
    after = load_checkpoint(tmp_path / "a.pt")
    names = after.train_state["identifiers"]
    demos = build_demos(tasks, 2, 10, 0, hold_out=False)
    assert names[rows0:] == demos.names and res.rows_added == len(demos.names)
    assert {n.split("_t")[0] for n in demos.names} == {t.id for t in tasks}
    w0, w1 = before.model.puzzle_emb.weights, after.model.puzzle_emb.weights
    assert w1.shape[0] == rows0 + len(demos.names)
    assert torch.equal(w1[:rows0], w0)  # base rows untouched
    start = w0[1:].mean(0)
    assert not torch.allclose(w1[rows0:], start.expand_as(w1[rows0:]))  # the new rows learned
    dense0, dense1 = before.model.state_dict(), after.model.state_dict()
    for k in dense0:
        if k != "puzzle_emb.weights":
            assert torch.equal(dense0[k], dense1[k]), k  # embedding mode: the trunk is the base's
    assert after.train_state["adapt"]["mode"] == "embedding"


def test_new_rows_start_where_each_reference_starts_them() -> None:
    from conftest import tiny_model

    for name, want in (("tiny", lambda w: w[1:].mean(0)), ("tiny-trm", lambda w: w.mean(0))):
        m = tiny_model(name)
        w = m.puzzle_emb.weights.detach().clone()
        table = ["<blank>"] + [f"t{i}" for i in range(1, w.shape[0])]
        rows, added = append_rows(m, ["t1", "new_a", "new_b"], table)
        assert added == 2 and rows == [1, w.shape[0], w.shape[0] + 1]
        grown = m.puzzle_emb.weights.detach()
        assert torch.equal(grown[:w.shape[0]], w)
        assert torch.allclose(grown[w.shape[0]:], want(w).expand(2, -1))


def test_ctrl_c_keeps_the_state_and_a_rerun_continues_it(base: Path, tasks: list, tmp_path: Path) -> None:
    out = tmp_path / "a.pt"

    def interrupt(step: int) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    res = adapt_checkpoint(base, tasks, out, AdaptOptions(steps=50, hold_out=False, **QUICK), on_step=interrupt)
    assert res.stopped_by == signal.SIGINT and res.steps == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.pt"]
    first = load_checkpoint(out)
    again = adapt_checkpoint(out, tasks, tmp_path / "b.pt", AdaptOptions(steps=2, hold_out=False, **QUICK))
    assert again.rows_added == 0  # the same names keep their rows: the run continues them
    second = load_checkpoint(tmp_path / "b.pt")
    assert second.config.num_puzzle_identifiers == first.config.num_puzzle_identifiers
    assert not torch.equal(second.model.puzzle_emb.weights, first.model.puzzle_emb.weights)


def test_full_mode_trains_the_trunk_of_trm(tasks: list, tmp_path: Path) -> None:
    ck = small_checkpoint(tmp_path / "trm.pt", name="tiny-trm")
    adapt_checkpoint(ck, tasks[:1], tmp_path / "a.pt", AdaptOptions(steps=2, mode="full", **QUICK))
    a, b = load_checkpoint(ck).model.state_dict(), load_checkpoint(tmp_path / "a.pt").model.state_dict()
    changed = [k for k in a if k != "puzzle_emb.weights" and not torch.equal(a[k], b[k])]
    assert changed


def test_lite_says_it_has_no_puzzle_rows(lite_ckpt: Path, tasks: list, tmp_path: Path) -> None:
    with pytest.raises(HrmEdgeError, match="no puzzle embedding rows.*--mode full"):
        adapt_checkpoint(lite_ckpt, tasks, tmp_path / "a.pt", AdaptOptions(steps=1))
    assert not (tmp_path / "a.pt").exists()


def test_cli_adapt_update_bundle_answers_like_the_checkpoint(base: Path, tasks: list, tmp_path: Path) -> None:
    tdir = write_tasks(tmp_path / "tasks", tasks)
    bundle = tmp_path / "bundle"
    r = run_inprocess("export", str(base), "--out", str(bundle), "--puzzle-dtype", "fp32", "--l4-puzzles", "1")
    assert r.returncode == 0, r.stderr
    ad = tmp_path / "ad.pt"
    r = run_inprocess("adapt", str(tdir), "--ckpt", str(base), "--out", str(ad), "--steps", "3", "--augment", "2",
                      "--batch", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(ad) and "rows appended" in r.stderr
    r = run_inprocess("export", "--update-puzzles", str(bundle), str(ad), "--l4-puzzles", "1")
    assert r.returncode == 0, r.stderr
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["puzzle_emb"]["shape"][0] == load_checkpoint(ad).config.num_puzzle_identifiers
    subs = {}
    for kind, flag, art in (("torch", "--ckpt", ad), ("ort", "--bundle", bundle)):
        out = tmp_path / f"{kind}.json"
        r = run_inprocess("solve", str(tdir), flag, str(art), "--out", str(out), "--augment", "3")
        assert r.returncode == 0, r.stderr
        assert "blank puzzle identifier" not in r.stderr  # every augmented copy found its adapted row
        subs[kind] = json.loads(out.read_text())
    assert subs["torch"] == subs["ort"]

    # a full-mode adaptation changed the graph's weights: the ladder refuses it, the bundle stays as it was
    full = tmp_path / "full.pt"
    assert run_inprocess("adapt", str(tdir), "--ckpt", str(base), "--out", str(full), "--steps", "2", "--augment",
                         "1", "--batch", "8", "--mode", "full").returncode == 0
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    r = run_inprocess("export", "--update-puzzles", str(bundle), str(full), "--l4-puzzles", "0")
    assert r.returncode == 3 and "L2" in r.stderr
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_solve_adapt_is_one_command(base: Path, tasks: list, tmp_path: Path) -> None:
    tdir = write_tasks(tmp_path / "tasks", tasks[:1])
    out = tmp_path / "sub.json"
    r = run_inprocess("solve", str(tdir), "--ckpt", str(base), "--adapt", "--budget", "3", "--out", str(out),
                      "--augment", "2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sub_adapted.pt").is_file() and json.loads(out.read_text())
    assert "adapted 1 tasks" in r.stderr and "blank puzzle identifier" not in r.stderr


def test_bad_options_are_one_error_line(base: Path, tmp_path: Path) -> None:
    r = run_inprocess("adapt", "x", "--ckpt", str(base), "--out", str(tmp_path / "a.pt"))
    assert r.returncode == 2 and "exactly one of --budget" in r.stderr
    r = run_inprocess("adapt", "x", "--ckpt", str(base), "--out", str(tmp_path / "a.pt"), "--steps", "1",
                      "--mode", "trunk")
    assert r.returncode == 2 and "--mode must be one of embedding, full" in r.stderr
    assert not (tmp_path / "a.pt").exists()


def test_demonstrations_are_augmented_exactly_as_build_data_augments_them(tasks: list, tmp_path: Path) -> None:
    """The same planner and renderer: build-data's train split of these tasks (tests held out) holds the very
    rows and identifier names adapt keeps in memory."""
    tdir = write_tasks(tmp_path / "tasks", tasks)
    r = run_inprocess("build-data", "--source", str(tdir), "--canvas", "10", "--augment", "3", "--seed", "5",
                      "--hold-out-tests", "--out", str(tmp_path / "data"))
    assert r.returncode == 0, r.stderr
    names = json.loads((tmp_path / "data" / "identifiers.json").read_text())[1:]
    order = sorted(tasks, key=lambda t: names.index(t.id))
    demos = build_demos(order, 3, 10, 5, hold_out=False)
    assert demos.names == names
    inputs = np.load(tmp_path / "data" / "train" / "all__inputs.npy").reshape(len(demos.inputs), -1)
    labels = np.load(tmp_path / "data" / "train" / "all__labels.npy").reshape(len(demos.inputs), -1)
    assert np.array_equal(inputs, demos.inputs) and np.array_equal(labels, demos.labels)
