"""`hrm-edge demo` and its shipped model: the asset loads and matches its identifiers, packaging refuses what
it must, and the demo itself runs (reduced: the first two tasks) with torch and ONNX Runtime fp32 agreeing.

The reduced demo is the real command on the real shipped model: export with the full parity ladder, then
`compare` over PyTorch, ONNX Runtime fp32 and int8. Timings are printed by it but never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_inprocess

from hrm_edge.demo import asset as demo_asset
from hrm_edge.demo.asset import (
    MAX_CHECKPOINT_BYTES,
    fitting_tasks,
    load_asset,
    package_asset,
    select_tasks,
    task_ids_from_identifiers,
)
from hrm_edge.demo.run import INT8_PRECISION
from hrm_edge.errors import HrmEdgeError


# -------------------------------------------------------------------------------------------- shipped asset
def test_shipped_asset_loads_and_its_identifiers_match_the_checkpoint() -> None:
    from hrm_edge.model.checkpoint import load_checkpoint

    asset = load_asset()
    raw = torch.load(asset.checkpoint, map_location="cpu", weights_only=False)
    assert set(raw) == {"format", "hrm_edge_version", "config", "model", "train_state"}
    assert not {"optimizer", "carry", "sampler", "rng"} & set(raw["train_state"])  # weights only
    assert asset.checkpoint.stat().st_size <= MAX_CHECKPOINT_BYTES
    ck = load_checkpoint(asset.checkpoint)
    names = json.loads(asset.identifiers.read_text())
    assert names[0] == "<blank>"
    assert ck.config.num_puzzle_identifiers == len(names) == ck.model.puzzle_emb.weights.shape[0]
    assert task_ids_from_identifiers(names) == asset.task_ids
    assert ck.config.canvas == asset.selection["canvas"]
    assert asset.manifest["checkpoint"]["sha256"] == ck.sha256


def test_shipped_selection_is_the_rule_re_applied() -> None:
    asset = load_asset()
    tasks = select_tasks(asset)
    canvas = asset.selection["canvas"]
    every = fitting_tasks(asset.selection["sources"], 30)  # all tasks, then the rule by hand
    by_hand = [t.id for t in every if all(max(g.shape) <= canvas for g in t.grids())]
    assert [t.id for t in tasks] == by_hand == asset.task_ids
    assert sum(len(t.test) for t in tasks) == asset.selection["test_inputs"]
    assert [t.id for t in select_tasks(asset, 3)] == by_hand[:3]


# -------------------------------------------------------------------------------------------- packaging
def _dataset(tmp: Path, canvas: int = 3) -> Path:
    from hrm_edge.data.build import BuildConfig, build_dataset

    out = tmp / "data"
    build_dataset(BuildConfig(sources=["arc-agi-1"], out=out, augment=1, seed=1, canvas=canvas, translate=False,
                              workers=1, hold_out_tests=True, skip_larger=True, validation=True))
    return out


def _checkpoint(path: Path, data: Path, fingerprint: str | None = None,
                chosen_on: str = "val/exact_accuracy") -> Path:
    from hrm_edge.config import preset
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import save_checkpoint
    from hrm_edge.train.trainer import data_fingerprint

    cfg = preset("tiny")
    cfg.canvas = 3
    cfg.num_puzzle_identifiers = len(json.loads((data / "identifiers.json").read_text()))
    model = build_model(cfg, seed=0)
    return save_checkpoint(path, model, train_state={"step": 7, "optimizer": {"state": {}, "lr": 1.0},
                                                     "data_fingerprint": fingerprint or data_fingerprint(data),
                                                     "best_metric_name": chosen_on})


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pkg")
    data = _dataset(d)
    return {"dir": d, "data": data, "ckpt": _checkpoint(d / "run" / "best.pt", data)}


def test_package_round_trip(small_run: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "asset"
    m = package_asset(small_run["ckpt"], small_run["data"], out)
    asset = load_asset(out)
    assert asset.step == m["checkpoint"]["step"] == 7
    want = [t.id for t in fitting_tasks(["arc-agi-1"], 3)]
    assert asset.task_ids == want and [t.id for t in select_tasks(asset)] == want
    saved = torch.load(asset.checkpoint, map_location="cpu", weights_only=False)
    assert "optimizer" not in saved["train_state"]  # the source had one; the asset must not
    src = torch.load(small_run["ckpt"], map_location="cpu", weights_only=False)
    for k, v in src["model"].items():
        assert torch.equal(saved["model"][k], v), k
    assert json.loads(asset.identifiers.read_text()) == json.loads((small_run["data"] / "identifiers.json").read_text())


def test_package_refuses_another_dataset(small_run: dict[str, Path], tmp_path: Path) -> None:
    other = _checkpoint(tmp_path / "other.pt", small_run["data"], fingerprint="0" * 64)
    with pytest.raises(HrmEdgeError, match="trained on another dataset"):
        package_asset(other, small_run["data"], tmp_path / "asset")
    assert not (tmp_path / "asset").exists()


def _dataset_with(src: Path, dst: Path, **record: object) -> Path:
    """A copy of the dataset `src` whose build.json says otherwise about `record`'s keys."""
    import shutil

    shutil.copytree(src, dst)
    rec = json.loads((dst / "build.json").read_text())
    (dst / "build.json").write_text(json.dumps({**rec, **record}))
    return dst


def test_package_refuses_a_dataset_without_held_out_tests(small_run: dict[str, Path], tmp_path: Path) -> None:
    data = _dataset_with(small_run["data"], tmp_path / "data", hold_out_tests=False)
    with pytest.raises(HrmEdgeError, match="--hold-out-tests"):
        package_asset(small_run["ckpt"], data, tmp_path / "asset")
    assert not (tmp_path / "asset").exists()


def test_package_refuses_a_model_chosen_on_the_test_inputs(small_run: dict[str, Path], tmp_path: Path) -> None:
    """Issue 21, item 8: the demo reports the test inputs once, so they must not have chosen the checkpoint."""
    on_test = _checkpoint(tmp_path / "best.pt", small_run["data"], chosen_on="eval/exact_accuracy")
    with pytest.raises(HrmEdgeError, match="chosen on eval/exact_accuracy, not on the validation split"):
        package_asset(on_test, small_run["data"], tmp_path / "asset")
    data = _dataset_with(small_run["data"], tmp_path / "data", validation=False)
    with pytest.raises(HrmEdgeError, match="--validation"):
        package_asset(small_run["ckpt"], data, tmp_path / "asset")
    assert not (tmp_path / "asset").exists()
    m = package_asset(small_run["ckpt"], small_run["data"], tmp_path / "asset")
    assert m["dataset"]["validation"] is True and m["checkpoint"]["best_metric_name"] == "val/exact_accuracy"


def test_package_refuses_an_oversized_checkpoint(small_run: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_asset, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(HrmEdgeError, match="over the"):
        package_asset(small_run["ckpt"], small_run["data"], tmp_path / "asset")
    assert not (tmp_path / "asset").exists() and list(tmp_path.iterdir()) == []  # the staged folder is gone too


# -------------------------------------------------------------------------------------------- the command
def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    r = run_inprocess("demo", "--out", str(tmp_path), "--tasks", "1")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not written by hrm-edge demo" in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_refuses_a_file_as_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = run_inprocess("demo", "--out", str(f))
    assert r.returncode == 2 and "existing file" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_demo_reduced_run(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = run_inprocess("demo", "--out", str(out), "--tasks", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    asset = load_asset()
    first2 = asset.task_ids[:2]
    # the tasks written for the Jetson commands are the first two of the recorded order
    assert list(json.loads((out / "tasks.json").read_text())) == first2
    rep = json.loads((out / "compare.json").read_text())
    labels = [row["label"] for row in rep["rows"]]
    assert labels == ["pytorch model.pt (cpu)", "onnxruntime model-step (CPU)",
                      f"onnxruntime model-step-{INT8_PRECISION} (CPU)"]
    assert all(row["status"] == "ok" for row in rep["rows"]), rep["rows"]
    n_test = sum(len(t.test) for t in select_tasks(asset, 2))
    assert rep["test_inputs"] == n_test and rep["puzzles"] == n_test * rep["options"]["augment"]
    fp32 = rep["rows"][1]
    assert fp32["grid_match_pct"] == 100.0 and fp32["answer_match_pct"] == 100.0  # fp32 ORT answers like torch
    assert fp32["pass2"] == rep["rows"][0]["pass2"]
    for label in labels:
        assert label in r.stdout  # the table is printed
    # the floor beside the runtimes (issue 21, item 9) and each runtime's submission (item 11)
    from hrm_edge.solve.baseline import LABEL, frequent_output_answers
    from hrm_edge.solve.submission import score_submission, validate_submission

    picked = select_tasks(asset, 2)
    floor = sum(any(a.correct[:2]) for a in frequent_output_answers(picked))
    assert rep["baseline"]["label"] == LABEL and LABEL in r.stdout
    assert f"{floor} of {n_test} held-out test inputs" in r.stdout.split("baseline (no model")[1]
    subs = {name: json.loads((out / f"submission_{name}.json").read_text())
            for name in ("torch", "onnxruntime_fp32", f"onnxruntime_{INT8_PRECISION}", "baseline")}
    for name, sub in subs.items():
        assert validate_submission(sub, picked) == [], name
    for name, row in zip(subs, rep["rows"] + [rep["baseline"]]):  # each file scores what its row reports
        assert score_submission(subs[name], picked)["pass@2"] == pytest.approx(row["pass2"], abs=1e-12), name
    assert subs["onnxruntime_fp32"] == subs["torch"]  # fp32 ORT answers like torch (answer_match 100%)
    said = r.stdout.split("submissions (ARC Prize format): ")[1].split("\n")[0]  # the files named as what they are
    assert said.split(", ") == [str(out / f"submission_{name}.json") for name in subs], said
    assert json.loads((out / "demo.json").read_text())["submissions"] == {
        name: str(out / f"submission_{name}.json") for name in subs}
    for bundle in ("model-step", f"model-step-{INT8_PRECISION}"):
        manifest = json.loads((out / bundle / "manifest.json").read_text())
        levels = manifest["parity"]["levels"]
        assert manifest["parity"]["ok"] and list(levels) == ["L1", "L2", "L3", "L4"]
        assert all(lv["ok"] for lv in levels.values())
    pngs = sorted(p.relative_to(out / "render").as_posix() for p in (out / "render").rglob("*.png"))
    record = json.loads((out / "demo.json").read_text())
    assert record["status"] == "done" and record["tasks"] == first2
    tasks2 = select_tasks(asset, 2)
    if all(len(t.test) == 1 for t in tasks2):  # then pass@2 (compare's own scoring) counts the solved tasks
        assert round(rep["rows"][0]["pass2"] * len(tasks2)) == len(record["solved"]) == record["test_inputs_solved"]
    assert (f"solved (both attempts counted, PyTorch): {record['test_inputs_solved']} of "
            f"{sum(len(t.test) for t in tasks2)} held-out test inputs; {len(record['solved'])} of 2 tasks") in r.stdout
    assert pngs == sorted([f"solved/{t}.png" for t in record["solved"]]
                          + [f"failed/{t}.png" for t in first2 if t not in record["solved"]])
    # the Jetson lines name files this run wrote
    assert f"hrm-edge build-engine {out / 'model-step'} --fp16" in r.stdout
    if INT8_PRECISION == "int8-qdq":  # the Q/DQ bundle ORT ran is the one TensorRT builds explicitly quantized
        assert f"hrm-edge build-engine {out / 'model-step-int8-qdq'} --int8" in r.stdout
        assert (out / "calib.json").is_file()
    assert f"hrm-edge solve {out / 'tasks.json'} --engine {out / 'model-step' / 'model.engine'}" in r.stdout
    # a second run into the same folder is allowed (it is a demo folder) and replaces the renderings
    r2 = run_inprocess("demo", "--out", str(out), "--tasks", "1", "--threads", "1")
    assert r2.returncode == 0, r2.stderr
    assert len(list((out / "render").rglob("*.png"))) == 1
