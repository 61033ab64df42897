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


def test_engine_from_another_tensorrt_or_device_is_refused(tmp_path) -> None:
    sc = read_sidecar(_engine(tmp_path))
    assert sidecar_mismatch(sc, "10.3.0", "Orin") is None
    assert "TensorRT 10.3.0 but this is TensorRT 8.5.2" in sidecar_mismatch(sc, "8.5.2", "Orin")
    assert "rebuild" in sidecar_mismatch(sc, "10.3.0", "NVIDIA H100 80GB HBM3")


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
    with pytest.raises(HrmEdgeError, match="built on 'Orin' but this device is 'NVIDIA Jetson AGX Orin'"):
        r.activate()
    assert cuda.closed and r._state == {}


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is not None, reason="pycuda is installed here")
def test_missing_pycuda_is_a_clear_error(tmp_path) -> None:
    from types import SimpleNamespace

    r = TrtRunner.from_engine(_engine(tmp_path), trt_module=SimpleNamespace(__version__="10.3.0"))
    with pytest.raises(MissingDependencyError, match=r"pycuda is not installed \(`pip install 'hrm-edge\[jetson\]'`"):
        r.activate()
