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
