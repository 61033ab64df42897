"""OrtRunner: a bundle runs with no PyTorch-side guessing, through the shared ACT driver.

Tolerance: a step bundle driven by the host loop vs the PyTorch runner, same halting rule: identical
halting steps and max|Δ| logits <= 1e-3 after up to 4 segments (segment-level 1e-4 is gated at export).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_tokens, tiny_model

from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.runtime.onnxruntime import OrtRunner, read_manifest, resolve_providers
from hrm_edge.runtime.torch import TorchRunner

ACT_TOL = 1e-3


@pytest.fixture(scope="module")
def tiny_bundles(bundles: dict) -> dict[str, tuple[object, Path]]:
    """The session's step bundles of tiny / tiny-lite (tiny with identifiers <blank>, p1..p15) and tiny's adaptive
    loop bundle, each with the model it was exported from (same weights as the session checkpoints)."""
    return {"tiny": (tiny_model("tiny"), bundles[("tiny", "step", "max")].path),
            "tiny-lite": (tiny_model("tiny-lite"), bundles[("tiny-lite", "step", "max")].path),
            "tiny-loop": (tiny_model("tiny"), bundles[("tiny", "loop", "adaptive")].path)}


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
@pytest.mark.parametrize("batch", [1, 5])
def test_step_bundle_matches_torch_runner(tiny_bundles: dict, name: str, batch: int) -> None:
    model, path = tiny_bundles[name]
    tokens, pe = random_tokens(model, batch, seed=batch)
    with OrtRunner.from_bundle(path) as o, TorchRunner.from_model(model) as t:
        for halt in model.halt_modes:
            ro, rt = o.run_act(tokens, pe, halt=halt), t.run_act(tokens, pe, halt=halt)
            np.testing.assert_array_equal(ro.steps, rt.steps)
            assert np.abs(ro.logits - rt.logits).max() <= ACT_TOL
        assert o.inference_times and o.latency_summary()["calls"] == len(o.inference_times)


def test_loop_bundle_runs_baked_halt_only(tiny_bundles: dict) -> None:
    model, path = tiny_bundles["tiny-loop"]
    tokens, pe = random_tokens(model, 4)
    with OrtRunner.from_bundle(path) as o, TorchRunner.from_model(model) as t:
        assert o.act_mode == "loop" and o.baked_halt == "adaptive"
        assert set(o.input_metadata()) == {"tokens", "puzzle_emb"}
        ro = o.run_act(tokens, pe, halt="adaptive")
        np.testing.assert_array_equal(ro.steps, t.run_act(tokens, pe, halt="adaptive").steps)
        with pytest.raises(HrmEdgeError, match="re-export"):
            o.run_act(tokens, pe, halt="max")


def test_metadata_from_manifest_and_checked_feed(tiny_bundles: dict) -> None:
    model, path = tiny_bundles["tiny"]
    runner = OrtRunner.from_bundle(path)
    meta = runner.input_metadata()
    assert meta["tokens"].dtype == np.int32 and meta["halted"].dtype == np.bool_
    assert meta["z_H"].shape[1:] == (model.carry_len, model.config.hidden_size)
    assert runner.spec.family == "act-v1" and runner.spec.max_steps == model.max_steps
    tokens, pe = random_tokens(model, 2)
    with pytest.raises(HrmEdgeError, match="not activated|outside"):
        runner.run_act(tokens, pe)
    with runner:
        carry = np.zeros((2, model.carry_len, 32), np.float32)
        feed = {"tokens": tokens.astype(np.int64), "puzzle_emb": pe, "z_H": carry, "z_L": carry,
                "halted": np.ones(2, bool)}
        with pytest.raises(HrmEdgeError, match="dtype"):
            runner.infer(feed)
        feed["tokens"] = tokens
        out = runner.infer(feed)
        assert set(out) == {"logits", "q_halt", "q_continue", "z_H_next", "z_L_next"}
        assert runner.active_providers[0] == "CPUExecutionProvider"


def test_puzzle_table_rows_and_index(tiny_bundles: dict) -> None:
    model, path = tiny_bundles["tiny"]
    r = OrtRunner.from_bundle(path)
    assert r.num_puzzle_identifiers == 16 and r.identifiers["p5"] == 5
    np.testing.assert_array_equal(r.puzzle_ids(["p5", "unknown"]), [5, 0])
    with pytest.raises(HrmEdgeError):
        r.puzzle_ids(["unknown"], missing="error")
    rows = r.puzzle_vectors(np.array([3, 5]))
    want = model.puzzle_emb.weights.detach().numpy()[[3, 5]].astype(np.float16).astype(np.float32)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, want)
    with pytest.raises(HrmEdgeError, match="out of range"):
        r.puzzle_vectors(np.array([16]))
    lite = OrtRunner.from_bundle(tiny_bundles["tiny-lite"][1])
    assert lite.puzzle_vectors(np.array([0])) is None and lite.num_puzzle_identifiers == 0


def test_providers() -> None:
    assert resolve_providers(None) == ["CPUExecutionProvider"]
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(MissingDependencyError, match="CUDAExecutionProvider"):
            resolve_providers("cuda")


def test_bad_bundles(tmp_path: Path, tiny_bundles: dict) -> None:
    with pytest.raises(HrmEdgeError, match="no manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(HrmEdgeError, match="malformed"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HrmEdgeError, match="not an hrm-edge-bundle"):
        read_manifest(tmp_path)
    good = json.loads((tiny_bundles["tiny-lite"][1] / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(good))
    runner = OrtRunner.from_bundle(tmp_path)  # manifest fine, model.onnx missing
    with pytest.raises(HrmEdgeError, match="missing"):
        runner.activate()


def test_runs_without_torch(tiny_bundles: dict) -> None:
    """A user's machine without PyTorch: the runner imports and runs with torch made unimportable."""
    _, path = tiny_bundles["tiny-lite"]
    code = f"""
import sys, numpy as np
sys.modules['torch'] = None  # any `import torch` now fails
from hrm_edge.runtime.onnxruntime import OrtRunner
with OrtRunner.from_bundle({str(path)!r}) as r:
    res = r.run_act(np.zeros((2, r.spec.seq_len), np.int32), halt='batch-mean')
print(res.steps.tolist(), res.logits.shape)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "(2, 100, 12)" in p.stdout


def test_model_file_swapped_from_another_export_is_refused(tmp_path: Path, tiny_bundles: dict) -> None:
    """An ONNX file from another model dropped into a bundle fails on the manifest's hash, in one line."""
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_bundles["tiny"][1], mixed)
    shutil.copy(tiny_bundles["tiny-loop"][1] / "model.onnx", mixed / "model.onnx")
    runner = OrtRunner.from_bundle(mixed)
    with pytest.raises(HrmEdgeError, match="does not match its manifest"):
        runner.activate()


def test_step_outputs_have_static_dims_except_batch(tiny_bundles: dict) -> None:
    import onnx

    m, path = tiny_bundles["tiny"]
    spec = OrtRunner.from_bundle(path).spec
    graph = onnx.load(str(path / "model.onnx"), load_external_data=False).graph
    dims = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert dims["logits"] == ["batch", spec.seq_len, spec.vocab_size]
    assert dims["z_H_next"] == dims["z_L_next"] == ["batch", spec.carry_len, spec.hidden_size]
    logits = [o["shape"] for o in read_manifest(path)["outputs"] if o["name"] == "logits"]
    assert logits == [["batch", spec.seq_len, 12]]
