"""The engine cache on the CPU: options from the bundle, the key, build-once-then-load, the command entry points.

The TensorRT side of a cached build (real bindings, CLI end to end) is in test_trt_conformance.py
(`test_cli_trt_builds_on_first_use_then_loads_from_the_cache`); here `build_engine` is replaced by a stand-in
that writes an engine + sidecar, so the cache logic itself is checked without TensorRT.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from _qdq_bundle import make_bundle

from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime import engine_cache as ec

HERE = {"tensorrt_version": "10.3.0", "device_name": "Orin", "compute_capability": "8.7",
        "board": "NVIDIA Jetson AGX Orin Developer Kit", "l4t": "36.4.3"}


def test_options_follow_the_bundle_precision_and_the_profile(tmp_path) -> None:
    for kind, precision in (("fp32", "fp32"), ("qdq", "int8")):
        m = json.loads((make_bundle(tmp_path / kind, kind) / "manifest.json").read_text())
        thr = ec.engine_options(m, "throughput", 32, None)
        assert (thr.min_batch, thr.opt, thr.max_batch) == (1, 32, 32) and thr.precision == precision
        lat = ec.engine_options(m, "latency", 32, None)
        assert (lat.min_batch, lat.opt, lat.max_batch) == (1, 1, 1)
    assert ec.engine_options({"precision": "fp16"}, "throughput", 4, None).fp16
    fixed = ec.engine_options({"precision": "fp32", "batch": 8}, "latency", 32, None)
    assert (fixed.min_batch, fixed.max_batch) == (8, 8)  # a fixed-batch export has one shape
    with pytest.raises(HrmEdgeError, match="dynamic int8"):
        ec.engine_options({"precision": "int8"}, "throughput", 4, None)
    with pytest.raises(HrmEdgeError, match="--trt-profile must be one of throughput, latency"):
        ec.engine_options({"precision": "fp32"}, "fast", 4, None)


def test_the_key_changes_with_everything_an_engine_depends_on() -> None:
    opts = ec.engine_options({"precision": "fp32"}, "throughput", 16, None)
    base = ec.cache_key("a" * 64, HERE, opts, "weak")
    folders = {ec.key_folder(base)}
    variants = [ec.cache_key("b" * 64, HERE, opts, "weak"), ec.cache_key("a" * 64, HERE, opts, "strong"),
                ec.cache_key("a" * 64, HERE, ec.engine_options({"precision": "fp32"}, "latency", 16, None), "weak"),
                ec.cache_key("a" * 64, HERE, ec.engine_options({"precision": "fp16"}, "throughput", 16, None), "weak")]
    variants += [ec.cache_key("a" * 64, {**HERE, k: "other"}, opts, "weak") for k in HERE]
    for v in variants:
        folders.add(ec.key_folder(v))
    assert len(folders) == 1 + len(variants)
    assert ec.key_folder(base) == ec.key_folder(ec.cache_key("a" * 64, dict(HERE), opts, "weak"))
    assert ec.key_folder(base).startswith("fp32-b1-16-")


class _Cuda:
    closed = 0

    def device_name(self) -> str:
        return HERE["device_name"]

    def compute_capability(self) -> str:
        return HERE["compute_capability"]

    def close(self) -> None:
        _Cuda.closed += 1


def test_built_on_first_use_then_loaded(tmp_path, monkeypatch) -> None:
    from hrm_edge.runtime import jetson_info, trt_build

    bundle = make_bundle(tmp_path / "b", "fp32")
    builds: list[tuple[Path, object]] = []

    def fake_build(b, out, opts, *, trt, cuda, say):
        builds.append((Path(out), opts))
        Path(out).write_bytes(b"PLAN")
        Path(str(out) + ".json").write_text(json.dumps({"onnx_sha256": "toy"}))
        cuda.close()

    monkeypatch.setattr(trt_build, "build_engine", fake_build)
    monkeypatch.setattr(jetson_info, "jetson_facts", lambda: {"board": HERE["board"], "l4t": HERE["l4t"]})
    trt = SimpleNamespace(__version__="10.3.0")
    said: list[str] = []
    kw = {"trt": trt, "cuda_factory": _Cuda, "root": tmp_path / "cache", "say": said.append}
    first = ec.cached_engine(bundle, batch=8, **kw)
    again = ec.cached_engine(bundle, batch=8, **kw)
    assert first == again and len(builds) == 1 and _Cuda.closed == 2
    assert builds[0][1].max_batch == 8 and builds[0][1].timing_cache.name == "timing-10.3.0_Orin.cache"
    assert json.loads((first.parent / "key.json").read_text())["profile"] == [1, 8, 8]
    assert any("building" in s for s in said) and said[-1].startswith(f"engine cache: {first}")
    other = ec.cached_engine(bundle, batch=8, profile="latency", **kw)
    assert other != first and len(builds) == 2
    monkeypatch.setattr(jetson_info, "jetson_facts", lambda: {"board": "NVIDIA Jetson Orin Nano Developer Kit",
                                                              "l4t": HERE["l4t"]})
    nano = ec.cached_engine(bundle, batch=8, **kw)  # another board: another entry, never the AGX Orin's engine
    assert nano not in (first, other) and len(builds) == 3


def test_command_entry_points(tmp_path) -> None:
    assert ec.cached_engines([tmp_path], False, batch=4) == []
    with pytest.raises(HrmEdgeError, match="give at least one --bundle"):
        ec.cached_engines(None, True, batch=4)
    with pytest.raises(HrmEdgeError, match="--trt-profile must be one of"):
        ec.cached_engines(None, False, batch=4, profile="turbo")
    assert ec.solve_artifacts(tmp_path, None, False, batch=4) == (tmp_path, None)
    with pytest.raises(HrmEdgeError, match="give --bundle and no --engine"):
        ec.solve_artifacts(tmp_path, tmp_path / "e.engine", True, batch=4)
    with pytest.raises(HrmEdgeError, match="no such export bundle"):
        ec.solve_artifacts(tmp_path / "missing", None, True, batch=4)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HRM_EDGE_ENGINE_CACHE", str(tmp_path / "c"))
    assert ec.cache_root() == tmp_path / "c"
    monkeypatch.delenv("HRM_EDGE_ENGINE_CACHE")
    assert ec.cache_root() == Path.home() / ".cache" / "hrm-edge" / "engines"
