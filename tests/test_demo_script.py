"""`make path-demo`'s script (scripts/random_model_path.sh) end to end, reduced by its environment:
DEMO_TASKS = the session's three small ARC tasks (instead of arc-agi-1/evaluation), DEMO_OUT = a
temporary folder. `hrm-edge` on PATH is this checkout's CLI. The script must exit 0, find the PyTorch and
ONNX Runtime submissions identical (it exits 1 otherwise) and leave the artifacts it announces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_demo_script_reduced(tasks_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "hrm-edge"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m hrm_edge.cli "$@"\n')
    shim.chmod(0o755)
    out = tmp_path / "demo_out"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", DEMO_OUT=str(out),
               DEMO_TASKS=str(tasks_dir), OMP_NUM_THREADS="1")  # tiny model: one thread is fastest
    script = ROOT / "scripts" / "random_model_path.sh"
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                       timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "submissions from PyTorch and ONNX Runtime are identical" in p.stdout
    assert (out / "submission_torch.json").read_bytes() == (out / "submission_ort.json").read_bytes()
    assert len(json.loads((out / "submission_torch.json").read_text())) == 3
    assert json.loads((out / "tiny-step" / "manifest.json").read_text())["parity"]["ok"]
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok", "unavailable"]
    assert rows[1]["grid_match_pct"] == 100.0
    assert (out / "compare.md").exists() and (out / "compare.png").stat().st_size > 1000
