"""`hrm-edge train --out RUN --resume` from the command line, for a run configured with a [model] table.

config.toml stores the resolved model config while the checkpoint stores the overrides it was given;
the resume must compare the resolved configs, and accept options newer than the checkpoint at their
defaults (a refusal here strands a days-long run)."""

from __future__ import annotations

import json

from test_train import arc_data  # noqa: F401  (the module's dataset fixture)


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
