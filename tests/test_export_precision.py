"""fp16 and int8 variants: they export, pass L1/L2, run in ONNX Runtime, and their agreement is measured.

fp16 / int8 are not gated on the fp32 tolerance (rounding differs by design); what must hold: finite
outputs, every weight present (fp16: the fp16-rounded value; int8: dequantizes within half a step),
smaller weights, and grid agreement with fp32 PyTorch reported. The floors asserted here are loose
sanity bounds for these tiny random models (fp16 >= 97% of cells, int8 >= 90%), not product claims.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from test_export_kit import tiny_model

from hrm_edge.export import export_model
from hrm_edge.export.onnx import ExportOptions, export_onnx
from hrm_edge.export.precision import fp32_islands, to_fp16


def _agreement(result) -> float:
    modes = result.manifest["parity"]["levels"]["L4"]["details"]["modes"]
    return min(s["cell_agreement"] for s in modes.values())


def _weight_bytes(path: Path) -> int:
    return sum(t.ByteSize() for t in onnx.load(str(path)).graph.initializer)


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_fp16_export(tmp_path: Path, name: str) -> None:
    m = tiny_model(name, canvas=30 if name == "tiny-lite" else 10)
    fp32 = export_model(m, tmp_path / "fp32", l3_batches=(2,), l4_puzzles=0)
    r = export_model(m, tmp_path / "fp16", act="loop", precision="fp16", l3_batches=(2,), l4_puzzles=3)
    man = r.manifest
    assert man["precision"] == "fp16" and man["target"] == "trt-8.5"
    assert man["targets"]["trt-8.5"]["ok"] and man["targets"]["trt-10"]["ok"]
    assert all(i["dtype"] in ("float32", "int32", "bool") for i in man["inputs"] + man["outputs"])  # fp32 I/O
    levels = man["parity"]["levels"]
    assert levels["L2"]["ok"] and not levels["L3"]["details"]["gated"]
    assert _agreement(r) >= 0.97
    assert man["precision_report"]["compared_with"].startswith("fp32") and "l4" in man["precision_report"]
    assert _weight_bytes(r.path / "model.onnx") < 0.75 * _weight_bytes(fp32.path / "model.onnx")


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_int8_export_for_cpu(tmp_path: Path, name: str) -> None:
    m = tiny_model(name, canvas=30 if name == "tiny-lite" else 10)
    r = export_model(m, tmp_path / "int8", precision="int8", l3_batches=(2,), l4_puzzles=3)
    man = r.manifest
    assert man["target"] == "ort" and man["targets"]["ort"]["ok"]
    blocked = man["targets"]["trt-8.5"]["blocking_ops"]
    assert not man["targets"]["trt-8.5"]["ok"] and ("MatMulInteger" in blocked or "DynamicQuantizeLinear" in blocked)
    assert "MatMulInteger" in man["onnx"]["op_types"]
    assert man["parity"]["levels"]["L2"]["ok"]
    assert _agreement(r) >= 0.90


def test_int8_cannot_claim_a_tensorrt_target(tmp_path: Path) -> None:
    from hrm_edge.export.parity import ParityError

    with pytest.raises(ParityError, match="L1"):
        export_model(tiny_model("tiny-lite"), tmp_path / "b", precision="int8", target="trt-10", l4_puzzles=0)
    assert not (tmp_path / "b").exists()


def test_fp32_islands_cover_norms_softmax_and_residuals() -> None:
    g = export_onnx(tiny_model("tiny"), ExportOptions(act="step")).model
    for n in g.graph.node:
        if not n.name:
            n.name = f"n{id(n)}"
    keep = fp32_islands(g.graph)
    by_name = {n.name: n for n in g.graph.node}
    kinds = {by_name[k].op_type for k in keep}
    assert {"Softmax", "ReduceMean", "Add", "Sqrt"} <= kinds
    assert "MatMul" not in kinds  # the bulk of the compute does go to fp16
    half = to_fp16(g)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
