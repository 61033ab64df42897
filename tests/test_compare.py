"""`compare` / `bench` and the measurements they share.

The reference is PyTorch on the session's tiny-lite checkpoint (no puzzle table, so a bundle gets the
very same inputs); the rows under test are real other runtimes: the session's ONNX bundles of the same
checkpoint (ONNX Runtime: identical grids and halting, a logit delta that is not zero, since another
runtime rounds differently, and <= 1e-3, the free-running fp32 tolerance of test_runtime_ort), a
differently seeded checkpoint (must disagree) and a TensorRT engine on a machine without TensorRT (a
row with its reason, not a crash). The ACT v1 checkpoint with its puzzle table runs in `bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrm_edge.bench.compare import markdown, plot, timed_compare
from hrm_edge.bench.timing import latency_stats, run_latency
from hrm_edge.commands.solve import ROW_FAILED
from hrm_edge.data.arc import load_tasks
from hrm_edge.solve.compare import compare_runtimes, logit_deltas
from hrm_edge.solve.runners import open_runtime, probe_runtime
from hrm_edge.solve.solver import SolveOptions

ORT_TOL = 1e-3


@pytest.fixture(scope="module")
def kit(lite_ckpt: Path, tiny_ckpt: Path, other_ckpt: Path, tasks_dir: Path) -> dict:
    return {"ckpt": lite_ckpt, "act": tiny_ckpt, "other": other_ckpt, "folder": tasks_dir,
            "tasks": load_tasks(tasks_dir, canvas=10).tasks}


def test_latency_stats_and_logit_deltas_by_hand() -> None:
    s = latency_stats([0.4, 0.1, 0.2], [4, 1, 2])  # every puzzle 100 ms
    assert s["puzzles"] == 7 and s["p50_ms"] == pytest.approx(100.0) and s["p99_ms"] == pytest.approx(100.0)
    assert s["puzzles_per_s"] == pytest.approx(10.0)
    s = latency_stats([1.0, 0.1], [1, 1])
    assert s["p50_ms"] == pytest.approx(550.0) and s["p90_ms"] == pytest.approx(910.0)
    d = logit_deltas([np.zeros((2, 3)), np.ones((1, 3))], [np.full((2, 3), 0.5), np.ones((1, 3))])
    assert d["max_abs"] == pytest.approx(0.5) and d["mean_abs"] == pytest.approx(0.5 * 6 / 9)


def test_compare_bundle_other_model_and_missing_tensorrt(kit, bundles, tmp_path: Path) -> None:
    ref = open_runtime("torch", kit["ckpt"], device="cpu")
    fake_engine = tmp_path / "model.engine"
    fake_engine.write_bytes(b"not an engine")
    step = bundles[("tiny-lite", "step", "max")].path
    others = [("onnxruntime", step, {"device": "cpu"}), ("torch", kit["other"], {"device": "cpu"}),
              ("tensorrt", fake_engine, {})]
    rep = timed_compare(kit["tasks"], ref, others, SolveOptions(augment=3, batch=4), warmup=False)
    assert [r.status for r in rep.rows] == ["ok", "ok", "ok", "unavailable"]
    ort, other, trt = rep.rows[1], rep.rows[2], rep.rows[3]
    assert ort.grid_match_pct == 100.0 and ort.steps_match_pct == 100.0 and ort.answer_match_pct == 100.0
    assert 0.0 < ort.max_abs_dlogit <= ORT_TOL and ort.pass2 == rep.rows[0].pass2
    assert other.grid_match_pct < 100.0 and other.max_abs_dlogit > 0.1 and other.mean_abs_dlogit > 0.0
    assert "TensorRT" in trt.reason
    assert rep.puzzles == sum(len(t.test) for t in kit["tasks"]) * 3
    for r in rep.rows[:3]:
        assert r.latency["puzzles"] == rep.puzzles and r.latency["p50_ms"] > 0 and r.size_bytes > 0
    md = markdown(rep)
    # header, four runtimes and the trivial baseline (the floor every accuracy is read against)
    assert rep.baseline is not None and md.count("\n| ") == 6 and "unavailable: TensorRT" in md
    assert plot(rep, tmp_path / "c.png").stat().st_size > 1000


def test_solving_on_several_runtimes_times_nothing_unless_bench_asks(kit) -> None:
    """solve/compare.py records batch times but summarises none: the latency comes from the `timings` bench hands
    down (bench/compare.timed_compare), so solving never imports measuring."""
    ref = open_runtime("torch", kit["ckpt"], device="cpu")
    opts = SolveOptions(augment=1, batch=4)
    plain = compare_runtimes(kit["tasks"][:2], ref, [], opts, warmup=False)
    assert plain.rows[0].latency == {} and plain.machine == {}
    timed = compare_runtimes(kit["tasks"][:2], ref, [], opts, warmup=False, timings=run_latency)
    assert timed.rows[0].latency["puzzles"] == timed.puzzles == plain.puzzles > 0
    assert timed.rows[0].pass2 == plain.rows[0].pass2


def test_unknown_runtime_artifacts_become_reasons() -> None:
    import importlib.util

    rt, reason, status = probe_runtime("torch", "/nonexistent/x.pt")
    assert rt is None and status == "error" and "no such checkpoint file" in reason
    rt, reason, status = probe_runtime("tensorrt", "/nonexistent/model.engine")
    assert rt is None
    if importlib.util.find_spec("tensorrt") is None:
        assert status == "unavailable" and "TensorRT" in reason and "not installed" in reason, reason
    else:
        assert status == "error" and "/nonexistent/model.engine" in reason, reason


def test_compare_cli_several_bundles_json_md_png_and_a_tensorrt_row(kit, bundles, cli_fast, tmp_path: Path) -> None:
    """Step and unrolled bundles of the reference checkpoint in one table, plus a TensorRT row."""
    step, unrolled = bundles[("tiny-lite", "step", "max")].path, bundles[("tiny-lite", "unrolled", "max")].path
    r = cli_fast("compare", str(kit["folder"]), "--ckpt", str(kit["ckpt"]), "--bundle", str(step), "--bundle",
                 str(unrolled), "--engine", str(tmp_path / "model.engine"), "--augment", "2", "--batch", "3",
                 "--out-dir", str(tmp_path), "--device", "cpu")
    # the TensorRT row failed (no TensorRT here): the report is still written whole, and the exit code says so
    assert r.returncode == ROW_FAILED and "1 runtime row(s) failed (tensorrt model.engine)" in r.stderr, r.stderr
    assert "tensorrt" in r.stdout and "unavailable" in r.stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [(row["kind"], row["status"]) for row in data["rows"]] == [
        ("torch", "ok"), ("onnxruntime", "ok"), ("onnxruntime", "ok"), ("tensorrt", "unavailable")]
    for row in data["rows"][1:3]:
        assert row["grid_match_pct"] == 100.0 and row["steps_match_pct"] == 100.0, row
        assert 0.0 < row["max_abs_dlogit"] <= ORT_TOL, row
    assert data["puzzles"] == data["test_inputs"] * 2
    assert (tmp_path / "compare.md").read_text().startswith("# hrm-edge compare")
    assert (tmp_path / "compare.png").stat().st_size > 1000
    # the floor (issue 21, item 9): its own JSON key, a row of the printed and markdown tables
    from hrm_edge.solve.baseline import LABEL

    assert data["baseline"]["kind"] == "baseline" and data["baseline"]["pass2"] is not None
    assert LABEL in r.stdout and f"| {LABEL} | ok |" in (tmp_path / "compare.md").read_text()


def test_bench_cli_times_runtimes_on_random_grids_and_real_tasks(kit, cli_fast, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = cli_fast("bench", "--ckpt", str(kit["act"]), "--engine", str(tmp_path / "x.engine"), "--puzzles", "4",
                      "--batch", "2", "--out", str(out), "--device", "cpu")
    assert r.returncode == ROW_FAILED and "1 runtime row(s) failed (tensorrt x.engine)" in r.stderr, r.stderr
    data = json.loads(out.read_text())
    ok, trt = data["results"]
    assert ok["status"] == "ok" and ok["puzzles"] == 4 and ok["batches"] == 2 and ok["puzzles_per_s"] > 0
    assert trt["status"] == "unavailable"
    import torch

    threads = torch.get_num_threads()
    try:
        r = cli_fast("bench", str(kit["folder"]), "--ckpt", str(kit["act"]), "--puzzles", "3", "--out",
                          str(out), "--device", "cpu", "--threads", "2")
        assert threads == 1 and torch.get_num_threads() == 2  # --threads reaches torch's (process-wide) pool
    finally:
        torch.set_num_threads(threads)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["results"][0]["puzzles"] == 3 and data["source"] == str(kit["folder"])


def _planted(rt, canvas: int, steps_off: set[int], grid_at: set[int], pad_at: set[int]):
    """`rt` with its runner's outputs changed at known puzzles (global index in plan order, warm-up off): one more
    halting step at `steps_off`, a decodable 1x1 grid of colour 3 at `grid_at`, all-PAD (undecodable) at `pad_at`."""
    from hrm_edge.data.tokens import encode_grid
    from hrm_edge.runtime.base import ActResult

    real, seen = rt.runner.run_act, [0]
    grid = encode_grid(np.array([[3]]), canvas).astype(np.int64)

    def run_act(tokens, puzzle_emb=None, halt="max"):
        res = real(tokens, puzzle_emb, halt=halt)
        logits, steps = res.logits.copy(), np.asarray(res.steps).copy()
        for k in range(len(tokens)):
            j = seen[0] + k
            if j in steps_off:
                steps[k] += 1
            if j in grid_at or j in pad_at:
                want = grid if j in grid_at else np.zeros_like(grid)
                logits[k] = 0.0
                logits[k, np.arange(len(want)), want] = 10.0
        seen[0] += len(tokens)
        return ActResult(logits, res.q_halt, res.q_continue, steps)

    rt.runner.run_act = run_act
    return rt


def test_compare_percentages_are_exact_for_a_runtime_that_disagrees(kit) -> None:
    """Planted disagreements give exactly the percentages they should: steps, grids (an undecodable grid equals
    only an undecodable one) and answers; forcing any of them to 100% or counting undecodable as equal fails."""
    from hrm_edge.solve.compare import run_plan
    from hrm_edge.solve.solver import plan_tasks

    opts = SolveOptions(augment=2, batch=4)
    ref = open_runtime("torch", kit["ckpt"], device="cpu")
    canvas = ref.runner.spec.canvas
    plan = plan_tasks(kit["tasks"], opts, canvas, ref.puzzles)
    _, ref_dec, _ = run_plan(ref, plan, opts.halt, None, False)
    n = len(plan.jobs)
    none = [j for j in range(n) if ref_dec.per_job_grid[j] is None]
    some = [j for j in range(n) if ref_dec.per_job_grid[j] is not None
            and ref_dec.per_job_grid[j].tolist() != [[3]]]
    grid_at, pad_at = set(none[:2]), set(some[:2])  # decodable where torch is not, and the other way round
    assert len(grid_at | pad_at) >= 2, (len(none), len(some))
    steps_off = {0, 3, n - 1}
    plant = dict(steps_off=steps_off, grid_at=grid_at, pad_at=pad_at)
    other = _planted(open_runtime("torch", kit["ckpt"], device="cpu"), canvas, **plant)

    import hrm_edge.solve.compare as cmp

    real_probe = cmp.probe_runtime
    cmp.probe_runtime = lambda kind, artifact, **kw: (other, None, "ok")
    try:
        row = compare_runtimes(kit["tasks"], ref, [("torch", kit["ckpt"], {})], opts, warmup=False).rows[1]
    finally:
        cmp.probe_runtime = real_probe
    assert row.steps_match_pct == pytest.approx(100.0 * (n - len(steps_off)) / n)
    assert row.grid_match_pct == pytest.approx(100.0 * (n - len(grid_at) - len(pad_at)) / n)
    # answers: the planted runtime's own decision, compared attempt by attempt as lists
    _, other_dec, _ = run_plan(_planted(open_runtime("torch", kit["ckpt"], device="cpu"), canvas, **plant), plan,
                               opts.halt, None, False)
    same = sum(all(np.array_equal(a, b) for a, b in zip(p.attempts, q.attempts))
               for p, q in zip(other_dec.answers, ref_dec.answers))
    assert same < len(ref_dec.answers)  # the plants changed at least one answer
    assert row.answer_match_pct == pytest.approx(100.0 * same / len(ref_dec.answers))
