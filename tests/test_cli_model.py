"""`hrm-edge info` / `init` as a user runs them, including the one-line errors with exit code 2 (those in a
subprocess, as the console script runs; the rest through the same entry point in this process)."""

from __future__ import annotations

import json

import torch


def test_info_presets_report_parameter_counts(cli_fast) -> None:
    cli = cli_fast
    lite = json.loads(cli("info", "--preset", "lite-5.7m", "--json").stdout)
    assert lite["dense_params"] == 5_667_597 and lite["puzzle_emb_params"] == 0
    assert lite["params_per_module"]["h_layers"] == 4 * 789_760
    act = json.loads(cli("info", "--preset", "hrm-6m", "--json").stdout)
    assert act["dense_params"] == 5_970_434
    assert act["source_format"] == "preset" and act["config"]["family"] == "act-v1"
    text = cli("info", "--preset", "hrm-6m").stdout
    assert "5,970,434" in text and "H_level" in text


def test_init_then_info(cli_fast, tmp_path) -> None:
    cli = cli_fast
    out = tmp_path / "tiny.pt"
    r = cli("init", "--preset", "tiny", "--out", str(out), "--seed", "3", "--puzzles", "40")
    assert r.returncode == 0, r.stderr
    d = json.loads(cli("info", str(out), "--json").stdout)
    assert d["num_puzzle_identifiers"] == 40 and d["puzzle_emb_params"] == 40 * 32
    assert d["source_format"] == "hrm-edge" and d["step"] == 0


def test_bad_checkpoints_exit_2_with_one_line(cli, cli_fast, tmp_path) -> None:
    out = tmp_path / "tiny.pt"
    assert cli_fast("init", "--preset", "tiny-lite", "--out", str(out)).returncode == 0
    data = out.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:1000])
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pt")
    for name in ("cut.pt", "foreign.pt", "nope.pt"):
        r = cli("info", str(tmp_path / name))
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and lines[0].startswith("error:"), r.stderr
