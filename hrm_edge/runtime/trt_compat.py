"""Every difference between the TensorRT generations hrm-edge builds for, in one place.

8.5 (JetPack 5), 8.6 (JetPack 6.0), 10.x (JetPack 6.1/6.2, JetPack 7.0/7.1 on Thor) and 11.x (JetPack
7.2.2 and later, AGX Orin and Thor). The rest of hrm-edge calls these helpers and never branches on the
TensorRT version itself. What differs, and what this module does about it:

- typing: 11.x is strongly typed only (NVIDIA's 10.x -> 11.x migration guide): no `BuilderFlag.FP16` /
  `INT8` / `OBEY_PRECISION_CONSTRAINTS`, no `platform_has_fast_fp16`, no `ILayer.precision` /
  `set_output_type`, no INT8 calibrators. Precision is the ONNX graph's own tensor types and int8 comes
  from Q/DQ nodes. 10.x offers the same as an opt-in (`NetworkDefinitionCreationFlag.STRONGLY_TYPED`,
  trtexec `--stronglyTyped`); 8.x has no strongly typed networks.
- network creation: 8.x needs the EXPLICIT_BATCH flag; 10.x / 11.x are always explicit batch.
- building: `build_serialized_network` and `set_memory_pool_limit(WORKSPACE, ...)` exist in every
  generation, so only those are used.
- builder optimization level: a config property from 8.6; 8.5 has none (reported as not applied), and
  its trtexec has no `--builderOptimizationLevel`.
- parser errors: 10.x names the failing node (`node_name()`, `node_operator()`); 8.x only gives its
  index (`node()`), which is mapped back to the ONNX node's name here.
- numpy types: `trt.nptype` of 8.5 builds its table with `np.bool`, removed in numpy 1.24, so every
  lookup raises there; `nptype` below maps `DataType` names itself.
- refit: every generation refits an engine built with `BuilderFlag.REFIT`. 10.x / 11.x read the new weights
  straight from an ONNX file (`OnnxParserRefitter.refit_from_file`, which matches each initializer to the
  weights the parser made of it, folded constants included); 8.x has no ONNX refitter, so each refittable
  weight is set by name (`Refitter.set_named_weights`: the ONNX parser names weights after the initializers)
  and `get_missing_weights` must come back empty.
- I/O: the name-based API (`num_io_tensors`, `get_tensor_name`, `get_tensor_mode`, `set_input_shape`,
  `set_tensor_address`, `get_tensor_profile_shape`, `execute_async_v3`) exists from 8.5, so the
  binding-index API (removed in 10) is never used.

Functions taking `v` accept a (major, minor) tuple, so the sidecar's recorded version can be judged
without TensorRT installed (the trtexec line, the engine cache key).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError

Version = tuple[int, int]

# DataType member name -> numpy dtype (trt.nptype of 8.5 raises under numpy >= 1.24).
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
       "BOOL": np.bool_, "UINT8": np.uint8}


def parse_version(text: str) -> Version:
    """(major, minor) of a version string, e.g. (8, 5) for "8.5.2.2"."""
    parts = str(text).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def version_tuple(trt: Any) -> Version:
    """(major, minor) of the imported TensorRT."""
    return parse_version(trt.__version__)


# --------------------------------------------------------------------------------------------------
# what a generation can do (from a version tuple: usable without TensorRT)
# --------------------------------------------------------------------------------------------------
def strongly_typed_only(v: Version) -> bool:
    """11.x removed weak typing: every network is strongly typed."""
    return v >= (11, 0)


def strong_typing_available(v: Version) -> bool:
    """10.x can build strongly typed networks when asked (the flag exists from 9.x; JetPack has none)."""
    return v >= (10, 0)


def has_builder_level(v: Version) -> bool:
    return v >= (8, 6)


def typing_for(v: Version, strongly_typed: bool) -> str:
    """"strong" or "weak" for a build with this TensorRT; refuses strong typing on 8.x."""
    if strongly_typed_only(v):
        return "strong"
    if strongly_typed and not strong_typing_available(v):
        raise HrmEdgeError(f"--strongly-typed needs TensorRT 10 or later; this is TensorRT {v[0]}.{v[1]} "
                           "(drop the flag: weakly typed builds take --fp16 / --int8)")
    return "strong" if strongly_typed else "weak"


def trtexec_flags(v: Version, *, typing: str, fp16: bool, int8: bool, fp32_layers: list[str], tf32: bool,
                  builder_level: int | None) -> list[str]:
    """The precision / typing / level flags of the equivalent trtexec line for TensorRT `v`."""
    out: list[str] = []
    if typing == "strong":
        if not strongly_typed_only(v):
            out.append("--stronglyTyped")  # the default (and the only mode) of trtexec 11
    else:
        out += ["--fp16"] if fp16 else []
        out += ["--int8"] if int8 else []
        if fp16 and fp32_layers:
            out += ["--precisionConstraints=obey",
                    "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in fp32_layers),
                    "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in fp32_layers)]
    if not tf32:
        out.append("--noTF32")
    if builder_level is not None and has_builder_level(v):
        out.append(f"--builderOptimizationLevel={builder_level}")
    return out


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------
def network_flags(trt: Any, strongly_typed: bool = False) -> int:
    """Flags for `Builder.create_network`: explicit batch on 8.x; STRONGLY_TYPED where asked (always on 11.x)."""
    v = version_tuple(trt)
    if v < (10, 0):
        if strongly_typed:
            raise HrmEdgeError(f"TensorRT {trt.__version__} has no strongly typed networks")
        return 1 << int(_member(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"))
    if strongly_typed or strongly_typed_only(v):
        return 1 << int(_member(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"))
    return 0


def _member(enum: Any, name: str) -> Any:
    """An enum member that only some generations have (EXPLICIT_BATCH: gone in 11; STRONGLY_TYPED: from 10),
    looked up by name so the static name check of each version sees only what every version has."""
    return enum.__members__[name]


def fast_fp16(trt: Any, builder: Any) -> bool | None:
    """Whether the GPU has fast fp16 (None on 11.x, which no longer answers: precision is the graph's)."""
    if strongly_typed_only(version_tuple(trt)):
        return None
    return bool(builder.platform_has_fast_fp16)


def set_precision_flags(trt: Any, config: Any, *, fp16: bool, int8: bool, obey: bool) -> list[str]:
    """Weakly typed precision flags (8.x / 10.x); refuses on 11.x, where they were removed."""
    names = [n for n, on in (("FP16", fp16), ("INT8", int8), ("OBEY_PRECISION_CONSTRAINTS", obey)) if on]
    if names and strongly_typed_only(version_tuple(trt)):
        raise HrmEdgeError(f"TensorRT {trt.__version__} is strongly typed only: no {', '.join(names)} flags")
    for n in names:
        config.set_flag(getattr(trt.BuilderFlag, n))
    return names


def clear_tf32(trt: Any, config: Any) -> None:
    """fp32 reference engines: no TF32 matmuls (on by default on Ampere and later, Orin included)."""
    config.clear_flag(trt.BuilderFlag.TF32)


def pin_fp32(trt: Any, layer: Any, outputs: list[int]) -> None:
    """Weakly typed only: run `layer` in fp32 and keep these outputs fp32."""
    if strongly_typed_only(version_tuple(trt)):
        raise HrmEdgeError(f"TensorRT {trt.__version__} has no per-layer precision (strongly typed only)")
    layer.precision = trt.float32
    for j in outputs:
        layer.set_output_type(j, trt.float32)


def fp32_layer_kinds(trt: Any) -> set[Any]:
    """LayerType members of reductions, softmax and normalization (NORMALIZATION exists from 8.6 only)."""
    members = trt.LayerType.__members__
    return {members[k] for k in ("REDUCE", "SOFTMAX", "NORMALIZATION") if k in members}


def set_workspace(trt: Any, config: Any, nbytes: int) -> None:
    """Builder scratch memory limit (the one call present in every generation)."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))


def set_builder_level(trt: Any, config: Any, level: int) -> bool:
    """Set the builder optimization level (0-5); False where this TensorRT has none (8.5)."""
    if not has_builder_level(version_tuple(trt)):
        return False
    config.builder_optimization_level = int(level)
    return True


def set_refittable(trt: Any, config: Any) -> None:
    """`build-engine --refittable`: weights can be replaced later without a rebuild (`hrm-edge refit`)."""
    config.set_flag(trt.BuilderFlag.REFIT)


def has_onnx_refitter(v: Version) -> bool:
    """`OnnxParserRefitter` exists from 10.0."""
    return v >= (10, 0)


def refit_from_onnx(trt: Any, refitter: Any, logger: Any, onnx_path: str, initializers: Any) -> dict[str, Any]:
    """Hand `refitter` every weight of the ONNX file at `onnx_path`, the way this TensorRT can, and refit.

    `initializers()` returns {name: numpy array} of the graph's initializers (only called on 8.x, which sets
    weights by name). Returns what was done; raises HrmEdgeError naming what TensorRT refused or missed."""
    v = version_tuple(trt)
    if has_onnx_refitter(v):
        parser = getattr(trt, "OnnxParserRefitter")(refitter, logger)  # noqa: B009 - by name: absent from 8.x
        if not parser.refit_from_file(str(onnx_path)):
            errs = [parser.get_error(i).desc() for i in range(parser.num_errors)]
            raise HrmEdgeError("TensorRT's ONNX refitter refused the new weights: " +
                               "; ".join(errs or ["no error reported"]), onnx_path)
        how = {"method": "OnnxParserRefitter.refit_from_file"}
    else:
        arrays = initializers()
        keep = []  # TensorRT reads the arrays at refit_cuda_engine: they must stay alive until then
        names = list(refitter.get_all_weights())
        for name in names:
            if name in arrays:
                arr = np.ascontiguousarray(arrays[name])
                keep.append(arr)
                if not refitter.set_named_weights(name, trt.Weights(arr)):
                    raise HrmEdgeError(f"TensorRT refused the new weights {name!r} {arr.shape}", onnx_path)
        how = {"method": "Refitter.set_named_weights", "weights": len(keep), "refittable": len(names)}
    missing = list(refitter.get_missing_weights())
    if missing:
        raise HrmEdgeError(f"the new graph does not supply {len(missing)} of the engine's weights "
                           f"({', '.join(missing[:5])}); is it the same model?", onnx_path)
    if not refitter.refit_cuda_engine():
        raise HrmEdgeError("TensorRT could not refit the engine (its log above says why)", onnx_path)
    return how


def build_plan(builder: Any, network: Any, config: Any) -> bytes | None:
    """Build and serialize the engine; None when TensorRT reports failure (its log says why)."""
    plan = builder.build_serialized_network(network, config)
    return None if plan is None else bytes(memoryview(plan))


def parser_errors(parser: Any, trt: Any, node_names: list[str]) -> list[str]:
    """The ONNX parser's errors, each naming the node (and operator) it failed on."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        if version_tuple(trt) >= (10, 0):
            name, op = err.node_name(), err.node_operator()
        else:
            idx = err.node()
            name = node_names[idx] if 0 <= idx < len(node_names) else f"#{idx}"
            op = ""
        where = f"node {name}" + (f" ({op})" if op else "") if name else "graph"
        out.append(f"{where}: {err.desc()}")
    return out


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------
def io_tensors(trt: Any, engine: Any) -> tuple[list[str], list[str]]:
    """Input and output tensor names of an engine, in engine order."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    return inputs, [n for n in names if n not in inputs]


def nptype(trt: Any, dtype: Any) -> np.dtype:
    """numpy dtype of a TensorRT DataType (not `trt.nptype`: 8.5's raises under numpy >= 1.24)."""
    name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1])
    if name not in _NP:
        raise HrmEdgeError(f"engine tensor type {name} has no numpy equivalent here")
    return np.dtype(_NP[name])


def profile_batch_range(engine: Any, input_name: str, profile: int = 0) -> tuple[int, int]:
    """(min, max) of the batch axis of an input under an optimization profile."""
    lo, _opt, hi = engine.get_tensor_profile_shape(input_name, profile)
    return int(list(lo)[0]), int(list(hi)[0])
