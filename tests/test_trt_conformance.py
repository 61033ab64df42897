"""hrm-edge's TensorRT code against the REAL TensorRT 11.4, 10.3 and 8.6 Python APIs (and 8.5 as modelled), on a CPU.

API conformance, not execution: the real bindings are imported over stub libraries (tests/_trt_real.py),
and every TensorRT object the code touches is a double spec'd from the real class that checks each call
against the real pybind signatures (tests/_trt_doubles.py). A misspelt, removed or wrongly called API
fails here, and so does any name 11.x removed (weak typing: `BuilderFlag.FP16`, `platform_has_fast_fp16`,
`ILayer.precision`, `set_output_type`) reached on 11.4, since its doubles are spec'd from 11.4's own classes.
Whether TensorRT builds a good engine is for the GPU test at the bottom (skips without one) and for
jetson/check.sh on a device. Skips only when the wheels cannot be downloaded (no network) or there is no
C compiler.
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

VERSIONS = _trt_real.VERSIONS
STRONG_FLAG = {"11.4": 1 << 0, "10.3": 1 << 1}  # 1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED (0 in 11, 1 in 10)


@pytest.fixture(scope="module", params=VERSIONS)
def real(request) -> _trt_real.RealTrt:
    return _trt_real.require(request.param)


def _tiny(seed_q: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(preset("tiny"), seed=0)
    if seed_q:
        with torch.no_grad():
            model.q_head.weight.normal_(0, 0.3)
            model.q_head.bias.zero_()
    return model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny ACT v1 step bundle whose Q head makes samples halt at different segments (adaptive)."""
    from hrm_edge.export import export_model

    out = tmp_path_factory.mktemp("b") / "tiny-step"
    export_model(_tiny(), out, act="step", puzzle_dtype="float32", l4_puzzles=2)
    return out


@pytest.fixture(scope="module")
def fp16_bundle(tmp_path_factory) -> Path:
    """The same model exported --precision fp16: what a strongly typed fp16 engine is built from."""
    from hrm_edge.export import export_model

    out = tmp_path_factory.mktemp("b16") / "tiny-step-fp16"
    export_model(_tiny(), out, act="step", precision="fp16", puzzle_dtype="float32", l4_puzzles=2)
    return out


def _build(real, bundle: Path, tmp_path: Path, *extra: str, **opts) -> dict:
    return real.run("_trt_doubles.py", "build", str(bundle), str(tmp_path / "model.engine"), json.dumps(opts), *extra)


def _ok(got: dict) -> dict:
    assert "error" not in got, got.get("traceback") or got["error"]
    assert got["config"]["problems"] == [], got["config"]["problems"]
    return got


# --------------------------------------------------------------------------------------------------
# 1. names and signatures
# --------------------------------------------------------------------------------------------------
def test_every_trt_name_the_code_uses_exists(real) -> None:
    got = real.run("_trt_doubles.py", "names")
    assert got["version"].startswith(real.version)
    assert got["missing"] == []
    # the scan really sees the code (an empty scan would pass vacuously)
    assert {"MemoryPoolType.WORKSPACE", "TensorIOMode.INPUT", "OnnxParser", "Logger.WARNING",
            "BuilderFlag.TF32"} <= set(got["names"])


# --------------------------------------------------------------------------------------------------
# 2. weakly typed builds (8.5, 8.6, 10.x)
# --------------------------------------------------------------------------------------------------
def test_fp16_build_records_flags_profile_pool_cache_and_fp32_norms(real, bundle, tmp_path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"OLD")
    got = _build(real, bundle, tmp_path, fp16=True, workspace_mb=512, timing_cache=str(cache), min_batch=1,
                 opt_batch=4, max_batch=8, builder_level=4)
    if real.version == "11.4":  # strongly typed only: --fp16 is a check against the bundle, which is fp32
        assert "export with --precision fp16" in got["error"] and got["config"]["problems"] == []
        assert not (tmp_path / "model.engine").exists()
        return
    cfg = _ok(got)["config"]
    assert cfg["flags"] == ["BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS"]
    assert cfg["cleared"] == []  # TF32 is cleared for fp32 engines only
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
    assert ["IBuilderConfig", "builder_optimization_level", 4, None] in cfg["sets"]
    # norms, softmax and reductions pinned to fp32, with their outputs
    pinned = cfg["precision_layers"]
    for must in ("/L_level/layers.0/ReduceMean", "/L_level/layers.0/Sqrt", "/L_level/layers.0/Mul_1",
                 "/H_level/layers.0/self_attn/Softmax"):
        assert must in pinned
    assert not [p for p in pinned if "MatMul" in p or "Gather" in p]  # the heavy layers stay free for fp16
    assert len(cfg["output_types"]) == len(pinned)
    assert set(got["sidecar"]["fp32_layers"]) == set(pinned)
    assert got["sidecar"]["typing"] == "weak" and got["sidecar"]["precision"] == "fp16"
    assert got["cuda_closed"] is True


def test_sidecar_and_trtexec_line(real, bundle, fp16_bundle, tmp_path) -> None:
    strong = real.version == "11.4"
    src = fp16_bundle if strong else bundle
    got = _ok(_build(real, src, tmp_path, fp16=True, max_batch=4, builder_level=2))
    sc = got["sidecar"]
    assert sc["tensorrt_version"].startswith(real.version)
    assert sc["device_name"] == "Orin (double)" and sc["compute_capability"] == "8.7"
    assert sc["precision"] == "fp16" and sc["act_mode"] == "step"
    assert sc["profiles"][0]["max"] == [4, 900]
    manifest = json.loads((src / "manifest.json").read_text())
    import hashlib

    assert sc["bundle_manifest_sha256"] == hashlib.sha256((src / "manifest.json").read_bytes()).hexdigest()
    assert sc["onnx_sha256"] == manifest["onnx"]["sha256"]
    assert sc["inputs"] == manifest["inputs"] and sc["spec"] == manifest["spec"]
    assert {"l4t", "jetpack", "board", "build_seconds", "typing"} <= set(sc)
    cmd = sc["trtexec"]
    assert cmd.startswith("trtexec --onnx=") and "--maxShapes=tokens:4x900,puzzle_emb:4x32,z_H:4x901x32" in cmd
    if strong:  # trtexec 11 is strongly typed only: neither --fp16 nor --stronglyTyped (a no-op there)
        assert "--fp16" not in cmd and "--precisionConstraints" not in cmd and "--stronglyTyped" not in cmd
    else:
        assert "--fp16" in cmd and "--precisionConstraints=obey" in cmd
    assert "--builderOptimizationLevel=2" in cmd and "--noTF32" not in cmd
    assert (tmp_path / "model.engine").read_bytes() == b"PLAN"
    assert json.loads((tmp_path / "model.engine.json").read_text()) == sc


def test_fp32_build_clears_tf32_and_sets_no_precision_flags(real, bundle, tmp_path) -> None:
    got = _ok(_build(real, bundle, tmp_path, max_batch=2))
    cfg = got["config"]
    assert cfg["flags"] == [] and cfg["precision_layers"] == [] and cfg["output_types"] == []
    assert cfg["cleared"] == ["BuilderFlag.TF32"]
    assert cfg["memory_pool"] == [] and cfg["timing_cache"] == []  # a discrete GPU: TensorRT's own workspace
    # 11.x: strongly typed; 10.x: explicit batch implied (0); 8.x: 1 << EXPLICIT_BATCH
    assert cfg["network_flags"] == [[{"11.4": STRONG_FLAG["11.4"], "10.3": 0, "8.6": 1}[real.version]]]
    sc = got["sidecar"]
    assert sc["precision"] == "fp32" and sc["tf32"] is False and "--noTF32" in sc["trtexec"]
    assert sc["typing"] == ("strong" if real.version == "11.4" else "weak")


def test_jetson_workspace_is_sized_from_the_board_memory(bundle, tmp_path) -> None:
    """An 8 GB Orin Nano gets 2 GB of builder workspace, a 64 GB AGX Orin the 4 GB cap, --workspace wins.
    (One TensorRT version: the workspace call is the same in all, as test_every_trt_name... shows.)"""
    real = _trt_real.require("10.3")
    for memory, want in ((8 << 30, 2048), (64 << 30, 4096)):
        got = _ok(_build(real, bundle, tmp_path, "--jetson-memory", str(memory), max_batch=2))
        assert got["config"]["memory_pool"] == [["MemoryPoolType.WORKSPACE", want << 20]]
        sc = got["sidecar"]
        assert sc["workspace_mb"] == want and f"--memPoolSize=workspace:{want}M" in sc["trtexec"]
    got = _ok(_build(real, bundle, tmp_path, "--jetson-memory", str(8 << 30), max_batch=2, workspace_mb=300))
    assert got["config"]["memory_pool"] == [["MemoryPoolType.WORKSPACE", 300 << 20]]


def test_dla_build(real, bundle, fp16_bundle, tmp_path) -> None:
    src = fp16_bundle if real.version == "11.4" else bundle
    got = _ok(_build(real, src, tmp_path, fp16=True, dla=1, gpu_fallback=True, min_batch=4, max_batch=4))
    cfg = got["config"]
    assert "BuilderFlag.GPU_FALLBACK" in cfg["flags"]
    assert ["IBuilderConfig", "default_device_type", "DeviceType.DLA", None] in cfg["sets"]
    assert ["IBuilderConfig", "DLA_core", 1, None] in cfg["sets"]
    assert cfg["profile"][0][1:] == [[4, 900], [4, 900], [4, 900]]  # DLA: static shape
    nano = _build(real, src, tmp_path, "--dla-cores", "0", fp16=True, dla=0, min_batch=4, max_batch=4)
    assert "has 0 DLA cores" in nano["error"] and nano["cuda_closed"]
    dynamic = _build(real, src, tmp_path, fp16=True, dla=0, max_batch=4)
    assert "DLA needs a static shape" in dynamic["error"]


def test_parser_errors_name_the_node(real, bundle, tmp_path) -> None:
    got = _build(real, bundle, tmp_path, "--parse-fails")
    import onnx

    first = onnx.load(str(bundle / "model.onnx"), load_external_data=False).graph.node[0].name
    assert "TensorRT cannot parse the model" in got["error"]
    assert f"node {first}" in got["error"] and "unsupported operator" in got["error"]
    assert got["config"]["problems"] == []
    assert not (tmp_path / "model.engine").exists()


def test_int8_build_of_a_qdq_bundle(real, tmp_path) -> None:
    from _qdq_bundle import make_bundle

    qdq = make_bundle(tmp_path / "qdq", "qdq")
    got = _ok(real.run("_trt_doubles.py", "build", str(qdq), str(tmp_path / "q.engine"), json.dumps({"int8": True})))
    cfg, sc = got["config"], got["sidecar"]
    assert cfg["profile"] == [["x", [1, 8], [16, 8], [16, 8]]]
    if real.version == "11.4":  # int8 from the Q/DQ pairs; the rest as the graph types it
        assert cfg["flags"] == [] and sc["precision"] == "int8" and sc["typing"] == "strong"
        assert "--int8" not in sc["trtexec"]
        return
    # weakly typed: the layers outside the Q/DQ pairs may run fp16 too (else they would be fp32)
    assert cfg["flags"] == ["BuilderFlag.FP16", "BuilderFlag.INT8"] and cfg["precision_layers"] == []
    assert sc["precision"] == "int8+fp16" and "--int8" in sc["trtexec"] and "--fp16" in sc["trtexec"]
    assert any("also allows fp16" in n for n in got["notes"])
    slow = _ok(real.run("_trt_doubles.py", "build", str(qdq), str(tmp_path / "q2.engine"), json.dumps({"int8": True}),
                        "--no-fast-fp16"))
    assert slow["config"]["flags"] == ["BuilderFlag.INT8"] and slow["sidecar"]["precision"] == "int8"
    assert any("no fast fp16" in n for n in slow["notes"])


# --------------------------------------------------------------------------------------------------
# 3. strongly typed builds (11.x always; 10.x with --strongly-typed; refused on 8.x)
# --------------------------------------------------------------------------------------------------
def test_strongly_typed_fp16_build_takes_precision_from_the_graph(real, fp16_bundle, tmp_path) -> None:
    asked = {} if real.version == "11.4" else {"strongly_typed": True}
    got = _build(real, fp16_bundle, tmp_path, fp16=True, max_batch=4, **asked)
    if real.version == "8.6":
        assert "needs TensorRT 10" in got["error"] and got["config"]["problems"] == []
        return
    cfg = _ok(got)["config"]
    assert cfg["network_flags"] == [[STRONG_FLAG[real.version]]]
    # no precision flag, no per-layer precision, no output types: none of these exists on 11.x
    assert cfg["flags"] == [] and cfg["cleared"] == [] and cfg["precision_layers"] == []
    assert cfg["output_types"] == [] and not [s for s in cfg["sets"] if s[1] == "precision"]
    sc = got["sidecar"]
    assert sc["typing"] == "strong" and sc["precision"] == "fp16" and sc["bundle_precision"] == "fp16"
    assert ("--stronglyTyped" in sc["trtexec"]) == (real.version == "10.3")
    assert "--fp16" not in sc["trtexec"]


def test_strongly_typed_int8_qdq_build(real, tmp_path) -> None:
    from _qdq_bundle import make_bundle

    if real.version == "8.6":
        pytest.skip("8.x has no strongly typed networks (refusal checked in the fp16 test)")
    qdq = make_bundle(tmp_path / "qdq", "qdq")
    asked = {} if real.version == "11.4" else {"strongly_typed": True}
    got = _ok(real.run("_trt_doubles.py", "build", str(qdq), str(tmp_path / "q.engine"),
                       json.dumps({"int8": True, **asked})))
    assert got["config"]["flags"] == [] and got["config"]["network_flags"] == [[STRONG_FLAG[real.version]]]
    assert got["sidecar"]["precision"] == "int8"
    # an opset-17 bundle is fp32 outside its Q/DQ pairs: --fp16 cannot make it fp16 there, and says how to
    both = real.run("_trt_doubles.py", "build", str(qdq), str(tmp_path / "q2.engine"),
                    json.dumps({"int8": True, "fp16": True, **asked}))
    assert "--opset 19 for an fp16 body" in both["error"] and not (tmp_path / "q2.engine").exists()


@pytest.fixture(scope="module")
def qdq16_bundle(tmp_path_factory) -> Path:
    """The tiny model exported int8-qdq at opset 19: int8 Q/DQ with an fp16 body (export/precision.py)."""
    from hrm_edge.export import QdqOptions, export_model

    out = tmp_path_factory.mktemp("q16") / "tiny-step-int8-qdq-fp16"
    export_model(_tiny(), out, act="step", precision="int8-qdq", opset=19, puzzle_dtype="float32", l4_puzzles=0,
                 qdq=QdqOptions(puzzles=2, augment=2))
    return out


def test_strongly_typed_int8_qdq_fp16_body_build(real, qdq16_bundle, tmp_path) -> None:
    """The opset-19 int8-qdq bundle builds strongly typed as int8 + fp16 (no flag, no per-layer precision: the
    graph's fp16 body and Q/DQ pairs say it); --fp16 and --int8 both agree with it."""
    if real.version == "8.6":
        pytest.skip("8.x has no strongly typed networks and its parser stops at opset 17")
    manifest = json.loads((qdq16_bundle / "manifest.json").read_text())
    assert manifest["quantization"]["body"] == "fp16" and manifest["onnx"]["opset"] == 19
    asked = {} if real.version == "11.4" else {"strongly_typed": True}
    for flags in ({}, {"int8": True}, {"fp16": True, "int8": True}):
        got = _ok(_build(real, qdq16_bundle, tmp_path, max_batch=4, **flags, **asked))
        cfg, sc = got["config"], got["sidecar"]
        assert cfg["network_flags"] == [[STRONG_FLAG[real.version]]]
        assert cfg["flags"] == [] and cfg["cleared"] == [] and cfg["precision_layers"] == []
        assert cfg["output_types"] == [] and not [x for x in cfg["sets"] if x[1] == "precision"]
        assert sc["typing"] == "strong" and sc["precision"] == "int8+fp16" and sc["bundle_precision"] == "int8-qdq"
        assert "--int8" not in sc["trtexec"] and "--fp16" not in sc["trtexec"]
        assert ("--stronglyTyped" in sc["trtexec"]) == (real.version == "10.3")
        assert "--noTF32" not in sc["trtexec"]  # not an fp32 reference engine


@pytest.mark.parametrize("opts,msg", [({"fp16": True}, "export with --precision fp16"),
                                      ({"int8": True}, "QuantizeLinear/DequantizeLinear")])
def test_strong_typing_checks_the_flags_against_the_bundle(real, bundle, tmp_path, opts, msg) -> None:
    if real.version == "8.6":
        pytest.skip("8.x has no strongly typed networks")
    asked = {} if real.version == "11.4" else {"strongly_typed": True}
    got = _build(real, bundle, tmp_path, **opts, **asked)
    assert msg in got["error"] and got["config"]["problems"] == []
    assert not (tmp_path / "model.engine").exists()


def test_the_fp16_bundle_is_what_a_strongly_typed_build_needs(fp16_bundle) -> None:
    """A strongly typed engine runs the graph's own types, so the fp16 bundle must carry them: fp32 graph
    inputs and outputs, fp16 matmuls, fp32 softmax, norms and the residual sums feeding them."""
    import onnx
    from onnx import TensorProto

    model = onnx.shape_inference.infer_shapes(onnx.load(str(fp16_bundle / "model.onnx")))
    g = model.graph
    assert {v.type.tensor_type.elem_type for v in list(g.input) + list(g.output)} <= {
        TensorProto.FLOAT, TensorProto.INT32, TensorProto.BOOL}
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})

    def in_types(op: str) -> set[int]:
        return {types.get(i) for n in g.node if n.op_type == op for i in n.input[:2] if i}

    assert in_types("MatMul") == {TensorProto.FLOAT16}
    assert in_types("Softmax") == {TensorProto.FLOAT} and in_types("ReduceMean") == {TensorProto.FLOAT}
    producer = {o: n for n in g.node for o in n.output}
    residual = [producer[n.input[0]] for n in g.node if n.op_type == "ReduceMean" and n.input[0] in producer]
    assert residual and all(types.get(p.output[0]) == TensorProto.FLOAT for p in residual)


# --------------------------------------------------------------------------------------------------
# 4. TensorRT 8.5 (JetPack 5), modelled as 8.6 minus what 8.6 added
# --------------------------------------------------------------------------------------------------
def test_tensorrt_85_model_refuses_what_85_lacks() -> None:
    """The model itself: each name NVIDIA lists as new in 8.6 is refused, and trt.nptype raises."""
    got = _trt_real.require("8.6").run("_trt_doubles.py", "probe85")
    assert got["reachable"] == [] and got["checked"] >= 20
    assert got["fp32_kinds_85"] == ["LayerType.REDUCE", "LayerType.SOFTMAX"]
    assert got["fp32_kinds_86"] == ["LayerType.NORMALIZATION", "LayerType.REDUCE", "LayerType.SOFTMAX"]


def test_tensorrt_85_build_and_run(bundle, tmp_path) -> None:
    """A weakly typed fp16 build and the runner under 8.5: no builder level (and none in its trtexec line),
    no NORMALIZATION layer type, no trt.nptype."""
    real = _trt_real.require("8.6")
    got = _ok(_build(real, bundle, tmp_path, "--as-8.5", fp16=True, builder_level=3, max_batch=8))
    assert got["version"] == "8.5.2.2" and got["sidecar"]["builder_level_applied"] is False
    assert not [s for s in got["config"]["sets"] if s[1] == "builder_optimization_level"]
    assert "--builderOptimizationLevel" not in got["sidecar"]["trtexec"]
    assert got["config"]["network_flags"] == [[1]]
    from hrm_edge.bench.inputs import synthetic_batches

    np.save(tmp_path / "tokens.npy", synthetic_batches(4, 6, 30, 0, seed=3)[0].tokens)
    run = real.run("_trt_doubles.py", "run", str(tmp_path / "model.engine"), str(bundle),
                   str(tmp_path / "tokens.npy"), "adaptive", "--as-8.5")
    assert "error" not in run, run.get("traceback") or run["error"]
    assert run["problems"] == [] and run["grids_equal"]
    strong = _build(real, bundle, tmp_path, "--as-8.5", strongly_typed=True)
    assert "needs TensorRT 10" in strong["error"]


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


def test_a_batch_above_the_profile_runs_in_chunks(real, bundle, tmp_path_factory, tmp_path) -> None:
    """compare --batch 32 on an engine built with --max-batch 16 is the README's own case: chunks of the
    profile's maximum, never a shape TensorRT refuses (the double answers False outside the profile)."""
    from hrm_edge.bench.inputs import synthetic_batches

    folder = tmp_path_factory.mktemp(f"small{real.version}")
    assert "error" not in _build(real, bundle, folder, max_batch=4)
    np.save(tmp_path / "tokens.npy", synthetic_batches(6, 6, 30, 0, seed=3)[0].tokens)
    args = ["run", str(folder / "model.engine"), str(bundle), str(tmp_path / "tokens.npy")]
    got = real.run("_trt_doubles.py", *args, "adaptive")
    assert "error" not in got, got.get("traceback") or got["error"]
    assert got["problems"] == [] and got["max_batch_seen"] == 4
    assert got["steps"] == got["ref_steps"] and got["grids_equal"] and got["second_equal"]
    mean = real.run("_trt_doubles.py", *args, "max", "--refuse-address")
    assert "refused the device address of tensor" in mean["error"] and mean["closed"]


def test_every_set_input_shape_result_is_checked(real, bundle, tmp_path_factory, tmp_path) -> None:
    """A shape the engine refuses is one clear error, not garbage from an unshaped context."""
    from hrm_edge.bench.inputs import synthetic_batches

    folder = tmp_path_factory.mktemp(f"min{real.version}")
    assert "error" not in _build(real, bundle, folder, min_batch=2, max_batch=4)
    np.save(tmp_path / "tokens.npy", synthetic_batches(1, 6, 30, 0, seed=3)[0].tokens)
    got = real.run("_trt_doubles.py", "run", str(folder / "model.engine"), str(bundle), str(tmp_path / "tokens.npy"),
                   "max")
    assert "below the engine's profile minimum 2" in got["error"] and got["closed"]


# --------------------------------------------------------------------------------------------------
# the CLI as the user runs it: `import tensorrt` answers the doubles, pycuda the fake device
# --------------------------------------------------------------------------------------------------
def _cli(real, engine: str, bundle: Path, *argv: str, flags: tuple[str, ...] = ()) -> dict:
    return real.run("_trt_doubles.py", "cli", engine, str(bundle), *flags, "--", *map(str, argv))


def _one_line(got: dict) -> str:
    """The one `error:` line (exit 2) that ends the command; notes printed before it are allowed."""
    lines = got["stderr"].strip().splitlines()
    errors = [x for x in lines if x.startswith("error: ")]
    assert got["rc"] == 2 and errors == lines[-1:], got
    return errors[0]


@pytest.fixture(scope="module")
def small_engine(bundle, tmp_path_factory) -> Path:
    """A 10.3 engine of the step bundle with --max-batch 4, in a folder of its own (its sidecar names the bundle)."""
    folder = tmp_path_factory.mktemp("small-engine")
    assert "error" not in _build(_trt_real.require("10.3"), bundle, folder, max_batch=4)
    return folder / "model.engine"


def test_cli_solve_with_a_batch_above_the_engine_profile(bundle, small_engine, tasks_dir, tmp_path,
                                                         monkeypatch, cli_fast) -> None:
    """`solve --engine E --batch 6` with E built for batch 1-4: every call the engine sees is within its profile,
    and the submission is ONNX Runtime's on the same bundle, byte for byte."""
    real = _trt_real.require("10.3")
    got = _cli(real, str(small_engine), bundle, "solve", tasks_dir, "--engine", small_engine, "--batch", 6,
               "--augment", 2, "--out", tmp_path / "trt.json")
    assert got["rc"] == 0, got["stderr"]
    assert got["problems"] == [] and got["max_batch_seen"] == 4 and got["closed"]
    monkeypatch.setenv("HRM_EDGE_ORT_FUSIONS", "0")  # the doubles' engine runs the graph as written
    cli_fast("solve", str(tasks_dir), "--bundle", str(bundle), "--batch", "6", "--augment", "2", "--out",
             str(tmp_path / "ort.json"))
    assert (tmp_path / "trt.json").read_bytes() == (tmp_path / "ort.json").read_bytes()


def test_cli_refuses_an_engine_of_another_board_or_onnx(bundle, small_engine, tasks_dir, tmp_path) -> None:
    real = _trt_real.require("10.3")
    engine = tmp_path / "model.engine"
    engine.write_bytes(small_engine.read_bytes())
    sc = json.loads(Path(str(small_engine) + ".json").read_text())
    agx = {**sc, "board": "NVIDIA Jetson AGX Orin Developer Kit", "l4t": "36.4.3"}
    Path(str(engine) + ".json").write_text(json.dumps(agx))
    args = ("solve", tasks_dir, "--engine", engine, "--augment", 1, "--out", tmp_path / "s.json")
    nano = ("--board", "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "--l4t", "36.4.3")
    line = _one_line(_cli(real, str(engine), bundle, *args, flags=nano))
    assert "built for board 'NVIDIA Jetson AGX Orin Developer Kit'" in line and "rebuild it here" in line
    ok = _cli(real, str(engine), bundle, *args, flags=("--board", agx["board"], "--l4t", "36.4.3"))
    assert ok["rc"] == 0, ok["stderr"]
    Path(str(engine) + ".json").write_text(json.dumps({**agx, "onnx_sha256": "0" * 64}))
    line = _one_line(_cli(real, str(engine), bundle, *args, flags=("--board", agx["board"])))
    assert "built from another model.onnx" in line
    assert not (tmp_path / "s.json").exists() or ok["rc"] == 0


def test_cli_build_engine_dla_on_an_orin_nano(bundle, small_engine, tmp_path) -> None:
    real = _trt_real.require("10.3")
    got = _cli(real, str(small_engine), bundle, "build-engine", bundle, "--fp16", "--dla", 0, "--min-batch",
               4, "--opt-batch", 4, "--max-batch", 4, "--out", tmp_path / "d.engine",
               flags=("--board", "NVIDIA Jetson Orin Nano Developer Kit"))
    assert "has no DLA cores (Orin Nano)" in _one_line(got)
    assert not (tmp_path / "d.engine").exists()


@pytest.mark.parametrize("version", ["10.3", "11.4"])
def test_cli_trt_builds_on_first_use_then_loads_from_the_cache(version, bundle, tasks_dir, tmp_path,
                                                               monkeypatch) -> None:
    real = _trt_real.require(version)
    cache = tmp_path / "cache"
    monkeypatch.setenv("HRM_EDGE_ENGINE_CACHE", str(cache))
    args = ("solve", tasks_dir, "--bundle", bundle, "--trt", "--batch", 4, "--augment", 2)
    first = _cli(real, "-", bundle, *args, "--out", tmp_path / "1.json")
    assert first["rc"] == 0, first["stderr"]
    assert first["builds"] == 1 and "engine cache: building" in first["stderr"] and first["problems"] == []
    second = _cli(real, "-", bundle, *args, "--out", tmp_path / "2.json")
    assert second["rc"] == 0 and second["builds"] == 0 and second["deserialized"] == 1, second["stderr"]
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()
    latency = _cli(real, "-", bundle, *args, "--trt-profile", "latency", "--out", tmp_path / "3.json")
    assert latency["rc"] == 0 and latency["builds"] == 1 and latency["max_batch_seen"] == 1, latency["stderr"]
    keys = sorted(json.loads(p.read_text())["profile"] for p in cache.glob("*/key.json"))
    assert keys == [[1, 1, 1], [1, 4, 4]]
    key = json.loads(next(cache.glob("*/key.json")).read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert key["onnx_sha256"] == manifest["onnx"]["sha256"] and key["tensorrt"].startswith(version)
    assert key["typing"] == ("strong" if version == "11.4" else "weak") and key["precision"] == "fp32"
    assert len(list(cache.glob("timing-*.cache"))) == 1  # one timing cache per TensorRT and device
    bad = _cli(real, "-", bundle, *args, "--trt-profile", "fastest", "--out", tmp_path / "4.json")
    assert "--trt-profile must be one of throughput, latency" in _one_line(bad)


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
