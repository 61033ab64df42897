"""`--threads N` reaches each runtime's thread pool (the settings, not timings: those are in the report).

torch has one process-wide intra-op pool (torch.set_num_threads); ONNX Runtime takes its intra-op
thread count per session (SessionOptions.intra_op_num_threads, 0 = its default of one per core).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from conftest import small_checkpoint
from onnx import TensorProto, helper

from hrm_edge.config import preset
from hrm_edge.runtime.base import spec_from_config
from hrm_edge.runtime.onnxruntime import OrtRunner
from hrm_edge.solve.runners import open_runtime


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 3])
def test_torch_runtime_sets_its_intra_op_threads(threads: int, tmp_path: Path, restore_torch_threads) -> None:
    torch.set_num_threads(2)
    open_runtime("torch", small_checkpoint(tmp_path / "t.pt"), device="cpu", threads=threads)
    assert torch.get_num_threads() == threads


def _identity_bundle(folder: Path) -> OrtRunner:
    """The smallest bundle an OrtRunner opens: an Identity graph and the manifest fields activate() reads."""
    folder.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
    manifest = {"onnx": {"file": "model.onnx"}, "inputs": [{"name": "x"}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return OrtRunner(spec=spec_from_config(preset("tiny")), bundle=str(folder), manifest=manifest)


@pytest.mark.parametrize("threads, expected", [(None, 0), (1, 1), (2, 2)])
def test_onnxruntime_session_gets_the_threads(threads: int | None, expected: int, tmp_path: Path) -> None:
    runner = _identity_bundle(tmp_path / "b")
    runner.threads = threads
    runner.activate()
    try:
        assert runner._session.get_session_options().intra_op_num_threads == expected
    finally:
        runner.deactivate()


@pytest.mark.parametrize("spinning, expected", [(None, "0"), (False, "0"), (True, "1")])
def test_onnxruntime_threads_sleep_by_default(spinning: bool | None, expected: str, tmp_path: Path) -> None:
    """ORT's intra-op spinning is off unless asked for (benchmarks/threads: spinning threads stall a busy CPU)."""
    runner = _identity_bundle(tmp_path / "b")
    runner.spinning = spinning
    runner.activate()
    try:
        got = runner._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        assert got == expected
    finally:
        runner.deactivate()


@pytest.mark.parametrize("env, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_cli_sets_openmp_waiting_before_torch_loads(env: str | None, expected: str) -> None:
    """The console script's module sets OMP_WAIT_POLICY (unless the user did) before torch is imported, since
    libgomp reads it once when it loads; with it unset, 2 threads on a loaded 2-core machine ran 8-35x slower."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env:
        environ["OMP_WAIT_POLICY"] = env
    code = "import os, sys, hrm_edge.cli; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
    assert out.stdout.split() == [expected, "False"]
