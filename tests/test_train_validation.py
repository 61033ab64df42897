"""Choosing best.pt without the test pairs (issue 21, item 8): with a val/ split (build-data --validation) the
trainer's evaluations and its best.pt read val/ only; test/ is left for one final report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _tinytrain import build_pick_dataset

from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.metrics import read_jsonl
from hrm_edge.train.trainer import train


@pytest.fixture(scope="module")
def val_data(tmp_path_factory) -> Path:
    """Six real ARC-AGI-1 tasks (8x8 canvas, 7 augmentations), test/ and val/ (5 of them have >= 3 pairs)."""
    return build_pick_dataset(tmp_path_factory.mktemp("arcval"), augment=7, validation=True)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), preset="tiny", steps=12, batch=8, lr=3e-3, log_every=1,
                eval_every=4, eval_samples=10_000, checkpoint_every=0, threads=1, full_eval_on_best=False)
    return TrainConfig(**{**base, **kw})


def _evals(run: Path) -> list[dict]:
    return list(read_jsonl(run / "eval.jsonl"))


def test_best_pt_is_chosen_on_val_and_the_test_split_is_never_read(val_data: Path, tmp_path: Path) -> None:
    n_val, n_test = HrmDataset(val_data, "val").num_examples, HrmDataset(val_data, "test").num_examples
    assert 0 < n_val != n_test
    train(_cfg(val_data, tmp_path / "r"), quiet=True)
    ev = _evals(tmp_path / "r")
    assert [e["step"] for e in ev] == [4, 8, 12]
    assert all(e["split"] == "val" and e["samples"] == n_val for e in ev)  # the whole val/, nothing of test/
    assert 'eval_split = "val"' in (tmp_path / "r" / "config.toml").read_text()  # auto resolved and recorded
    side = json.loads((tmp_path / "r" / "best.json").read_text())
    best = max(ev, key=lambda e: (e["exact_accuracy"], e["token_accuracy"]))
    assert side["step"] == best["step"] and side["metrics"]["samples"] == n_val

    # The same run on a copy without test/: the same evaluations and the same best.pt, so test/ played no part.
    blind = tmp_path / "no_test"
    shutil.copytree(val_data, blind)
    shutil.rmtree(blind / "test")
    train(_cfg(blind, tmp_path / "b"), quiet=True)
    drop = {"time"}
    assert [{k: v for k, v in e.items() if k not in drop} for e in _evals(tmp_path / "b")] == \
        [{k: v for k, v in e.items() if k not in drop} for e in ev]
    a, b = (torch.load(tmp_path / r / "best.pt", map_location="cpu", weights_only=False) for r in ("r", "b"))
    assert a["train_state"]["best_metric_name"] == "val/exact_accuracy"
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_eval_split_test_is_the_old_protocol_and_val_needs_the_split(val_data: Path, tmp_path: Path) -> None:
    n_test = HrmDataset(val_data, "test").num_examples
    train(_cfg(val_data, tmp_path / "t", steps=4, eval_split="test"), quiet=True)
    assert [(e["split"], e["samples"]) for e in _evals(tmp_path / "t")] == [("test", n_test)]
    no_val = tmp_path / "no_val"
    shutil.copytree(val_data, no_val)
    shutil.rmtree(no_val / "val")
    train(_cfg(no_val, tmp_path / "auto", steps=4), quiet=True)  # auto without val/: test/, as before
    assert [e["split"] for e in _evals(tmp_path / "auto")] == ["test"]
    with pytest.raises(HrmEdgeError, match="no val/ split"):
        train(_cfg(no_val, tmp_path / "v", steps=4, eval_split="val"), quiet=True)
    with pytest.raises(HrmEdgeError, match="--eval-split must be one of"):
        _cfg(val_data, tmp_path / "x", eval_split="train").validate()
