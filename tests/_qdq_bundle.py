"""Small hand-made export bundles for build-engine's input checks (no PyTorch, no parity run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hrm_edge.config import preset
from hrm_edge.fileio import file_sha256
from hrm_edge.runtime.base import spec_from_config


def _graph(kind: str) -> onnx.ModelProto:
    """tokens-free toy graph x[batch, 8] -> y: with Q/DQ ("qdq"), ORT dynamic int8 ("ort-int8"), or plain fp32."""
    w = numpy_helper.from_array(np.full((8, 4), 0.5, np.float32), "w")
    inits = [w]
    if kind == "qdq":
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "zp")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="/q/QuantizeLinear"),
                 helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="/q/DequantizeLinear"),
                 helper.make_node("MatMul", ["xd", "w"], ["y"], name="/out/MatMul")]
    elif kind == "ort-int8":
        inits = [numpy_helper.from_array(np.ones((8, 4), np.uint8), "wq"),
                 numpy_helper.from_array(np.array(0, np.uint8), "wzp")]
        nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"], name="/q/DQL"),
                 helper.make_node("MatMulInteger", ["xq", "wq", "xzp", "wzp"], ["yi"], name="/out/MMI"),
                 helper.make_node("Cast", ["yi"], ["y"], name="/out/Cast", to=TensorProto.FLOAT)]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="/out/MatMul")]
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def make_bundle(folder: Path, kind: str = "qdq", batch: int | str = "dynamic") -> Path:
    """A bundle folder whose manifest has every field build-engine reads."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(kind), str(folder / "model.onnx"))
    manifest = {"format": "hrm-edge-bundle", "format_version": 1, "spec": spec_from_config(preset("tiny")).to_dict(),
                "act": {"mode": "step", "halt": None},
                "precision": {"qdq": "int8-qdq", "ort-int8": "int8"}.get(kind, kind),
                "batch": batch, "onnx": {"file": "model.onnx", "sha256": file_sha256(folder / "model.onnx")},
                "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 8]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 4]}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
