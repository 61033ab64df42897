"""Checkpoint round trips and the foreign formats users bring.

The lite test writes an independent re-statement of train_arc_full.py's `HierarchicalReasoningModule`
(torch's own nn.TransformerEncoderLayer, nn.LayerNorm, the script's forward with its batch-mean break)
and checks hrm-edge's lite family against it: atol 1e-5 on logits (torch's fused encoder kernels and
our basic-op layers round differently in the last bits).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from hrm_edge.config import preset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.runtime.torch import TorchRunner


class ScriptModel(nn.Module):
    """train_arc_full.py's model as its author wrote it (module names are the checkpoint's keys)."""

    def __init__(self, vocab: int, d: int, heads: int, n_h: int, n_l: int, ff: int, max_cycles: int) -> None:
        super().__init__()
        self.max_cycles = max_cycles
        self.token_embedding = nn.Embedding(vocab, d)
        pe = torch.zeros(5000, d)
        pos = torch.arange(5000, dtype=torch.float).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.pos_encoding = nn.Module()
        self.pos_encoding.register_buffer("pe", pe)
        layer = lambda: nn.TransformerEncoderLayer(d, heads, ff, dropout=0.1, batch_first=True)  # noqa: E731
        self.h_layers = nn.ModuleList([layer() for _ in range(n_h)])
        self.l_layers = nn.ModuleList([layer() for _ in range(n_l)])
        self.h_to_l, self.l_to_h = nn.Linear(d, d), nn.Linear(d, d)
        self.halt_predictor = nn.Linear(2 * d, 1)
        self.output = nn.Linear(d, vocab)
        self.h_norm, self.l_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        e = self.dropout(self.token_embedding(x) + self.pos_encoding.pe[: x.size(1)])
        h, l = e.clone(), e.clone()
        probs = []
        for cycle in range(self.max_cycles):
            for m in self.h_layers:
                h = m(h)
            h = self.h_norm(h)
            l = l + self.h_to_l(h)
            for m in self.l_layers:
                l = m(l)
            l = self.l_norm(l)
            h = h + self.l_to_h(l)
            p = torch.sigmoid(self.halt_predictor(torch.cat([h.mean(dim=1), l.mean(dim=1)], dim=-1)))
            probs.append(p)
            if cycle > 0 and p.mean() > 0.9:
                break
        return self.output(l), probs


def _script_checkpoint(tmp_path, model: ScriptModel, with_config: bool) -> str:
    path = tmp_path / "hrm_arc_best.pt"
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    ck = {"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
          "scheduler_state_dict": sched.state_dict(), "epoch": 3, "global_step": 1234, "best_val_loss": 0.4321}
    if with_config:
        ck["config"] = {"batch_size": 20, "seq_len": 900, "vocab_size": 12, "hidden_size": 32, "num_heads": 4,
                        "num_h_layers": 2, "num_l_layers": 1, "dropout": 0.1, "max_cycles": 5}
    torch.save(ck, path)
    return str(path)


@pytest.mark.parametrize("halt_bias", [-5.0, 0.0, 5.0])
def test_lite_script_checkpoint_loads_and_matches_the_script_forward(tmp_path, rng, halt_bias: float) -> None:
    torch.manual_seed(0)
    ref = ScriptModel(12, 32, 4, 2, 1, 64, max_cycles=5).eval()
    with torch.no_grad():
        ref.halt_predictor.bias.fill_(halt_bias)
    path = _script_checkpoint(tmp_path, ref, with_config=True)
    ck = load_checkpoint(path)
    assert ck.source_format == "lite-script"
    assert ck.config.num_heads == 4 and ck.config.max_cycles == 5 and ck.config.H_layers == 2
    assert ck.meta["step"] == 1234 and ck.meta["best_metric"] == pytest.approx(0.4321)
    toks = rng.integers(0, 12, size=(4, 900)).astype(np.int32)
    with torch.no_grad():
        want, probs = ref(torch.from_numpy(toks).long())
    with TorchRunner.from_model(ck.model) as r:
        got = r.run_act(toks, halt="batch-mean")
    assert (got.steps == len(probs)).all(), (got.steps, len(probs))
    np.testing.assert_allclose(got.logits, want.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(1 / (1 + np.exp(-got.q_halt)), probs[-1].squeeze(-1).numpy(), atol=1e-5)


def test_lite_checkpoint_without_config_uses_info_json_or_shapes(tmp_path, rng) -> None:
    torch.manual_seed(1)
    ref = ScriptModel(12, 32, 8, 1, 2, 48, max_cycles=8).eval()
    path = _script_checkpoint(tmp_path, ref, with_config=False)
    ck = load_checkpoint(path)
    assert (ck.config.H_layers, ck.config.L_layers, ck.config.ff_dim, ck.config.num_heads) == (1, 2, 48, 8)
    assert any("num_heads" in n for n in ck.meta["notes"])
    (tmp_path / "hrm_arc_best_info.json").write_text(json.dumps({"config": {"num_heads": 8, "max_cycles": 6}}))
    ck2 = load_checkpoint(path)
    assert ck2.config.max_cycles == 6 and not ck2.meta["notes"]


def test_reference_layout_state_dict_loads_with_identical_outputs(tmp_path, rng) -> None:
    cfg = preset("tiny")
    cfg.H_cycles, cfg.L_cycles, cfg.halt_max_steps = 3, 1, 3
    native = build_model(cfg, seed=5).eval()
    with torch.no_grad():
        native.puzzle_emb.weights.normal_(0, 0.5)
    sd = {f"_orig_mod.model.inner.{k}": v.clone() for k, v in native.state_dict().items()}
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(sd, folder / "step_4200")
    arch = {"name": "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1", "H_cycles": 3, "L_cycles": 1,
            "H_layers": 1, "L_layers": 1, "hidden_size": 32, "num_heads": 2, "expansion": 2,
            "puzzle_emb_ndim": 32, "pos_encodings": "rope", "halt_max_steps": 3, "halt_exploration_prob": 0.1}
    (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch, "lr": 1e-4}))
    ck = load_checkpoint(folder / "step_4200")
    assert ck.source_format == "hrm-reference" and ck.meta["step"] == 4200
    assert (ck.config.H_cycles, ck.config.L_cycles, ck.config.halt_max_steps) == (3, 1, 3)
    toks = rng.integers(0, 12, size=(3, 900)).astype(np.int32)
    ids = np.array([0, 5, 9])
    outs = []
    for m in (native, ck.model):
        with TorchRunner.from_model(m) as r:
            outs.append(r.run_act(toks, r.puzzle_vectors(ids)))
    np.testing.assert_array_equal(outs[0].logits, outs[1].logits)
    np.testing.assert_array_equal(outs[0].q_halt, outs[1].q_halt)


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_native_save_load_is_bit_identical(tmp_path, rng, name: str) -> None:
    model = build_model(preset(name), seed=11).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, train_state={"step": 7, "best_metric": 0.5})
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["step"] == 7 and sidecar["config"]["family"] == model.config.family
    assert not list(tmp_path.glob(".*tmp")), "temp files left behind"
    ck = load_checkpoint(path)
    assert ck.source_format == "hrm-edge" and ck.meta["step"] == 7
    toks = rng.integers(0, 12, size=(2, 900)).astype(np.int32)
    outs = []
    for m in (model, ck.model):
        with TorchRunner.from_model(m) as r:
            outs.append(r.run_act(toks, r.puzzle_vectors(np.array([1, 2]))).logits)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bare_state_dicts_of_both_families_load(tmp_path) -> None:
    for name in ("tiny", "tiny-lite"):
        model = build_model(preset(name), seed=0)
        torch.save(model.state_dict(), tmp_path / f"{name}.pth")
        ck = load_checkpoint(tmp_path / f"{name}.pth")
        assert ck.config.family == model.config.family
        want, got = model.state_dict(), ck.model.state_dict()
        assert list(got) == list(want) and len(got) == len(want) > 0
        for k in want:
            assert got[k].shape == want[k].shape and torch.equal(got[k], want[k]), k


def test_truncated_and_foreign_files_raise_one_clear_error(tmp_path) -> None:
    model = build_model(preset("tiny"), seed=0)
    good = save_checkpoint(tmp_path / "good.pt", model)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(HrmEdgeError, match="trunc.pt.*truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "foreign.pt")
    with pytest.raises(HrmEdgeError, match="foreign.pt: state dict is not an HRM model"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(2)}}, tmp_path / "other_script.pt")
    with pytest.raises(HrmEdgeError, match="lite training script"):
        load_checkpoint(tmp_path / "other_script.pt")
    with pytest.raises(HrmEdgeError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
