"""`--recipe hrm|trm` (the references' cfg_pretrain.yaml values under everything given) and `--dtype bfloat16` runs.

The recipe values were read from sapientinc/HRM and SamsungSAILMontreal/TinyRecursiveModels
`config/cfg_pretrain.yaml` (the same in both): global_batch_size 768, epochs 100000, lr 1e-4, lr_min_ratio
1.0, lr_warmup_steps 2000, beta1 0.9, beta2 0.95, weight_decay 0.1, puzzle_emb_weight_decay 0.1,
puzzle_emb_lr 1e-2; their models' forward_dtype default is bfloat16. They are restated here on purpose: a
change to RECIPES must be a deliberate change to this test too.
"""

from __future__ import annotations

import os
import signal

import pytest
import tomllib
import torch
from test_train import _cfg, _losses, arc_data  # noqa: F401  (arc_data is a fixture)

from hrm_edge.model.checkpoint import load_checkpoint
from hrm_edge.train.config import RECIPES, TrainConfig, with_recipe
from hrm_edge.train.metrics import read_jsonl
from hrm_edge.train.trainer import train

CFG_PRETRAIN = {"batch": 768, "epochs": 100000.0, "lr": 1e-4, "lr_min_ratio": 1.0, "warmup": 2000, "beta1": 0.9,
                "beta2": 0.95, "weight_decay": 0.1, "puzzle_weight_decay": 0.1, "puzzle_lr": 1e-2}


@pytest.mark.parametrize("name", ["hrm", "trm"])
def test_recipe_holds_the_reference_values(name: str) -> None:
    r = RECIPES[name]
    assert {k: r[k] for k in CFG_PRETRAIN} == CFG_PRETRAIN
    assert (r["optimizer"], r["loss"], r["dtype"], r["seed"]) == ("adam-atan2", "stablemax", "bfloat16", 0)
    cfg = TrainConfig(**with_recipe({"recipe": name, "data": "d", "out": "o", "preset": "tiny"}))
    cfg.validate()
    assert (cfg.batch, cfg.epochs, cfg.steps, cfg.lr_min_ratio, cfg.warmup) == (768, 100000.0, None, 1.0, 2000)
    given = with_recipe({"recipe": name, "steps": 5, "lr_min_ratio": 0.5})  # what is given wins; steps beat epochs
    assert given["steps"] == 5 and "epochs" not in given and given["lr_min_ratio"] == 0.5 and given["batch"] == 768


def test_cli_recipe_is_layered_under_the_options_and_recorded(cli_fast, arc_data, tmp_path) -> None:  # noqa: F811
    run = tmp_path / "run"
    r = cli_fast("train", "--data", str(arc_data), "--preset", "tiny", "--recipe", "hrm", "--out", str(run),
                 "--steps", "2", "--batch", "8", "--dtype", "float32", "--eval-every", "0", "--log-every", "1",
                 "--threads", "1", "-q")
    assert r.returncode == 0, r.stderr
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert cfg["recipe"] == "hrm" and (cfg["batch"], cfg["steps"], cfg["dtype"]) == (8, 2, "float32")
    assert (cfg["lr_min_ratio"], cfg["warmup"], cfg["beta2"], cfg["puzzle_lr"]) == (1.0, 2000, 0.95, 1e-2)
    assert "epochs" not in cfg
    lrs = [rec["lr"] for rec in read_jsonl(run / "metrics.jsonl")]
    assert lrs == [pytest.approx(1e-4 * 1 / 2000), pytest.approx(1e-4 * 2 / 2000)]  # the reference's warmup
    r = cli_fast("train", "--data", str(arc_data), "--preset", "tiny-lite", "--recipe", "trm", "--out",
                 str(tmp_path / "lite"), "--steps", "1", "--batch", "8", "-q")
    assert r.returncode == 2 and "--dtype and --recipe are for act-v1 and trm" in r.stderr
    r = cli_fast("train", "--data", str(arc_data), "--preset", "tiny", "--recipe", "nope", "--out",
                 str(tmp_path / "x"), "--steps", "1")
    assert r.returncode == 2 and "--recipe must be one of hrm, trm" in r.stderr


def test_bf16_run_trains_a_bf16_carry_and_resumes_bit_identically(arc_data, tmp_path) -> None:  # noqa: F811
    kw = dict(dtype="bfloat16", steps=6, eval_every=3, micro_batch=4)
    full = train(_cfg(arc_data, tmp_path / "full", **kw), quiet=True)
    assert full["step"] == 6

    def sigterm_at_4(step: int) -> None:
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "cut"
    assert train(_cfg(arc_data, run, **kw), quiet=True, on_step=sigterm_at_4)["step"] == 4
    state = torch.load(run / "checkpoints" / "step_4.pt", weights_only=True)
    assert state["config"]["forward_dtype"] == "bfloat16"
    assert {c["z_H"].dtype for c in state["train_state"]["carry"]} == {torch.bfloat16}
    train(_cfg(arc_data, run, **kw), resume=True, quiet=True)
    assert _losses(run) == _losses(tmp_path / "full")
    ck = load_checkpoint(run / "checkpoints" / "step_6.pt")
    assert ck.meta["trained_dtype"] == "bfloat16" and ck.config.forward_dtype == "float32"
    with pytest.raises(Exception, match="--dtype float32|dtype was 'bfloat16'"):
        train(_cfg(arc_data, run, **{**kw, "dtype": "float32", "steps": 8}), resume=True, quiet=True)
