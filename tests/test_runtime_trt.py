"""TensorRT runner: the CPU-checkable parts (sidecar, refusal to run a foreign engine, missing TRT).

Running an engine needs an NVIDIA GPU with TensorRT; that test skips with the reason where none is.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from hrm_edge.config import preset
from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.runtime.base import spec_from_config
from hrm_edge.runtime.tensorrt import TrtRunner, read_sidecar, sidecar_mismatch

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _engine(tmp_path, **over):
    eng = tmp_path / "model.engine"
    eng.write_bytes(b"not really an engine")
    spec = spec_from_config(preset("tiny"))
    sc = {"tensorrt_version": "10.3.0", "device_name": "Orin", "act_mode": "step", "precision": "fp16",
          "spec": spec.to_dict(),
          "inputs": [{"name": "tokens", "dtype": "int32", "shape": ["batch", 900]},
                     {"name": "halted", "dtype": "bool", "shape": ["batch"]}]}
    sc.update(over)
    (tmp_path / "model.engine.json").write_text(json.dumps(sc))
    return eng


def test_sidecar_is_required_and_read(tmp_path) -> None:
    eng = _engine(tmp_path)
    r = TrtRunner.from_engine(eng)
    assert r.spec.family == "act-v1" and r.act_mode == "step"
    assert set(r.input_metadata()) == {"tokens", "halted"}
    (tmp_path / "model.engine.json").unlink()
    with pytest.raises(HrmEdgeError, match="no sidecar"):
        read_sidecar(eng)
    with pytest.raises(HrmEdgeError, match="no such engine"):
        read_sidecar(tmp_path / "other.engine")


AGX = {"tensorrt_version": "10.3.0", "device_name": "Orin", "compute_capability": "8.7",
       "board": "NVIDIA Jetson AGX Orin Developer Kit", "l4t": "36.4.3"}


def test_engine_from_another_tensorrt_or_device_is_refused(tmp_path) -> None:
    sc = read_sidecar(_engine(tmp_path))
    assert sidecar_mismatch(sc, {"tensorrt_version": "10.3.0", "device_name": "Orin"}) is None
    assert "TensorRT '10.3.0' but this is TensorRT '8.5.2'" in sidecar_mismatch(
        sc, {"tensorrt_version": "8.5.2", "device_name": "Orin"})
    assert "rebuild" in sidecar_mismatch(sc, {"tensorrt_version": "10.3.0", "device_name": "NVIDIA H100 80GB HBM3"})


@pytest.mark.parametrize("key,here,word", [
    ("board", "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "board"),
    ("compute_capability", "8.6", "compute capability"),
    ("l4t", "36.3.0", "L4T"),
    ("tensorrt_version", "10.3.0.30", "TensorRT")])
def test_every_orin_is_orin_so_board_cc_and_l4t_are_compared(tmp_path, key, here, word) -> None:
    """An AGX Orin engine on an Orin Nano passes a device-name check ("Orin" on both); the board does not."""
    sc = read_sidecar(_engine(tmp_path, **AGX))
    assert sidecar_mismatch(sc, dict(AGX)) is None
    why = sidecar_mismatch(sc, {**AGX, key: here})
    assert why.startswith(f"engine was built for {word} {AGX[key]!r} but this is {word} {here!r}")
    assert "rebuild it here with `hrm-edge build-engine`" in why
    assert sidecar_mismatch(sc, {**AGX, key: None}) is None  # unknown here (off a Jetson): not compared


def test_an_engine_from_another_onnx_than_its_bundle_is_refused(tmp_path) -> None:
    eng = _engine(tmp_path, onnx_sha256="a" * 64)
    (tmp_path / "manifest.json").write_text(json.dumps({"onnx": {"sha256": "b" * 64}}))
    with pytest.raises(HrmEdgeError, match=r"built from another model.onnx \(sha256 aaaaaaaaaaaa...\)"):
        TrtRunner.from_engine(eng)
    (tmp_path / "manifest.json").write_text(json.dumps({"onnx": {"sha256": "a" * 64}}))
    assert TrtRunner.from_engine(eng).sidecar["onnx_sha256"] == "a" * 64


def test_a_cached_engine_finds_its_bundle_through_the_sidecar(tmp_path) -> None:
    from hrm_edge.runtime.tensorrt import engine_bundle_dir

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"onnx": {"sha256": "b" * 64}}))
    cache = tmp_path / "cache"
    cache.mkdir()
    eng = _engine(cache, onnx_sha256="a" * 64, bundle=str(bundle))
    assert engine_bundle_dir(eng, read_sidecar(eng)) == bundle
    with pytest.raises(HrmEdgeError, match="built from another model.onnx"):
        TrtRunner.from_engine(eng)


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here; this checks the message when it is not")
def test_missing_tensorrt_is_a_clear_error(tmp_path) -> None:
    r = TrtRunner.from_engine(_engine(tmp_path))
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        r.activate()



class _Cuda:
    """Records whether the runner gave its CUDA context back."""

    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def device_name(self) -> str:
        return self.name

    def close(self) -> None:
        self.closed = True


def test_foreign_device_is_refused_and_the_context_freed(tmp_path) -> None:
    from types import SimpleNamespace

    cuda = _Cuda("NVIDIA Jetson AGX Orin")
    r = TrtRunner.from_engine(_engine(tmp_path), trt_module=SimpleNamespace(__version__="10.3.0"),
                              cuda_factory=lambda: cuda)
    with pytest.raises(HrmEdgeError, match="built for device 'Orin' but this is device 'NVIDIA Jetson AGX Orin'"):
        r.activate()
    assert cuda.closed and r._state == {}


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is not None, reason="pycuda is installed here")
def test_missing_pycuda_is_a_clear_error(tmp_path) -> None:
    from types import SimpleNamespace

    r = TrtRunner.from_engine(_engine(tmp_path), trt_module=SimpleNamespace(__version__="10.3.0"))
    with pytest.raises(MissingDependencyError, match=r"pycuda is not installed \(`pip install 'hrm-edge\[jetson\]'`"):
        r.activate()
