"""Graph-level export tests: the three ACT modes against the PyTorch reference, weights stored once.

Tolerances (stated): one segment from identical inputs, fp32, max|Δ| <= 1e-4 on logits / q-values and
1e-3 on the carry; a free-running multi-segment ACT run <= 1e-3 (rounding is amplified across
segments; the segment-level 1e-4 is what the parity ladder gates on), with identical halting steps.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import random_tokens, tiny_model
from onnx import numpy_helper

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export.onnx import ExportOptions, export_onnx, op_counts
from hrm_edge.model.act import halt_mask
from hrm_edge.runtime.torch import TorchRunner

STEP_TOL, CARRY_TOL, ACT_TOL = 1e-4, 1e-3, 1e-3


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def init_bytes(model: onnx.ModelProto) -> int:
    return sum(t.ByteSize() for t in model.graph.initializer)


@pytest.fixture(scope="module", params=["tiny", "tiny-lite"])
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return tiny_model(request.param)


@pytest.fixture(scope="module")
def step_graph(model: torch.nn.Module) -> onnx.ModelProto:
    return export_onnx(model, ExportOptions(act="step")).model


@pytest.mark.parametrize("batch", [1, 3])
def test_step_graph_equals_model_step(model: torch.nn.Module, step_graph: onnx.ModelProto, batch: int) -> None:
    tokens, pe = random_tokens(model, batch, seed=batch)
    rng = np.random.default_rng(batch)
    shape = (batch, model.carry_len, model.config.hidden_size)
    z_H, z_L = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    halted = np.arange(batch) % 2 == 0  # mixed: reset some rows, keep the others' carry
    feed = {"tokens": tokens, "z_H": z_H, "z_L": z_L, "halted": halted}
    if pe is not None:
        feed["puzzle_emb"] = pe
    got = run(session(step_graph), feed)
    with torch.no_grad():
        ref = model.step(*(torch.from_numpy(feed[k]) if k in feed else None
                           for k in ("tokens", "puzzle_emb", "z_H", "z_L", "halted")))
    for name, r in zip(("logits", "q_halt", "q_continue", "z_H_next", "z_L_next"), ref):
        tol = CARRY_TOL if name.startswith("z_") else STEP_TOL
        assert np.abs(got[name] - r.numpy()).max() <= tol, name


@pytest.fixture(scope="module")
def graphs(model: torch.nn.Module) -> dict[tuple[str, str], ort.InferenceSession]:
    return {(act, halt): session(export_onnx(model, ExportOptions(act=act, halt=halt)).model)
            for act in ("unrolled", "loop") for halt in ("max", "adaptive")}


@pytest.mark.parametrize("act", ["unrolled", "loop"])
@pytest.mark.parametrize("halt", ["max", "adaptive"])
@pytest.mark.parametrize("batch", [1, 4])
def test_graph_act_equals_host_driver(model: torch.nn.Module, graphs: dict, act: str, halt: str, batch: int) -> None:
    tokens, pe = random_tokens(model, batch, seed=10 + batch)
    feed = {"tokens": tokens} | ({"puzzle_emb": pe} if pe is not None else {})
    got = run(graphs[(act, halt)], feed)
    with TorchRunner.from_model(model) as r:
        ref = r.run_act(tokens, pe, halt=halt)
    np.testing.assert_array_equal(got["steps"], ref.steps)
    assert got["steps"].dtype == np.int32
    assert np.abs(got["logits"] - ref.logits).max() <= ACT_TOL
    assert np.abs(got["q_halt"] - ref.q_halt).max() <= ACT_TOL
    assert np.abs(got["q_continue"] - ref.q_continue).max() <= ACT_TOL


def test_lite_batch_mean_in_graph_matches_the_script_rule() -> None:
    """The whole batch stops together when mean(sigmoid(q_halt)) > 0.9 (train_arc_full.py), in graph and host."""
    m = tiny_model("tiny-lite")
    tokens, _ = random_tokens(m, 6, seed=3)
    with TorchRunner.from_model(m) as r:
        host = r.run_act(tokens, halt="batch-mean")
        adaptive = r.run_act(tokens, halt="adaptive")
    assert len(set(host.steps.tolist())) == 1  # one decision for the batch
    assert not np.array_equal(host.steps, adaptive.steps)  # and it is not the per-sample rule
    for act in ("unrolled", "loop"):
        got = run(session(export_onnx(m, ExportOptions(act=act, halt="batch-mean")).model), {"tokens": tokens})
        np.testing.assert_array_equal(got["steps"], host.steps)


def test_batch_mean_refused_for_act_v1() -> None:
    with pytest.raises(HrmEdgeError, match="batch-mean"):
        export_onnx(tiny_model("tiny"), ExportOptions(act="loop", halt="batch-mean"))


def test_loop_exits_early_when_all_halted() -> None:
    """Loop mode: an adaptive run where every sample halts at segment 1 must not run the other segments."""
    m = tiny_model("tiny")
    with torch.no_grad():
        m.q_head.bias[0] = 100.0  # q_halt >> q_continue: halt after the first segment
    g = export_onnx(m, ExportOptions(act="loop", halt="adaptive")).model
    loop = next(n for n in g.graph.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    # expose the iteration counter as a scan output to count iterations actually run
    body.node.append(onnx.helper.make_node("Identity", ["seg/n"], ["seg/scan_n"]))
    body.output.append(onnx.helper.make_tensor_value_info("seg/scan_n", onnx.TensorProto.INT64, None))
    loop.output.append("scan_n")
    g.graph.output.append(onnx.helper.make_tensor_value_info("scan_n", onnx.TensorProto.INT64, None))
    tokens, pe = random_tokens(m, 3)
    got = run(session(g), {"tokens": tokens, "puzzle_emb": pe})
    np.testing.assert_array_equal(got["steps"], [1, 1, 1])
    np.testing.assert_array_equal(got["scan_n"], [1])


def test_weights_stored_once() -> None:
    """Unrolled / loop graphs hold the same initializer bytes as the step graph (within 10%)."""
    for name in ("tiny", "tiny-lite"):
        m = tiny_model(name)
        step = init_bytes(export_onnx(m, ExportOptions(act="step")).model)
        for act in ("unrolled", "loop"):
            other = init_bytes(export_onnx(m, ExportOptions(act=act)).model)
            assert other <= 1.10 * step, (name, act, other, step)


def test_rope_tables_deduplicated() -> None:
    """The TorchScript exporter folds a RoPE table copy per attention call; only one of each may remain."""
    g = export_onnx(tiny_model("tiny"), ExportOptions(act="step")).model
    positions = 100 + 1
    rope = [t for t in g.graph.initializer if positions in t.dims]
    # exactly one cos and one sin table, [positions, 1, head_dim]; a per-call copy would add more
    assert [list(t.dims) for t in rope] == [[positions, 1, 16]] * 2, [(t.name, list(t.dims)) for t in rope]
    cos, sin = (numpy_helper.to_array(t) for t in rope)
    assert not np.allclose(cos, sin)


def test_io_names_dtypes_and_ops() -> None:
    m = tiny_model("tiny")
    step = export_onnx(m, ExportOptions(act="step")).model
    assert [i.name for i in step.graph.input] == ["tokens", "puzzle_emb", "z_H", "z_L", "halted"]
    assert [o.name for o in step.graph.output] == ["logits", "q_halt", "q_continue", "z_H_next", "z_L_next"]
    types = {i.name: i.type.tensor_type.elem_type for i in step.graph.input}
    assert types["tokens"] == onnx.TensorProto.INT32 and types["halted"] == onnx.TensorProto.BOOL
    loop = export_onnx(m, ExportOptions(act="loop")).model
    assert [i.name for i in loop.graph.input] == ["tokens", "puzzle_emb"]
    assert [o.name for o in loop.graph.output] == ["logits", "q_halt", "q_continue", "steps"]
    ops = op_counts(loop)
    assert ops["Loop"] == 1 and "LayerNormalization" not in ops and "Attention" not in ops
    assert {i.version for i in loop.opset_import if i.domain in ("", "ai.onnx")} == {17}


def test_lite_has_no_puzzle_input_and_no_layernorm() -> None:
    g = export_onnx(tiny_model("tiny-lite"), ExportOptions(act="unrolled")).model
    assert [i.name for i in g.graph.input] == ["tokens"]
    assert "LayerNormalization" not in op_counts(g)


def test_static_batch() -> None:
    m = tiny_model("tiny-lite")
    g = export_onnx(m, ExportOptions(act="loop", batch=2)).model
    dims = [d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, m.config.seq_len]
    tokens, _ = random_tokens(m, 2)
    assert run(session(g), {"tokens": tokens})["logits"].shape == (2, m.config.seq_len, 12)


def test_segments_option() -> None:
    m = tiny_model("tiny")
    g = export_onnx(m, ExportOptions(act="unrolled", segments=2))
    assert g.spec.max_steps == 2
    tokens, pe = random_tokens(m, 2)
    assert run(session(g.model), {"tokens": tokens, "puzzle_emb": pe})["steps"].tolist() == [2, 2]


@pytest.mark.parametrize("bad, says", [(ExportOptions(act="scan"), "--act must be one of"),
                                       (ExportOptions(opset=12), "--opset 12 is outside"),
                                       (ExportOptions(segments=0), "--segments must be >= 1"),
                                       (ExportOptions(batch=0), "--batch must be"),
                                       (ExportOptions(act="loop", halt="sometimes"), "sometimes")])
def test_bad_options(bad: ExportOptions, says: str) -> None:
    with pytest.raises(HrmEdgeError, match=re.escape(says)):
        export_onnx(tiny_model("tiny-lite"), bad)


def test_traced_halt_mask_equals_numpy_rule() -> None:
    """act.halt_mask with a tensor segment counter (the in-graph rule) == the host rule, every mode and step."""
    rng = np.random.default_rng(0)
    for mode, thr in (("max", None), ("adaptive", None), ("batch-mean", 0.9)):
        for n in range(1, 6):
            qh = rng.normal(size=7).astype(np.float32) + (2.2 if mode == "batch-mean" else 0.0)
            qc = rng.normal(size=7).astype(np.float32)
            want = halt_mask(mode, n, qh, qc, 5, 2, thr)
            got = halt_mask(mode, torch.tensor(n), torch.from_numpy(qh), torch.from_numpy(qc), 5, 2, thr)
            np.testing.assert_array_equal(got.numpy(), want)
