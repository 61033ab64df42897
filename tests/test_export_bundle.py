"""End-to-end `export`: bundle contents, the parity ladder L1-L4 on real ARC tasks, refusals, CLI.

The session bundles (conftest: one per family and ACT mode) ran the full ladder: L3 teacher-forced at
batch 1 and 3 with base tolerance 1e-4 on logits and q-values, L4 free-running on 3 real ARC test
inputs from arc-agi-1/evaluation, each segment within max(1e-4, 8 x PyTorch's own fp32-vs-float64 gap),
so a passing export here is the same proof a user's export gets. Failing cases corrupt the graph after
tracing and must leave no bundle (and no temp folder) behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import BUNDLE_CASES, TINY_IDENTIFIERS, tiny_model
from onnx import numpy_helper

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export import export_model, verify_bundle
from hrm_edge.export.parity import FLOOR_FACTOR, ParityError
from hrm_edge.model.checkpoint import save_checkpoint


@pytest.mark.parametrize("case", BUNDLE_CASES, ids=["-".join(c) for c in BUNDLE_CASES])
def test_bundle_passes_ladder(bundles: dict, case: tuple[str, str, str]) -> None:
    r = bundles[case]
    name, act, halt = case
    files = {p.name for p in r.path.iterdir()}
    assert {"model.onnx", "manifest.json"} <= files
    assert ("puzzle_emb.npy" in files) == (name == "tiny")
    assert not [p for p in r.path.parent.iterdir() if p.name.startswith(".")]  # no staging folders left
    m = json.loads((r.path / "manifest.json").read_text())
    assert m["act"]["mode"] == act and m["precision"] == "fp32" and m["onnx"]["opset"] == 17
    assert m["act"]["halt"] == (None if act == "step" else halt)
    assert m["parity"]["ok"] and set(m["parity"]["levels"]) == {"L1", "L2", "L3", "L4"}
    assert m["targets"]["trt-8.5"]["ok"] and m["targets"]["trt-10"]["ok"]
    assert "MatMul" in m["onnx"]["op_types"] and "LayerNormalization" not in m["onnx"]["op_types"]
    assert m["spec"]["family"] == ("act-v1" if name == "tiny" else "lite")
    l3 = m["parity"]["levels"]["L3"]["details"]
    assert l3["max_abs"]["logits"] <= 1e-4 and l3["max_abs"]["q_halt"] <= 1e-4
    modes = m["act"]["halt_modes"] if act == "step" else [halt]
    assert l3["halting"]["agree"] + l3["halting"]["near_tie"] == l3["halting"]["samples"] == (1 + 3) * len(modes)
    l4 = m["parity"]["levels"]["L4"]["details"]
    assert l4["source"] == "arc-agi-1/evaluation" and len(l4["tasks"]) >= 1
    assert set(l4["modes"]) == set(modes)
    for s in l4["modes"].values():
        assert s["grids_identical"] == s["inputs"] == 3 and s["halting_agree"] == 3
    # every segment the model can run was measured: the fp32 floor is a real measurement (> 0) and the
    # runtime's gap lies within the tolerance it gives
    segs = l4["segments"]
    assert [s["segment"] for s in segs] == list(range(1, m["spec"]["max_steps"] + 1))
    for s in segs:
        assert s["floor"]["logits"] > 0.0 and s["floor"]["carry"] > 0.0
        for kind, gap in s["gap"].items():
            assert gap <= s["tolerance"][kind] == max(1e-4, FLOOR_FACTOR * s["floor"][kind])


def test_step_bundle_ladder_exercises_every_halting_mode(bundles: dict) -> None:
    cases = bundles[("tiny-lite", "step", "max")].manifest["parity"]["levels"]["L3"]["details"]["cases"]
    modes = ["max", "adaptive", "batch-mean"]
    assert [(c["case"], c["halt"]) for c in cases] == [(f"batch {b}", modes) for b in (1, 3)]
    for c in cases:  # a step trace runs every segment; each rule is judged on its q-values
        assert c["segments"] == 4 and set(c["steps"]) == {"max", "adaptive", "batch-mean"}
        assert c["steps"]["max"] == [4] * len(c["steps"]["max"])


def test_puzzle_table_and_index(bundles: dict) -> None:
    m = tiny_model("tiny")
    r = bundles[("tiny", "step", "max")]
    table = np.load(r.path / "puzzle_emb.npy")
    assert table.dtype == np.float16 and table.shape == tuple(m.puzzle_emb.weights.shape)
    np.testing.assert_array_equal(table, m.puzzle_emb.weights.detach().numpy().astype(np.float16))
    index = json.loads((r.path / "puzzle_index.json").read_text())
    assert index["known"] and index["rows"] == {n: i for i, n in enumerate(TINY_IDENTIFIERS)}
    assert r.manifest["puzzle_emb"]["index_known"] is True
    assert all(i["name"] != "puzzle_emb_table" for i in r.manifest["inputs"])  # the table is not in the graph
    graph = onnx.load(str(r.path / "model.onnx")).graph
    assert not any(tuple(t.dims) == table.shape and np.allclose(numpy_helper.to_array(t), table, atol=1e-3)
                   for t in graph.initializer)


def test_static_batch_bundle(tmp_path: Path) -> None:
    r = export_model(tiny_model("tiny-lite"), tmp_path / "b", act="loop", halt="adaptive", batch=2, l4_puzzles=3)
    assert r.manifest["batch"] == 2 and r.report.ok
    assert r.manifest["inputs"][0]["shape"] == [2, 100]


def _bump_weight(model: onnx.ModelProto) -> onnx.ModelProto:
    """Scale the largest weight by 1.01: a 'weight silently changed' corruption (L2 must name it)."""
    t = max(model.graph.initializer, key=lambda t: t.ByteSize())
    arr = numpy_helper.to_array(t) * 1.01
    t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
    return model


def _break_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every weight intact, the computation wrong: Softmax over the wrong axis (L3 must catch it)."""
    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            if n.op_type == "Softmax":
                axis = [a for a in n.attribute if a.name == "axis"]
                if axis:
                    axis[0].i = -2
                else:
                    n.attribute.append(onnx.helper.make_attribute("axis", -2))
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(model.graph)
    return model


def _drop_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """A graph claiming opset 18 (what the dynamo exporter emits): TensorRT 8.5 cannot parse it (L1)."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = 18
    return model


@pytest.mark.parametrize("corrupt, level, act", [(_bump_weight, "L2", "step"), (_break_softmax, "L3", "step"),
                                                  (_break_softmax, "L3", "loop"), (_drop_opset, "L1", "unrolled")])
def test_corrupted_graph_leaves_no_bundle(tmp_path: Path, corrupt, level: str, act: str) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(ParityError) as info:
        export_model(tiny_model("tiny"), out, act=act, _corrupt=corrupt, l3_batches=(2,), l4_puzzles=2)
    rep = info.value.report
    assert rep.failed.level == level and rep.failed.worst_tensor
    assert info.value.exit_code == 3 and level in str(info.value) and "worst tensor" in str(info.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the staging folder is gone too
    if level == "L2":
        assert rep.failed.worst_tensor.endswith("weight")
    if level == "L3":
        assert rep.failed.worst is not None and rep.failed.worst > rep.failed.tolerance


def test_existing_bundle_needs_force_and_a_failed_replacement_keeps_it(bundles: dict, tmp_path: Path) -> None:
    out = tmp_path / "b"
    shutil.copytree(bundles[("tiny-lite", "step", "max")].path, out)
    before = (out / "manifest.json").read_text()
    m = tiny_model("tiny-lite")
    with pytest.raises(HrmEdgeError, match="--force"):
        export_model(m, out, l3_batches=(1,), l4_puzzles=0)
    with pytest.raises(ParityError):
        export_model(m, out, force=True, _corrupt=_bump_weight, l3_batches=(1,), l4_puzzles=0)
    assert (out / "manifest.json").read_text() == before
    (out / "marker").write_text("old")
    export_model(m, out, act="loop", l3_batches=(1,), l4_puzzles=0, force=True)
    assert not (out / "marker").exists() and json.loads((out / "manifest.json").read_text())["act"]["mode"] == "loop"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_cli_verify_and_tampered_bundle(cli_fast, bundles: dict, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    shutil.copytree(bundles[("tiny", "loop", "adaptive")].path, out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["format"] == "hrm-edge" and len(m["source"]["sha256"]) == 64
    v = cli_fast("verify", str(out), "--l4-puzzles", "2")
    assert v.returncode == 0, v.stderr + v.stdout
    assert "L4" in v.stdout
    # tamper with the bundle's graph: verify must fail with exit 3 and name the level
    model = onnx.load(str(out / "model.onnx"))
    onnx.save(_bump_weight(model), str(out / "model.onnx"))
    v = cli_fast("verify", str(out), "--l4-puzzles", "0")  # bytes differ from the manifest: refused before any work
    assert v.returncode == 2 and len(v.stderr.strip().splitlines()) == 1 and "sha256 differs" in v.stderr
    # the same graph with a manifest that vouches for it (a consistent but wrong export): the ladder's L2 catches it
    from hrm_edge.fileio import file_sha256

    m = json.loads((out / "manifest.json").read_text())
    m["onnx"]["sha256"] = file_sha256(out / "model.onnx")
    (out / "manifest.json").write_text(json.dumps(m))
    v = cli_fast("verify", str(out), "--l4-puzzles", "0")
    assert v.returncode == 3 and "L2" in v.stderr


def test_cli_bad_options_exit_2(cli_fast, tiny_ckpt: Path, tmp_path: Path) -> None:
    r = cli_fast("export", str(tiny_ckpt), "--out", str(tmp_path / "b"), "--opset", "99")
    assert r.returncode == 2 and "opset" in r.stderr  # bad input: one line, exit 2
    r = cli_fast("export", str(tiny_ckpt), "--out", str(tmp_path / "b"), "--precision", "fp8")
    assert r.returncode == 2 and "precision" in r.stderr
    assert not (tmp_path / "b").exists()


def test_verify_via_api(bundles: dict, tmp_path: Path) -> None:
    path = bundles[("tiny", "step", "max")].path
    rep = verify_bundle(path, l3_batches=(2,), l4_puzzles=2)
    assert rep.ok and [lv.level for lv in rep.levels] == ["L1", "L2", "L3", "L4"]
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_model("tiny", seed=5))
    with pytest.raises(HrmEdgeError, match="hash"):
        verify_bundle(path, other)


def test_first_users_lite_script_checkpoint(tmp_path: Path) -> None:
    """The product's front door: a train_arc_full.py `hrm_arc_best.pt` dict exports with its own names."""
    import torch

    from hrm_edge.export import export_checkpoint

    m = tiny_model("tiny-lite")
    path = tmp_path / "hrm_arc_best.pt"
    torch.save({"model_state_dict": m.state_dict(), "optimizer_state_dict": {}, "scheduler_state_dict": {},
                "epoch": 3, "global_step": 120, "best_val_loss": 0.42,
                "config": {"num_heads": 2, "seq_len": 100, "max_cycles": 4}}, path)
    r = export_checkpoint(path, act="step", l3_batches=(2,), l4_puzzles=2)
    assert r.path == tmp_path / "hrm_arc_best-step" and r.report.ok
    assert r.manifest["source"]["format"] == "lite-script" and r.manifest["act"]["halt_modes"] == [
        "max", "adaptive", "batch-mean"]
    assert r.manifest["parity"]["levels"]["L4"]["details"]["modes"]["batch-mean"]["grids_identical"] == 2


def test_profiles_parse() -> None:
    from hrm_edge.commands.export import load_profile
    from hrm_edge.export.trt_ops import export_dir

    names = sorted(p.stem for p in export_dir().glob("*.toml"))
    assert {"cpu", "orin-nano-fp16", "xavier-trt85"} <= set(names)
    for n in names:
        prof = load_profile(n)
        assert prof["act"] in ("step", "unrolled", "loop") and prof["precision"] in ("fp32", "fp16", "int8", "int8-qdq")
    with pytest.raises(HrmEdgeError, match="profile"):
        load_profile("no-such-board")
