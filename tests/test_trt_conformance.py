"""hrm-edge's TensorRT code against the REAL TensorRT 10.3 and 8.6 Python APIs, on a CPU.

API conformance, not execution: the real bindings are imported over stub libraries (tests/_trt_real.py),
and every TensorRT object the code touches is a double spec'd from the real class that checks each call
against the real pybind signatures (tests/_trt_doubles.py). A misspelt, removed or wrongly called API
fails here; whether TensorRT builds a good engine is for the GPU test at the bottom (skips without one).
Skips only when the wheels cannot be downloaded (no network) or there is no C compiler.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import _trt_real
import numpy as np
import pytest
import torch

from hrm_edge.config import preset
from hrm_edge.model import build_model

VERSIONS = ["10.3", "8.6"]


@pytest.fixture(scope="module", params=VERSIONS)
def real(request) -> _trt_real.RealTrt:
    got = _trt_real.prepare(request.param)
    if isinstance(got, str):
        pytest.skip(got)
    return got


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny ACT v1 step bundle whose Q head makes samples halt at different segments (adaptive)."""
    from hrm_edge.export import export_model

    torch.manual_seed(0)
    model = build_model(preset("tiny"), seed=0)
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.3)
        model.q_head.bias.zero_()
    out = tmp_path_factory.mktemp("b") / "tiny-step"
    export_model(model, out, act="step", puzzle_dtype="float32", l4_puzzles=2)
    return out


def _build(real, bundle: Path, tmp_path: Path, *extra: str, **opts) -> dict:
    return real.run("_trt_doubles.py", "build", str(bundle), str(tmp_path / "model.engine"), json.dumps(opts), *extra)


# --------------------------------------------------------------------------------------------------
# 1. names and signatures
# --------------------------------------------------------------------------------------------------
def test_every_trt_name_the_code_uses_exists(real) -> None:
    got = real.run("_trt_doubles.py", "names")
    assert got["version"].startswith(real.version)
    assert got["missing"] == []
    # the scan really sees the code (an empty scan would pass vacuously)
    assert {"MemoryPoolType.WORKSPACE", "TensorIOMode.INPUT", "OnnxParser", "Logger.WARNING"} <= set(got["names"])


# --------------------------------------------------------------------------------------------------
# 2. build-engine end to end against spec'd doubles
# --------------------------------------------------------------------------------------------------
def test_fp16_build_records_flags_profile_pool_cache_and_fp32_norms(real, bundle, tmp_path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"OLD")
    got = _build(real, bundle, tmp_path, fp16=True, workspace_mb=512, timing_cache=str(cache), min_batch=1,
                 opt_batch=4, max_batch=8, builder_level=4)
    assert "error" not in got, got.get("traceback") or got["error"]
    cfg = got["config"]
    assert cfg["problems"] == []
    assert cfg["flags"] == ["BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS"]
    assert cfg["memory_pool"] == [["MemoryPoolType.WORKSPACE", 512 << 20]]
    assert cfg["network_flags"] == ([[0]] if real.version == "10.3" else [[1]])  # 1 << EXPLICIT_BATCH on 8.x
    assert cfg["profiles_added"] == 1
    prof = {p[0]: p[1:] for p in cfg["profile"]}
    assert set(prof) == {"tokens", "puzzle_emb", "z_H", "z_L", "halted"}
    assert prof["tokens"] == [[1, 900], [4, 900], [8, 900]]
    assert prof["z_H"] == [[1, 901, 32], [4, 901, 32], [8, 901, 32]]
    # the timing cache was read from the file, attached, and written back
    assert got["timing_cache_read"] == "OLD"
    assert [m for m, _ in cfg["timing_cache"]] == ["create_timing_cache", "set_timing_cache", "get_timing_cache",
                                                    "serialize"]
    assert cache.read_bytes() == b"TIMING-CACHE-v2:OLD"
    # builder optimization level set on both 8.6 and 10.3
    assert ["IBuilderConfig", "builder_optimization_level", 4, None] in cfg["sets"]
    # norms, softmax and reductions pinned to fp32, with their outputs
    pinned = cfg["precision_layers"]
    for must in ("/L_level/layers.0/ReduceMean", "/L_level/layers.0/Sqrt", "/L_level/layers.0/Mul_1",
                 "/H_level/layers.0/self_attn/Softmax"):
        assert must in pinned
    assert not [p for p in pinned if "MatMul" in p or "Gather" in p]  # the heavy layers stay free for fp16
    assert len(cfg["output_types"]) == len(pinned)
    assert set(got["sidecar"]["fp32_layers"]) == set(pinned)
    assert got["cuda_closed"] is True


def test_sidecar_and_trtexec_line(real, bundle, tmp_path) -> None:
    got = _build(real, bundle, tmp_path, fp16=True, max_batch=4)
    sc = got["sidecar"]
    assert sc["tensorrt_version"].startswith(real.version)
    assert sc["device_name"] == "Orin (double)" and sc["compute_capability"] == "8.7"
    assert sc["precision"] == "fp16" and sc["act_mode"] == "step"
    assert sc["profiles"][0]["max"] == [4, 900]
    manifest = json.loads((bundle / "manifest.json").read_text())
    import hashlib

    assert sc["bundle_manifest_sha256"] == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert sc["onnx_sha256"] == manifest["onnx"]["sha256"]
    assert sc["inputs"] == manifest["inputs"] and sc["spec"] == manifest["spec"]
    assert {"l4t", "jetpack", "board", "build_seconds"} <= set(sc)
    cmd = sc["trtexec"]
    assert cmd.startswith("trtexec --onnx=") and "--fp16" in cmd and "--precisionConstraints=obey" in cmd
    assert "--maxShapes=tokens:4x900,puzzle_emb:4x32,z_H:4x901x32" in cmd
    assert (tmp_path / "model.engine").read_bytes() == b"PLAN"
    assert json.loads((tmp_path / "model.engine.json").read_text()) == sc


def test_fp32_build_sets_no_precision_flags(real, bundle, tmp_path) -> None:
    cfg = _build(real, bundle, tmp_path, max_batch=2)["config"]
    assert cfg["problems"] == [] and cfg["flags"] == [] and cfg["precision_layers"] == []
    assert cfg["memory_pool"] == [] and cfg["timing_cache"] == []


def test_dla_build(real, bundle, tmp_path) -> None:
    got = _build(real, bundle, tmp_path, fp16=True, dla=1, gpu_fallback=True)
    cfg = got["config"]
    assert cfg["problems"] == [], cfg["problems"]
    assert "BuilderFlag.GPU_FALLBACK" in cfg["flags"]
    assert ["IBuilderConfig", "default_device_type", "DeviceType.DLA", None] in cfg["sets"]
    assert ["IBuilderConfig", "DLA_core", 1, None] in cfg["sets"]
    nano = _build(real, bundle, tmp_path, "--dla-cores", "0", fp16=True, dla=0)
    assert "has 0 DLA cores" in nano["error"] and nano["cuda_closed"]


def test_parser_errors_name_the_node(real, bundle, tmp_path) -> None:
    got = _build(real, bundle, tmp_path, "--parse-fails", fp16=True)
    import onnx

    first = onnx.load(str(bundle / "model.onnx"), load_external_data=False).graph.node[0].name
    assert "TensorRT cannot parse the model" in got["error"]
    assert f"node {first}" in got["error"] and "unsupported operator" in got["error"]
    assert got["config"]["problems"] == []
    assert not (tmp_path / "model.engine").exists()


def test_int8_build_of_a_qdq_bundle(real, tmp_path) -> None:
    from _qdq_bundle import make_bundle

    qdq = make_bundle(tmp_path / "qdq", "qdq")
    got = real.run("_trt_doubles.py", "build", str(qdq), str(tmp_path / "q.engine"), json.dumps({"int8": True}))
    assert "error" not in got, got.get("traceback") or got["error"]
    cfg = got["config"]
    assert cfg["problems"] == [] and cfg["flags"] == ["BuilderFlag.INT8"] and cfg["precision_layers"] == []
    assert cfg["profile"] == [["x", [1, 8], [16, 8], [16, 8]]]
    assert got["sidecar"]["precision"] == "int8" and "--int8" in got["sidecar"]["trtexec"]


def test_tensorrt_85_gets_no_builder_level(bundle, tmp_path) -> None:
    """8.5 (JetPack 5) is the 8.6 API without builder_optimization_level: the code must not touch it."""
    real = _trt_real.prepare("8.6")
    if isinstance(real, str):
        pytest.skip(real)
    got = _build(real, bundle, tmp_path, "--as-8.5", fp16=True, builder_level=3)
    assert "error" not in got, got.get("traceback") or got["error"]
    assert got["config"]["problems"] == []
    assert got["sidecar"]["builder_level_applied"] is False
    assert not [s for s in got["config"]["sets"] if s[1] == "builder_optimization_level"]


# --------------------------------------------------------------------------------------------------
# the runner: device-resident carry, against spec'd doubles whose "execution" is ONNX Runtime
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(real, bundle, tmp_path_factory) -> Path:
    """An engine + sidecar written by build-engine under the doubles (the plan bytes are a placeholder)."""
    folder = tmp_path_factory.mktemp(f"engine{real.version}")
    built = _build(real, bundle, folder, max_batch=8)
    assert "error" not in built, built
    return folder / "model.engine"


@pytest.mark.parametrize("graph", [False, True], ids=["plain", "cuda-graph"])
def test_runner_matches_onnxruntime_with_carry_on_device(real, bundle, engine, tmp_path, graph) -> None:
    from hrm_edge.bench.inputs import synthetic_batches

    np.save(tmp_path / "tokens.npy", synthetic_batches(6, 6, 30, 0, seed=3)[0].tokens)
    args = ["run", str(engine), str(bundle), str(tmp_path / "tokens.npy"), "adaptive"]
    got = real.run("_trt_doubles.py", *args, *(["--cuda-graph"] if graph else []))
    assert got["problems"] == []
    assert got["steps"] == got["ref_steps"] and len(set(got["steps"])) > 1  # samples halt at different segments
    assert got["grids_equal"] and got["second_equal"]
    assert got["max_logit_diff"] < 1e-5 and got["q_halt_diff"] < 1e-5  # same ORT session both sides
    # the carry never came back: per batch, logits once per sample plus 8 bytes of q values per sample-step
    steps = max(got["steps"])
    per_batch = got["logits_bytes_per_sample"] * 6 + steps * 6 * 8
    assert got["dtoh_bytes"] == 2 * per_batch
    assert got["executions"] == 2 * steps
    assert got["graph_launches"] == (2 * (steps - 1) if graph else 0)
    assert got["closed"] and got["live_allocations"] == 0


# --------------------------------------------------------------------------------------------------
# on a real GPU with TensorRT (skips here: no machine of this project has one)
# --------------------------------------------------------------------------------------------------
def _gpu_reason() -> str | None:
    for mod in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(mod) is None:
            return f"needs an NVIDIA GPU with TensorRT and pycuda (`{mod}` is not installed here)"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))
def test_gpu_engine_matches_onnxruntime(bundle, tmp_path) -> None:
    """fp32 engine within fp32 parity of ONNX Runtime (atol 1e-3 on logits, identical grids and halting)."""
    from hrm_edge.bench.inputs import synthetic_batches
    from hrm_edge.runtime.onnxruntime import OrtRunner
    from hrm_edge.runtime.tensorrt import TrtRunner
    from hrm_edge.runtime.trt_build import EngineOptions, build_engine

    engine = tmp_path / "model.engine"
    build_engine(bundle, engine, EngineOptions(max_batch=8), say=print)
    tokens = synthetic_batches(6, 6, 30, 0, seed=3)[0].tokens
    with OrtRunner.from_bundle(bundle) as ort_r:
        ref = ort_r.run_act(tokens, None, halt="adaptive")
    for graph in (False, True):
        with TrtRunner.from_engine(engine, cuda_graph=graph) as r:
            got = r.run_act(tokens, None, halt="adaptive")
        assert (got.steps == ref.steps).all()
        assert (got.predictions == ref.predictions).all()
        assert np.abs(got.logits - ref.logits).max() < 1e-3


@pytest.fixture(scope="module")
def loop_engine(real, tmp_path_factory) -> tuple[Path, Path]:
    """A `loop` bundle (ONNX Loop with early exit, adaptive halting baked in) and its engine."""
    from hrm_edge.export import export_model

    torch.manual_seed(0)
    model = build_model(preset("tiny"), seed=0)
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.3)
        model.q_head.bias.zero_()
    folder = tmp_path_factory.mktemp(f"loop{real.version}")
    export_model(model, folder / "tiny-loop", act="loop", halt="adaptive", puzzle_dtype="float32", l4_puzzles=1)
    built = _build(real, folder / "tiny-loop", folder, max_batch=8)
    assert "error" not in built and built["config"]["problems"] == [], built
    return folder / "tiny-loop", folder / "model.engine"


def test_runner_host_path_for_a_loop_engine(real, loop_engine, tmp_path) -> None:
    """unrolled/loop engines run in one call with host inputs and outputs (`TrtRunner._infer`)."""
    from hrm_edge.bench.inputs import synthetic_batches

    bundle, engine = loop_engine
    np.save(tmp_path / "tokens.npy", synthetic_batches(6, 6, 30, 0, seed=3)[0].tokens)
    got = real.run("_trt_doubles.py", "run", str(engine), str(bundle), str(tmp_path / "tokens.npy"), "adaptive")
    assert got["problems"] == []
    assert got["steps"] == got["ref_steps"] and got["grids_equal"] and got["second_equal"]
    assert got["executions"] == 2 and got["graph_launches"] == 0
    assert got["closed"] and got["live_allocations"] == 0
