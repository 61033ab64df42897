"""`hrm-edge bench --preset`: the variant suite writes its record (JSON + markdown + PNG) with the figures it claims.

Timings are never asserted (they depend on the machine); what is checked is what must hold on any
machine: every requested variant has a row, FLOPs per segment are the analytic count, every segment
was timed, agreement with the PyTorch row is computed against PyTorch, and bad options fail first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hrm_edge.bench.flops import segment_flops
from hrm_edge.config import preset


def test_preset_suite_writes_the_record(cli, tmp_path: Path) -> None:
    r = cli("bench", "--preset", "tiny", "--batch", "1", "--batch", "2", "--puzzles", "2", "--repeat", "1",
            "--runtimes", "torch,ort-fp32-step", "--no-peaks", "--threads", "1", "--out-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert folder.name.endswith("c") and folder.name[:4].isdigit()  # <date>_<cpu>-<cores>c
    assert {p.name for p in folder.iterdir()} == {"bench.json", "bench.md", "bench.png"}
    rec = json.loads((folder / "bench.json").read_text())
    rows = rec["rows"]
    assert [(x["variant"], x["batch"]) for x in rows] == [("torch", 1), ("ort-fp32-step", 1), ("torch", 2),
                                                           ("ort-fp32-step", 2)]
    assert all(x["status"] == "ok" for x in rows)
    per_puzzle = segment_flops(preset("tiny")).total / 1e9
    for x in rows:
        assert x["gflop_per_segment"] == per_puzzle * x["batch"]
        assert x["segments_timed"] == 4 * (2 // x["batch"])  # tiny: 4 segments a run, 2 puzzles per batch size
        assert x["puzzles"] == 2 and x["segment_ms"]["p50"] > 0 and x["puzzles_per_s"] > 0
        assert x["cells_equal_torch_pct"] >= 99.0
    assert rows[0]["grids_equal_torch_pct"] == 100.0  # the torch row against itself
    md = (folder / "bench.md").read_text()
    assert "| torch | 1 |" in md and "| ort-fp32-step | 2 |" in md and "tiny (random weights)" in md
    assert rec["machine"]["cpu"]["cpus"] and "onnxruntime" in rec["machine"]


def test_bad_options_fail_before_work(cli, tmp_path: Path) -> None:
    r = cli("bench", "--preset", "tiny", "--runtimes", "torch,ort-fast", "--out-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "--runtimes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("bench", "--preset", "nope", "--out-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown preset" in r.stderr
    assert not (tmp_path / "o").exists()


def test_peak_rss_sees_an_allocation() -> None:
    """In a fresh process: inside a long test session freed-but-resident memory can be reused without the
    resident size growing, which no RSS measure can see (the bench runs each variant from a known level)."""
    code = ("import numpy as np\nfrom hrm_edge.bench.suite import PeakRss\nwith PeakRss() as mem:\n"
            "    a = np.ones(64 * 2**20 // 8)\n    a.sum()\n    del a\nprint(mem.delta_mb)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert float(out.stdout) >= 48  # 64 MB allocated and touched, freed before the block ends


def test_every_ort_variant_gets_its_runner_options(tmp_path: Path) -> None:
    """Each ORT variant's options reach its runner (an option the runner does not take used to break the row)."""
    from conftest import tiny_model

    from hrm_edge.bench.suite import VARIANTS, SuiteConfig, _runner

    model, cache, cfg = tiny_model("tiny"), {}, SuiteConfig(threads=1, calib_puzzles=1)
    for v in VARIANTS.values():
        if v.kind != "onnxruntime" or v.act != "step" or v.precision == "int8":
            continue
        r = _runner(model, v, tmp_path, cache, cfg, lambda _msg: None)
        assert all(getattr(r, k) == x for k, x in v.options), v.name
        with r:  # and it runs with them
            assert r.run_act(*_tokens(model)).logits.shape[0] == 1
    off = _runner(model, VARIANTS["ort-fp32-step-nofuse"], tmp_path, cache, cfg, lambda _msg: None)
    on = _runner(model, VARIANTS["ort-fp32-step"], tmp_path, cache, cfg, lambda _msg: None)
    with off, on:
        assert off.fused_kernels == 0 and on.fused_kernels > 0


def _tokens(model):  # type: ignore[no-untyped-def]
    from conftest import random_tokens

    return random_tokens(model, 1)
