"""hrm-edge train's options around the training step: DataLoader workers, full evaluation when the best
improves, torch.compile, TensorBoard / W&B trackers. Each must leave the training itself unchanged."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from test_train import _losses  # metrics.jsonl records without the measured timings

from hrm_edge.errors import HrmEdgeError
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.metrics import TIMING_KEYS, check_trackers, read_jsonl
from hrm_edge.train.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from _tinytrain import build_pick_dataset

    return build_pick_dataset(tmp_path_factory.mktemp("extras"), augment=3)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), preset="tiny", steps=10, batch=8, lr=1e-3, log_every=1,
                eval_every=0, checkpoint_every=0, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def plain(data, tmp_path_factory) -> Path:
    """The reference run: 10 steps, rows read in the training process."""
    run = tmp_path_factory.mktemp("plain") / "run"
    train(_cfg(data, run, workers=0), quiet=True)
    return run


def test_dataloader_workers_give_the_same_batches_and_resume_bit_identically(data, plain, tmp_path) -> None:
    """Two worker processes reading ahead (prefetch 3) log exactly the losses of in-process reads, also
    across a SIGTERM at step 6 and a resume (the loader restarts at the saved position)."""
    def sigterm_at_6(step: int) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "w2"
    cut = train(_cfg(data, run, workers=2, prefetch=3), quiet=True, on_step=sigterm_at_6)
    assert cut["stopped_by"] == signal.SIGTERM and cut["step"] == 6
    train(_cfg(data, run, workers=2, prefetch=3), resume=True, quiet=True)
    got, want = _losses(run), _losses(plain)
    assert [r["step"] for r in got] == list(range(1, 11))
    assert got == want
    assert all(r["data_s"] >= 0 for r in read_jsonl(run / "metrics.jsonl"))  # the wait for a batch is logged


def test_full_split_evaluated_exactly_when_the_subset_best_improves(data, tmp_path) -> None:
    """eval.jsonl holds a full-split record (every test example) at each step where best.pt was replaced
    and nowhere else; best.json carries its metrics as full_*; --no-full-eval turns it off."""
    from hrm_edge.data.dataset import HrmDataset

    run = tmp_path / "full"
    train(_cfg(data, run, steps=16, eval_every=2, eval_samples=4, lr=3e-3), quiet=True)
    recs = read_jsonl(run / "eval.jsonl")
    subset = [r for r in recs if not r.get("full")]
    full = [r for r in recs if r.get("full")]
    best, improved = None, []
    for r in subset:
        key = (r["exact_accuracy"], r["token_accuracy"])
        if best is None or key > best:
            best = key
            improved.append(r["step"])
    assert len(subset) == 8 and len(improved) >= 2  # the rule is exercised more than once
    assert [r["step"] for r in full] == improved
    n_test = HrmDataset(str(data), "test").num_examples
    assert n_test > 4 and all(r["samples"] == n_test for r in full)
    side = json.loads((run / "best.json").read_text())
    assert side["step"] == improved[-1]
    assert side["metrics"]["full_samples"] == n_test
    assert side["metrics"]["full_token_accuracy"] == full[-1]["token_accuracy"]

    off = tmp_path / "off"
    train(_cfg(data, off, steps=4, eval_every=2, eval_samples=4, full_eval_on_best=False), quiet=True)
    assert not [r for r in read_jsonl(off / "eval.jsonl") if r.get("full")]


def test_compile_captures_the_segment_and_keeps_the_losses(data, plain, tmp_path) -> None:
    """--compile (aot_eager backend: dynamo capture + AOTAutograd, no code generation, so it runs in
    seconds; inductor is the default for users) traces the segment and trains to the eager losses
    (tolerance 1e-5: a traced graph may reorder float ops)."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    run = tmp_path / "compiled"
    train(_cfg(data, run, compile=True, compile_backend="aot_eager"), quiet=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    got, want = _losses(run), _losses(plain)
    assert len(got) == len(want) == 10
    for g, w in zip(got, want):
        assert g["loss"] == pytest.approx(w["loss"], abs=1e-5)
    torch._dynamo.reset()


def test_unknown_compile_backend_is_refused() -> None:
    with pytest.raises(HrmEdgeError, match="--compile-backend must be one of"):
        TrainConfig(data="d", preset="tiny", steps=1, compile=True, compile_backend="nope").validate()


def test_tensorboard_scalars_are_the_logged_metrics(data, tmp_path) -> None:
    pytest.importorskip("tensorboard", reason="the track extra (tensorboard) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "tb"
    train(_cfg(data, run, steps=6, log_every=2, eval_every=3, eval_samples=4, tensorboard=True), quiet=True)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr", "eval/token_accuracy", "full/exact_accuracy"} <= set(tags)
    logged = read_jsonl(run / "metrics.jsonl")
    tb = acc.Scalars("train/loss")
    assert [e.step for e in tb] == [r["step"] for r in logged] == [2, 4, 6]
    assert [e.value for e in tb] == pytest.approx([r["loss"] for r in logged], rel=1e-6)  # float32 in the file
    assert [e.step for e in acc.Scalars("eval/token_accuracy")] == [3, 6]


def test_wandb_offline_run_in_the_run_folder(data, tmp_path) -> None:
    pytest.importorskip("wandb", reason="the track extra (wandb) is not installed")
    run = tmp_path / "wb"
    train(_cfg(data, run, steps=4, log_every=2, wandb=True), quiet=True)
    files = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    run_id = (run / "wandb_id.txt").read_text().strip()
    assert files[0].name == f"run-{run_id}.wandb"
    assert b"train/loss" in files[0].read_bytes()  # the history records name the logged scalars


def test_missing_tracker_package_is_one_clear_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else real(n, *a))
    with pytest.raises(HrmEdgeError, match=r"--wandb needs the wandb package: pip install 'hrm-edge\[track\]'"):
        check_trackers(False, True)
    check_trackers(False, False)  # nothing asked, nothing checked


def test_cli_flags_reach_the_run_config(data, tmp_path, cli_fast) -> None:
    """--workers, --prefetch, --no-full-eval and --compile-backend are written to RUN/config.toml."""
    import tomllib

    run = tmp_path / "cli"
    res = cli_fast("train", "--data", str(data), "--preset", "tiny", "--out", str(run), "--steps", "2",
                        "--batch", "8", "--threads", "1", "--workers", "1", "--prefetch", "4", "--no-full-eval",
                        "--eval-every", "0", "-q")
    assert res.returncode == 0, res.stderr
    cfg = tomllib.loads((run / "config.toml").read_text())
    assert (cfg["workers"], cfg["prefetch"], cfg["full_eval_on_best"]) == (1, 4, False)
    bad = cli_fast("train", "--data", str(data), "--preset", "tiny", "--out", str(tmp_path / "x"), "--steps",
                        "2", "--workers", "-1")
    assert bad.returncode == 2 and "--workers must be >= 0" in bad.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize("family", ["tiny", "tiny-lite"])
def test_metrics_split_each_step_into_data_forward_backward_optimizer(data, tmp_path, family) -> None:
    """Every logged record carries the phase means, their compute sum and the peak memory; forward and
    backward are really timed (non-zero), and samples/s follows the window's steps."""
    run = tmp_path / family
    kw = {"optimizer": "adamw", "lr_min_ratio": 0.0, "warmup": 0} if family == "tiny-lite" else {}
    train(_cfg(data, run, preset=family, steps=4, log_every=2, **kw), quiet=True)
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs] == [2, 4]
    for r in recs:
        assert set(TIMING_KEYS) <= set(r)
        assert r["forward_s"] > 0 and r["backward_s"] > 0 and r["data_s"] >= 0 and r["optimizer_s"] > 0
        assert r["compute_s"] == pytest.approx(r["forward_s"] + r["backward_s"] + r["optimizer_s"])
        assert r["mem_mb"] > 10  # a Python process with torch loaded holds far more than 10 MB
        assert 0 < r["samples_per_s"] < 8 / r["compute_s"] * 1.01  # 8 samples a step, no faster than compute
