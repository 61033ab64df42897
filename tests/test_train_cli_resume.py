"""`hrm-edge train --out RUN --resume` from the command line: for a run configured with a [model] table, for
one started with `--init-from`, and as the command a SIGTERM'd run prints.

config.toml stores the resolved model config while the checkpoint stores the overrides it was given;
the resume must compare the resolved configs, and accept options newer than the checkpoint at their
defaults (a refusal here strands a days-long run)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from test_train import _eager_halter, _losses, arc_data  # noqa: F401  (the module's dataset fixture)

SMALL = ("--batch", "8", "--log-every", "1", "--eval-every", "0", "--threads", "1", "-q")


def _steps(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_cli_resume_of_a_model_table_run_continues(cli, arc_data, tmp_path) -> None:  # noqa: F811
    conf = tmp_path / "small.toml"
    conf.write_text('preset = "tiny"\nbatch = 8\nlog_every = 1\neval_every = 0\nthreads = 1\n'
                    "[model]\nhidden_size = 16\nnum_heads = 2\npuzzle_emb_ndim = 16\n")
    run = tmp_path / "run"
    r = cli("train", "--data", str(arc_data), "--config", str(conf), "--out", str(run), "--steps", "2", "-q")
    assert r.returncode == 0, r.stderr
    r = cli("train", "--out", str(run), "--resume", "--steps", "4", "-q")
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    r = cli("train", "--out", str(run), "--resume", "--batch", "4", "--steps", "6", "-q")
    assert r.returncode == 2 and "--resume: batch was 8 in this run, now 4" in r.stderr


def test_cli_resume_of_an_init_from_run_continues_and_its_config_repeats_it(cli, arc_data, tmp_path) -> None:  # noqa: F811
    init = _eager_halter(tmp_path / "init.pt")
    run = tmp_path / "run"
    r = cli("train", "--data", str(arc_data), "--init-from", str(init), "--out", str(run), "--steps", "2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert "[model]" in (run / "config.toml").read_text()  # the resolved table that resume reads back
    r = cli("train", "--out", str(run), "--resume", "--steps", "4", "-q")
    assert r.returncode == 0, r.stderr
    assert _steps(run) == [1, 2, 3, 4]
    again = tmp_path / "again"  # --config RUN/config.toml repeats the run, [model] restating the checkpoint's
    r = cli("train", "--config", str(run / "config.toml"), "--out", str(again), "--steps", "4", "-q")
    assert r.returncode == 0, r.stderr
    assert _steps(again) == [1, 2, 3, 4]
    tables = [(p / "config.toml").read_text().split("[model]")[1] for p in (run, again)]
    assert tables[0] == tables[1]
    changed = tmp_path / "changed.toml"  # a [model] field that differs from the checkpoint's is still refused
    changed.write_text((run / "config.toml").read_text().replace("hidden_size = 32", "hidden_size = 64"))
    r = cli("train", "--config", str(changed), "--out", str(tmp_path / "x"), "-q")
    assert r.returncode == 2 and "hidden_size = 64 (the checkpoint's is 32)" in r.stderr


_SIGTERM_AT_3 = """
import os, signal, sys
import hrm_edge.train.trainer as trainer
real = trainer.train
def train(cfg, resume=False, quiet=False, on_step=None):
    def hook(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    return real(cfg, resume=resume, quiet=quiet, on_step=hook)
trainer.train = train
sys.argv = ["hrm-edge", *sys.argv[1:]]
from hrm_edge.cli import main
main()
"""


@pytest.mark.parametrize("family", ["act-v1", "lite"])
def test_the_resume_command_printed_after_sigterm_gives_the_uninterrupted_losses(cli, arc_data, tmp_path,  # noqa: F811
                                                                                 family: str) -> None:
    """SIGTERM at step 3, then the printed resume command: every logged loss, accuracy and lr of steps 1-5 equals
    the uninterrupted run's (an optimizer or scheduler state not restored changes steps 4-5)."""
    start = ["--init-from", str(_eager_halter(tmp_path / "init.pt"))] if family == "act-v1" else \
        ["--preset", "tiny-lite", "--lr", "1e-3"]
    run, full = tmp_path / "run", tmp_path / "full"
    common = ["train", "--data", str(arc_data), *start, "--steps", "5", *SMALL]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", _SIGTERM_AT_3, *common, "--out", str(run)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 143, r.stderr[-2000:]
    printed = r.stderr.split("continue with: ", 1)[1].strip()
    argv = shlex.split(printed)
    assert argv[:2] == ["hrm-edge", "train"]
    r = cli(*argv[1:])  # exactly the printed command
    assert r.returncode == 0, r.stderr
    assert _steps(run) == [1, 2, 3, 4, 5] and "done: 5 steps" in r.stdout
    r = cli(*common, "--out", str(full))
    assert r.returncode == 0, r.stderr
    resumed, whole = _losses(run), _losses(full)
    assert [x["step"] for x in whole] == [1, 2, 3, 4, 5]
    assert resumed == whole  # every loss term, accuracy and lr, exactly


def test_cli_resume_of_a_lite_run_continues(cli, arc_data, tmp_path) -> None:  # noqa: F811
    """config.toml's resolved [model] table against the overrides the checkpoint recorded (none): the lite
    trainer compares resolved model configs too."""
    run = tmp_path / "lite"
    r = cli("train", "--data", str(arc_data), "--preset", "tiny-lite", "--out", str(run), "--steps", "2", *SMALL)
    assert r.returncode == 0, r.stderr
    r = cli("train", "--out", str(run), "--resume", "--steps", "3", "-q")
    assert r.returncode == 0, r.stderr
    assert _steps(run) == [1, 2, 3]
    changed = tmp_path / "changed"  # a resolved model table that differs from the run's is refused
    changed.mkdir()
    for p in run.iterdir():
        if p.is_file():
            (changed / p.name).write_bytes(p.read_bytes())
    (changed / "checkpoints").mkdir()
    for p in (run / "checkpoints").iterdir():
        (changed / "checkpoints" / p.name).write_bytes(p.read_bytes())
    toml = (changed / "config.toml").read_text()
    (changed / "config.toml").write_text(toml.replace("max_cycles = 4", "max_cycles = 3"))
    r = cli("train", "--out", str(changed), "--resume", "--steps", "4", "-q")
    assert r.returncode == 2 and "the model config differs from the checkpoint's" in r.stderr


def test_a_dataset_without_a_test_split_is_said_before_work(cli, arc_data, tmp_path) -> None:  # noqa: F811
    """No test/: a note before any work, no best.pt, the summary says why; an evaluation option is refused."""
    import shutil

    data = tmp_path / "notest"
    shutil.copytree(arc_data, data)
    shutil.rmtree(data / "test")
    run = tmp_path / "run"
    r = cli("train", "--data", str(data), "--preset", "tiny", "--out", str(run), "--steps", "2", "--batch", "8",
            "--threads", "1", "-q")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {data} has no test split: this run evaluates nothing and writes no best.pt; use its "
                     "last checkpoint (latest.json names it)"], r.stderr
    assert "no best.pt (no test split to rank checkpoints by)" in r.stdout
    assert not (run / "best.pt").exists() and (run / "latest.json").exists()
    again = tmp_path / "again"
    r = cli("train", "--data", str(data), "--preset", "tiny", "--out", str(again), "--steps", "2", "--batch", "8",
            "--eval-every", "1", "--threads", "1", "-q")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {data}: --eval-every evaluate"), r.stderr
    assert not again.exists()
