"""Normalisations exported in the canonical form: ONNX Runtime fuses the lite family's LayerNorms, numbers unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from conftest import random_tokens, tiny_model

from hrm_edge.export.onnx import ExportOptions, export_onnx


def _optimised_ops(model: onnx.ModelProto, tmp: Path) -> Counter:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp / "opt.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(tmp / "opt.onnx")).graph.node)


def test_lite_layernorms_fuse_in_onnxruntime(tmp_path: Path) -> None:
    m = tiny_model("tiny-lite")
    g = export_onnx(m, ExportOptions()).model
    ops = Counter(n.op_type for n in g.graph.node)
    n_norms = 2 * (m.config.H_layers + m.config.L_layers) + 2  # norm1, norm2 per layer + h_norm, l_norm
    assert ops["Pow"] == n_norms  # one square per norm: the exporter's Mul(x, x) is gone
    assert _optimised_ops(g, tmp_path)["LayerNormalization"] == n_norms


def test_rewrite_keeps_the_numbers() -> None:
    """The step graph still matches PyTorch (x / sqrt(v) vs x * (1 / sqrt(v)): one rounding apart)."""
    for name in ("tiny", "tiny-lite"):
        m = tiny_model(name)
        g = export_onnx(m, ExportOptions()).model
        assert not [n for n in g.graph.node if n.op_type == "Mul" and n.input[0] == n.input[1]]
        tokens, pe = random_tokens(m, 2)
        c = np.zeros((2, m.carry_len, m.config.hidden_size), np.float32)
        feed = {"tokens": tokens, "z_H": c, "z_L": c, "halted": np.ones(2, bool)}
        if pe is not None:
            feed["puzzle_emb"] = pe
        got = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
        with torch.inference_mode():
            want = m.step(*(torch.from_numpy(feed[k]) if feed.get(k) is not None else None
                            for k in ("tokens", "puzzle_emb", "z_H", "z_L", "halted")))[0].numpy()
        assert np.abs(got - want).max() < 1e-4
