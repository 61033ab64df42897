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

