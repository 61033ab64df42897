"""`compare` / `bench` and the measurement harness they share.

Without an export bundle these tests compare PyTorch against PyTorch: the same checkpoint must
agree exactly (100% grids and steps, zero logit delta), a differently seeded one must not, and a
TensorRT engine on a machine without TensorRT must be a row with its reason, not a crash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _solvekit import run_inprocess, small_checkpoint, small_real_tasks, write_tasks

from hrm_edge.bench.compare import compare_runtimes, markdown, plot
from hrm_edge.bench.harness import latency_stats, logit_deltas
from hrm_edge.solve.runners import open_runtime, probe_runtime
from hrm_edge.solve.solver import SolveOptions


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("comparekit")
    tasks = small_real_tasks(3)
    return {"dir": d, "ckpt": small_checkpoint(d / "a.pt", seed=0), "other": small_checkpoint(d / "b.pt", seed=1),
            "tasks": tasks, "folder": write_tasks(d / "tasks", tasks)}


def test_latency_stats_and_logit_deltas_by_hand() -> None:
    s = latency_stats([0.4, 0.1, 0.2], [4, 1, 2])  # every puzzle 100 ms
    assert s["puzzles"] == 7 and s["p50_ms"] == pytest.approx(100.0) and s["p99_ms"] == pytest.approx(100.0)
    assert s["puzzles_per_s"] == pytest.approx(10.0)
    s = latency_stats([1.0, 0.1], [1, 1])
    assert s["p50_ms"] == pytest.approx(550.0) and s["p90_ms"] == pytest.approx(910.0)
    d = logit_deltas([np.zeros((2, 3)), np.ones((1, 3))], [np.full((2, 3), 0.5), np.ones((1, 3))])
    assert d["max_abs"] == pytest.approx(0.5) and d["mean_abs"] == pytest.approx(0.5 * 6 / 9)


def test_compare_torch_against_itself_another_model_and_missing_tensorrt(kit, tmp_path: Path) -> None:
    ref = open_runtime("torch", kit["ckpt"], device="cpu")
    fake_engine = tmp_path / "model.engine"
    fake_engine.write_bytes(b"not an engine")
    others = [("torch", kit["ckpt"], {"device": "cpu"}), ("torch", kit["other"], {"device": "cpu"}),
              ("tensorrt", fake_engine, {})]
    rep = compare_runtimes(kit["tasks"], ref, others, SolveOptions(augment=3, batch=4), warmup=False)
    assert [r.status for r in rep.rows] == ["ok", "ok", "ok", "unavailable"]
    same, other, trt = rep.rows[1], rep.rows[2], rep.rows[3]
    assert same.grid_match_pct == 100.0 and same.steps_match_pct == 100.0 and same.answer_match_pct == 100.0
    assert same.max_abs_dlogit == 0.0 and same.pass2 == rep.rows[0].pass2
    assert other.max_abs_dlogit > 0.1 and other.mean_abs_dlogit > 0.0
    assert "TensorRT" in trt.reason
    assert rep.puzzles == sum(len(t.test) for t in kit["tasks"]) * 3
    for r in rep.rows[:3]:
        assert r.latency["puzzles"] == rep.puzzles and r.latency["p50_ms"] > 0 and r.size_bytes > 0
    md = markdown(rep)
    assert md.count("\n| ") == 5 and "unavailable: TensorRT" in md
    assert plot(rep, tmp_path / "c.png").stat().st_size > 1000


def test_unknown_runtime_artifacts_become_reasons() -> None:
    rt, reason, status = probe_runtime("torch", "/nonexistent/x.pt")
    assert rt is None and status == "error" and "no such checkpoint file" in reason
    rt, reason, status = probe_runtime("tensorrt", "/nonexistent/model.engine")
    assert rt is None and reason  # unavailable here (no TensorRT) or, with TensorRT, no such engine file


def test_compare_cli_writes_json_md_png_and_keeps_a_row_for_tensorrt(kit, tmp_path: Path) -> None:
    r = run_inprocess("compare", str(kit["folder"]), "--ckpt", str(kit["ckpt"]), "--engine",
                      str(tmp_path / "model.engine"), "--augment", "2", "--batch", "3", "--out-dir", str(tmp_path),
                      "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "tensorrt" in r.stdout and "unavailable" in r.stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [row["status"] for row in data["rows"]] == ["ok", "unavailable"]
    assert data["rows"][0]["grid_match_pct"] == 100.0 and data["puzzles"] == data["test_inputs"] * 2
    assert (tmp_path / "compare.md").read_text().startswith("# hrm-edge compare")
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_bench_cli_times_runtimes_on_random_grids_and_real_tasks(kit, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = run_inprocess("bench", "--ckpt", str(kit["ckpt"]), "--engine", str(tmp_path / "x.engine"), "--puzzles", "4",
                      "--batch", "2", "--out", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    ok, trt = data["results"]
    assert ok["status"] == "ok" and ok["puzzles"] == 4 and ok["batches"] == 2 and ok["puzzles_per_s"] > 0
    assert trt["status"] == "unavailable"
    import torch

    threads = torch.get_num_threads()
    try:
        r = run_inprocess("bench", str(kit["folder"]), "--ckpt", str(kit["ckpt"]), "--puzzles", "3", "--out",
                          str(out), "--device", "cpu", "--threads", "1")
        assert torch.get_num_threads() == 1  # --threads reaches torch's (process-wide) pool
    finally:
        torch.set_num_threads(threads)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["results"][0]["puzzles"] == 3 and data["source"] == str(kit["folder"])
