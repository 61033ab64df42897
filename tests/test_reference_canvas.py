"""Reference checkpoints that do not store their canvas (RoPE or no positions, attention), TRM's no_ACT_continue.

The references take seq_len from their dataset, so such a checkpoint's canvas comes from its run's
all_config.yaml data path (that dataset's dataset.json, else the reference builders' names: Sudoku 9x9),
from `--canvas`, or else ARC's 30x30 with a note. `train --init-from` follows the dataset's canvas where no
weight depends on it. `no_ACT_continue: False` is refused (hrm-edge's TRM is the reference default).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_train import _cfg, arc_data  # noqa: F401  (arc_data is a fixture)
from test_trm import ARCH, write_reference_run

from hrm_edge.config import preset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint
from hrm_edge.runtime.torch import TorchRunner
from hrm_edge.train.trainer import build_train_model

HRM_ARCH = {"name": "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1",
            "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
            "halt_exploration_prob": 0.1, "halt_max_steps": 2, "H_cycles": 2, "L_cycles": 2, "H_layers": 1,
            "L_layers": 1, "hidden_size": 32, "num_heads": 2, "expansion": 2, "puzzle_emb_ndim": 32,
            "pos_encodings": "rope"}


def hrm_reference_run(folder: Path, config: dict | None, pos: str = "rope", canvas: int = 9) -> tuple[Path, dict]:
    """A sapientinc/HRM-layout step file (bf16 H_init/L_init, `_orig_mod.model.inner.` keys) and its all_config."""
    cfg = dataclasses.replace(preset("tiny"), canvas=canvas, pos_encodings=pos, H_layers=1, L_layers=1,
                              halt_max_steps=2, num_puzzle_identifiers=5)
    sd = build_model(cfg, seed=2).state_dict()
    sd["H_init"], sd["L_init"] = sd["H_init"].bfloat16(), sd["L_init"].bfloat16()
    folder.mkdir(parents=True)
    path = folder / "step_100"
    torch.save({"_orig_mod.model.inner." + k: v for k, v in sd.items()}, path)
    if config is not None:
        (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": {**HRM_ARCH, "pos_encodings": pos},
                                                                **config}))
    return path, sd


def test_canvas_comes_from_the_data_paths_dataset_json(tmp_path, monkeypatch) -> None:
    """data_path relative to the reference repo (checkpoints/<project>/<run>/step_N), run from elsewhere."""
    repo = tmp_path / "HRM"
    (repo / "data" / "mine" / "train").mkdir(parents=True)
    (repo / "data" / "mine" / "train" / "dataset.json").write_text(json.dumps({"seq_len": 49, "vocab_size": 12}))
    path, _ = hrm_reference_run(repo / "checkpoints" / "Mine ACT-torch" / "run a", {"data_path": "data/mine"})
    monkeypatch.chdir(tmp_path)
    ck = load_checkpoint(path)
    assert ck.config.canvas == 7 and any("data/mine/train/dataset.json" in n for n in ck.meta["notes"])
    # TRM's list form, an absolute path
    trm_run = tmp_path / "trm"
    _, trm_path = write_reference_run(trm_run, ARCH)
    config = {"arch": ARCH, "data_paths": [str(repo / "data" / "mine")]}
    (trm_run / "all_config.yaml").write_text(yaml.safe_dump(config))
    assert load_checkpoint(trm_path).config.canvas == 7


def test_canvas_from_the_builders_names_else_30_with_a_note_and_the_override(tmp_path, cli) -> None:
    sudoku, sd = hrm_reference_run(tmp_path / "s", {"data_path": "data/sudoku-extreme-1k-aug-1000"})
    ck = load_checkpoint(sudoku)
    assert ck.config.canvas == 9 and any("Sudoku" in n for n in ck.meta["notes"])
    maze, _ = hrm_reference_run(tmp_path / "m", {"data_path": "data/maze-30x30-hard-1k"})
    assert load_checkpoint(maze).config.canvas == 30
    bare, _ = hrm_reference_run(tmp_path / "b", None)
    ck = load_checkpoint(bare)
    assert ck.config.canvas == 30 and any("--canvas N" in n for n in ck.meta["notes"])
    ck = load_checkpoint(bare, canvas=9)
    assert ck.config.canvas == 9
    assert all(torch.equal(v.float(), sd[k].float()) for k, v in ck.model.state_dict().items())
    toks = np.random.default_rng(0).integers(2, 12, (2, 81)).astype(np.int32)  # a 9x9 grid's 81 tokens
    with TorchRunner.from_model(ck.model) as r:
        assert r.run_act(toks, r.puzzle_vectors(np.array([1, 2])), halt="max").logits.shape == (2, 81, 12)
    r = cli("info", str(bare), "--canvas", "9", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["canvas"] == 9
    learned, _ = hrm_reference_run(tmp_path / "l", None, pos="learned", canvas=8)  # the weights store 8
    with pytest.raises(HrmEdgeError, match="store canvas 8.*--canvas 9"):
        load_checkpoint(learned, canvas=9)
    assert load_checkpoint(learned, canvas=8).config.canvas == 8
    r = cli("info", str(learned), "--canvas", "9")
    assert r.returncode == 2 and "--canvas 9 disagrees" in r.stderr


def test_convert_writes_the_resolved_checkpoint_every_command_reads(tmp_path, cli) -> None:
    bare, sd = hrm_reference_run(tmp_path / "b", None)
    out = tmp_path / "sudoku.pt"
    r = cli("convert", str(bare), "--canvas", "9", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "canvas 9, trained in bfloat16" in r.stdout
    ck = load_checkpoint(out)
    assert ck.source_format == "hrm-edge" and ck.config.canvas == 9 and ck.meta["trained_dtype"] == "bfloat16"
    assert ck.config.forward_dtype == "float32" and ck.train_state["converted_from"] == str(bare)
    assert all(torch.equal(v.float(), sd[k].float()) for k, v in ck.model.state_dict().items())


def test_init_from_takes_the_datasets_canvas_where_no_weight_depends_on_it(arc_data, tmp_path) -> None:  # noqa: F811
    ds = HrmDataset(arc_data, "train")  # an 8x8 canvas
    rope, sd = hrm_reference_run(tmp_path / "r", None)  # assumed 30x30 (no yaml)
    said: list[str] = []
    model = build_train_model(_cfg(arc_data, tmp_path / "x", preset=None, init_from=str(rope)), ds, say=said.append)
    assert model.config.canvas == 8 and model.rope_cos.shape[0] == 64 + model.config.puzzle_emb_len
    assert any("canvas 30 -> the dataset's 8" in line for line in said)
    assert torch.equal(model.L_level.layers[0].mlp.down_proj.weight, sd["L_level.layers.0.mlp.down_proj.weight"])
    learned, _ = hrm_reference_run(tmp_path / "l", None, pos="learned", canvas=9)
    with pytest.raises(HrmEdgeError, match="canvas 9 != dataset canvas 8.*learned positions"):
        build_train_model(_cfg(arc_data, tmp_path / "y", preset=None, init_from=str(learned)), ds)


def test_trm_no_act_continue_false_is_refused(tmp_path) -> None:
    """TinyRecursiveModels trm.py: no_ACT_continue True halts where q_halt > 0 with no q_continue target, False
    halts where q_halt > q_continue and trains it; hrm-edge's TRM is the first, so the second is refused."""
    _, path = write_reference_run(tmp_path / "r", {**ARCH, "no_ACT_continue": False})
    with pytest.raises(HrmEdgeError, match="no_ACT_continue: False"):
        load_checkpoint(path)
    _, ok = write_reference_run(tmp_path / "ok", {**ARCH, "no_ACT_continue": True})
    assert load_checkpoint(ok).model.adaptive_rule == "q_halt>0"
