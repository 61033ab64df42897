"""Run hrm-edge's TensorRT code against the REAL TensorRT Python API (a subprocess of test_trt_conformance).

Started by tests/_trt_real.py with the real `tensorrt_bindings` importable over stub libraries. Every
TensorRT object the code receives is a double spec'd from the real class (`unittest.mock` with
`spec_set`): reading an attribute the class lacks fails, calling a method checks the arguments against
the pybind signatures in the real method's `__doc__` (any overload must accept them, by position or
name, with the right types), setting a property checks that it is writable and the value's type.
Enums, `DataType`, `nptype` and `__version__` are the real ones. The doubles record what the code
configured; the result is printed as one JSON line for the test to assert on. API conformance, not
execution: no engine is built or run.

TensorRT 8.5 (JetPack 5) has no wheel on PyPI for a Python hrm-edge runs on, so `--as-8.5` models it
as the 8.6 bindings minus what NVIDIA's 8.6.0 EA "API changes" list as new in 8.6 (`API_86_NEW`): reading
any of those names, enum members or class attributes is a conformance failure, and `trt.nptype` raises
as 8.5's does under numpy >= 1.24 (its table names `np.bool`).

    python tests/_trt_doubles.py names
    python tests/_trt_doubles.py build BUNDLE OUT OPTIONS_JSON [--parse-fails] [--as-8.5] [--dla-cores N]
        [--jetson-memory BYTES]
    python tests/_trt_doubles.py run ENGINE BUNDLE TOKENS_NPY HALT [--cuda-graph] [--as-8.5] [--refuse-address]
    python tests/_trt_doubles.py schedule ENGINE BUNDLE INPUTS_NPZ HALT SLOTS [--cuda-graph]
    python tests/_trt_doubles.py cli ENGINE|- BUNDLE [--board NAME --l4t X] -- HRM-EDGE ARGS...
    python tests/_trt_doubles.py refit ENGINE NEW_BUNDLE OUT [--as-8.5] [--missing NAME] [--refit-fails]
    python tests/_trt_doubles.py probe85
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any
from unittest.mock import NonCallableMagicMock

import numpy as np
import tensorrt_bindings as trt

REPO = Path(__file__).resolve().parents[1]
TRT_SOURCES = ["hrm_edge/runtime/tensorrt.py", "hrm_edge/runtime/trt_build.py", "hrm_edge/runtime/trt_compat.py",
               "hrm_edge/runtime/trt_refit.py"]
PREFIX = "tensorrt_bindings.tensorrt."
PROBLEMS: list[str] = []  # every conformance failure, also raised where it happens
# New in TensorRT 8.6 (NVIDIA TensorRT 8.6.0 EA API reference, "API Changes For TensorRT 8.6.0 EA", new
# Python APIs), so absent from 8.5: module names, enum members ("Enum.MEMBER") and class attributes.
API_86_NEW = {
    "module": {"INormalizationLayer", "ICastLayer", "HardwareCompatibilityLevel"},
    "members": {"LayerType.NORMALIZATION", "LayerType.CAST", "BuilderFlag.VERSION_COMPATIBLE",
                "BuilderFlag.EXCLUDE_LEAN_RUNTIME", "BuilderFlag.FP8", "DataType.FP8", "MemoryPoolType.TACTIC_DRAM",
                "PreviewFeature.PROFILE_SHARING_0806"},
    "attributes": {"IBuilderConfig": {"builder_optimization_level", "hardware_compatibility_level", "max_aux_streams",
                                      "plugins_to_serialize"},
                   "INetworkDefinition": {"add_normalization", "add_cast"},
                   "IExecutionContext": {"set_aux_streams"},
                   "ICudaEngine": {"hardware_compatibility_level", "num_aux_streams"},
                   "Runtime": {"engine_host_code_allowed", "load_runtime"}},
}
HIDDEN: dict[str, set[str]] = {}  # class name -> attributes the modelled TensorRT lacks (filled by --as-8.5)
CALLS: list[tuple[str, str, list[Any], dict[str, Any]]] = []
SETS: list[tuple[str, str, Any, Any]] = []  # (class, property, value, the object's own `name`)


# --------------------------------------------------------------------------------------------------
# pybind signatures from __doc__
# --------------------------------------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    """Split a parameter list at top-level commas (types like List[int] and defaults like <X.Y: 2>)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(<":
            depth += 1
        elif ch in "])>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def signatures(owner: type, name: str) -> list[list[tuple[str, str, bool]]]:
    """Each overload's parameters after `self`: (name, type, has_default)."""
    doc = getattr(getattr(owner, name), "__doc__", "") or ""
    sigs = []
    for line in doc.splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->\s*(.+)$", line)
        if not m or m.group(1) == "*args, **kwargs":
            continue
        params = []
        for p in _split_top(m.group(1)):
            pname, _, rest = p.partition(":")
            ptype, _, default = rest.partition("=")
            params.append((pname.strip(), ptype.strip(), bool(default.strip())))
        sigs.append(params[1:])  # drop self
    if not sigs:
        raise AssertionError(f"{owner.__name__}.{name}: no pybind signature in __doc__")
    return sigs


def _resolve(type_name: str) -> Any:
    obj: Any = trt
    for part in type_name[len(PREFIX):].split("."):
        obj = getattr(obj, part)
    return obj


def accepts(type_name: str, value: Any) -> bool:
    t = type_name.strip()
    if t.startswith("Optional[") or t.startswith("typing.Optional["):
        return value is None or accepts(t[t.index("[") + 1:-1], value)
    if t in ("int", "typing.SupportsInt", "SupportsInt"):
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if t in ("float", "typing.SupportsFloat", "SupportsFloat"):
        return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, (bool, np.bool_))
    if t == "str":
        return isinstance(value, str)
    if t in ("buffer", "bytes", "typing_extensions.Buffer", "collections.abc.Buffer"):
        return isinstance(value, (bytes, bytearray, memoryview, np.ndarray))
    if t in ("tuple",):
        return isinstance(value, tuple)
    if t.startswith(("List[", "typing.List[", "list[", "Sequence[")):
        inner = t[t.index("[") + 1:-1]
        return isinstance(value, (list, tuple)) and all(accepts(inner, v) for v in value)
    if t in ("object", "capsule", "handle", "Any", "typing.Any"):
        return True
    if t == "numpy.ndarray":
        return isinstance(value, np.ndarray)
    if t.startswith(PREFIX):
        cls = _resolve(t)
        if cls is trt.Dims or t.endswith(".Dims") or t.endswith(".Dims64") or t.endswith(".Dims32"):
            return isinstance(value, cls) or (isinstance(value, (list, tuple))
                                              and all(accepts("int", v) for v in value))
        if isinstance(value, Double):
            return issubclass(value._spec_class, cls)
        return isinstance(value, cls)
    PROBLEMS.append(f"unknown pybind type {t!r} (extend accepts())")
    return False


def check_call(owner: type, name: str, args: tuple, kwargs: dict) -> None:
    """Raise TypeError (as pybind would) when no overload of owner.name takes these arguments."""
    tried = []
    for params in signatures(owner, name):
        ok = len(args) <= len(params)
        bound = {}
        if ok:
            for (pname, ptype, _), v in zip(params, args):
                bound[pname] = (ptype, v)
            for k, v in kwargs.items():
                match = [p for p in params if p[0] == k]
                if not match or k in bound:
                    ok = False
                    break
                bound[k] = (match[0][1], v)
        if ok and all(p[0] in bound or p[2] for p in params) and all(accepts(t, v) for t, v in bound.values()):
            return
        tried.append("(" + ", ".join(f"{p[0]}: {p[1]}" for p in params) + ")")
    msg = (f"{owner.__name__}.{name} called with args {args!r} kwargs {kwargs!r}, matching no signature of "
           f"TensorRT {trt.__version__}: {' | '.join(tried)}")
    PROBLEMS.append(msg)
    raise TypeError(msg)


# --------------------------------------------------------------------------------------------------
# doubles
# --------------------------------------------------------------------------------------------------
class Double(NonCallableMagicMock):
    """A spec_set mock of a real TensorRT class whose methods check their pybind signatures."""

    def __getattr__(self, name: str) -> Any:
        cls = self.__dict__.get("_spec_class")
        if cls is None or name.startswith("_"):
            return super().__getattr__(name)
        static = inspect.getattr_static(cls, name, None)
        if static is None or name in self.__dict__.get("_hidden", ()):
            PROBLEMS.append(f"{cls.__name__} has no attribute {name!r} in TensorRT {trt.__version__}")
            raise AttributeError(f"{cls.__name__}.{name} does not exist in TensorRT {trt.__version__}")
        if isinstance(static, property):
            raise AssertionError(f"{cls.__name__}.{name} was read but the test world did not give it a value")
        child = super().__getattr__(name)
        if child.side_effect is None:
            answer = self.__dict__["_answers"].get(name)

            def checked(*args: Any, **kwargs: Any) -> Any:
                check_call(cls, name, args, kwargs)
                CALLS.append((cls.__name__, name, list(args), dict(kwargs)))
                if answer is None:
                    if re.search(r"->\s*None\s*$", (getattr(cls, name).__doc__ or "").splitlines()[0]):
                        return None
                    raise AssertionError(f"the test world has no answer for {cls.__name__}.{name}")
                return answer(*args, **kwargs)

            child.side_effect = checked
        return child

    def __setattr__(self, name: str, value: Any) -> None:
        cls = self.__dict__.get("_spec_class")
        if cls is not None and not name.startswith("_") and self.__dict__.get("_armed"):
            static = inspect.getattr_static(cls, name, None)
            if name in self.__dict__.get("_hidden", ()):
                static = None
            if not isinstance(static, property):
                PROBLEMS.append(f"{cls.__name__}.{name} is not a property of TensorRT {trt.__version__}")
                raise AttributeError(f"{cls.__name__}.{name} is not a settable property")
            if static.fset is None:
                PROBLEMS.append(f"{cls.__name__}.{name} is read-only in TensorRT {trt.__version__}")
                raise AttributeError(f"{cls.__name__}.{name} is read-only")
            ptype = re.search(r"->\s*(.+)$", static.fget.__doc__.strip().splitlines()[0]).group(1)
            if not accepts(ptype, value):
                PROBLEMS.append(f"{cls.__name__}.{name} = {value!r}: expects {ptype}")
                raise TypeError(f"{cls.__name__}.{name} expects {ptype}")
            SETS.append((cls.__name__, name, value, self.__dict__.get("name")))
        super().__setattr__(name, value)


def double(cls: type, props: dict[str, Any] | None = None, hidden: tuple[str, ...] = (), **answers: Any) -> Double:
    """A Double of `cls` with property values `props` and method answers (callables); `hidden` names
    attributes an older TensorRT lacks (reading or setting them is a conformance failure)."""
    for name in list(props or {}) + list(answers):
        if inspect.getattr_static(cls, name, None) is None:
            raise AssertionError(f"test world configures {cls.__name__}.{name}, which TensorRT "
                                 f"{trt.__version__} does not have")
    d = Double(spec_set=cls)
    d.__dict__["_answers"] = answers
    d.__dict__["_hidden"] = tuple(hidden) + tuple(HIDDEN.get(cls.__name__, ()))
    for k, v in (props or {}).items():
        NonCallableMagicMock.__setattr__(d, k, v)
    d.__dict__["_armed"] = True
    return d


class EnumView:
    """A real TensorRT enum seen through a TensorRT that lacks some of its members (8.5)."""

    def __init__(self, enum: Any, missing: set[str]) -> None:
        self._enum, self._missing = enum, missing

    def __getattr__(self, name: str) -> Any:
        if name in self._missing:
            PROBLEMS.append(f"{self._enum.__name__}.{name} does not exist in the modelled TensorRT")
            raise AttributeError(f"{self._enum.__name__}.{name}")
        return getattr(self._enum, name)

    @property
    def __members__(self) -> dict[str, Any]:
        return {k: v for k, v in self._enum.__members__.items() if k not in self._missing}


class FakeTrt:
    """The `tensorrt` module as the code sees it: real names, doubles for the objects that need a GPU.

    With `as_85`, the names NVIDIA added in 8.6 are missing, as in TensorRT 8.5."""

    def __init__(self, factories: dict[str, Any], version: str | None = None, as_85: bool = False) -> None:
        self._factories = factories
        self._as_85 = as_85
        if version:
            self.__version__ = version

    def __getattr__(self, name: str) -> Any:
        if self._as_85:
            if name in API_86_NEW["module"]:
                PROBLEMS.append(f"trt.{name} does not exist in TensorRT 8.5")
                raise AttributeError(name)
            if name == "nptype":
                def nptype(_: Any) -> Any:  # 8.5's table names np.bool: every lookup raises under numpy >= 1.24
                    PROBLEMS.append("trt.nptype was called: TensorRT 8.5's raises under numpy >= 1.24")
                    raise AttributeError("module 'numpy' has no attribute 'bool'")
                return nptype
            missing = {m.split(".", 1)[1] for m in API_86_NEW["members"] if m.split(".", 1)[0] == name}
            if missing:
                return EnumView(getattr(trt, name), missing)
        real = getattr(trt, name)  # AttributeError for a name this TensorRT lacks
        make = self._factories.get(name)
        if make is None:
            return real

        def construct(*args: Any, **kwargs: Any) -> Any:
            check_call(real, "__init__", args, kwargs)
            CALLS.append((name, "__init__", list(args), dict(kwargs)))
            return make(*args, **kwargs)

        return construct


def model_85(flags: list[str]) -> bool:
    """`--as-8.5`: hide from every double what 8.5 lacks."""
    if "--as-8.5" not in flags:
        return False
    HIDDEN.update({k: set(v) for k, v in API_86_NEW["attributes"].items()})
    return True


# --------------------------------------------------------------------------------------------------
# mode: names (every trt.X.Y chain in the source resolves)
# --------------------------------------------------------------------------------------------------
def used_names() -> list[str]:
    chains = set()
    for rel in TRT_SOURCES:
        tree = ast.parse((REPO / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                parts, cur = [], node
                while isinstance(cur, ast.Attribute):
                    parts.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id == "trt":
                    chains.add(".".join(reversed(parts)))
    # keep the longest chains only (trt.Logger.WARNING covers trt.Logger)
    return sorted(c for c in chains if not any(o.startswith(c + ".") for o in chains))


def mode_names() -> dict[str, Any]:
    names = used_names()
    missing = []
    for chain in names:
        obj: Any = trt
        for part in chain.split("."):
            if not hasattr(obj, part):
                missing.append(chain)
                break
            obj = getattr(obj, part)
    return {"version": trt.__version__, "names": names, "missing": missing}


# --------------------------------------------------------------------------------------------------
# mode: build
# --------------------------------------------------------------------------------------------------
_LAYER_TYPE = {"ReduceMean": "REDUCE", "ReduceSum": "REDUCE", "ReduceMax": "REDUCE", "Softmax": "SOFTMAX",
               "MatMul": "MATRIX_MULTIPLY", "Gemm": "MATRIX_MULTIPLY", "Add": "ELEMENTWISE", "Mul": "ELEMENTWISE",
               "Div": "ELEMENTWISE", "Sub": "ELEMENTWISE", "Pow": "ELEMENTWISE", "Sqrt": "UNARY", "Neg": "UNARY",
               "Sigmoid": "ACTIVATION", "Relu": "ACTIVATION", "Shape": "SHAPE", "Gather": "GATHER", "Cast": "CAST",
               "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Unsqueeze": "SHUFFLE", "Squeeze": "SHUFFLE",
               "Slice": "SLICE", "Split": "SLICE", "Expand": "SLICE", "Concat": "CONCATENATION", "Where": "SELECT",
               "ConstantOfShape": "FILL", "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE"}


def _dtype_of(elem: int) -> Any:
    import onnx

    return {onnx.TensorProto.FLOAT: trt.float32, onnx.TensorProto.FLOAT16: trt.float16,
            onnx.TensorProto.BOOL: trt.bool, onnx.TensorProto.INT8: trt.int8}.get(elem, trt.int32)


def network_from_onnx(path: Path) -> tuple[Double, list[Double]]:
    """An INetworkDefinition double with one ILayer double per ONNX node (named after it, as the parser does)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.output)
             + list(model.graph.input)}
    layers = []
    for node in model.graph.node:
        outs = [double(trt.ITensor, {"dtype": _dtype_of(types.get(o, 1)), "name": o}) for o in node.output]
        kind = getattr(trt.LayerType, _LAYER_TYPE.get(node.op_type, "IDENTITY"))
        layers.append(double(trt.ILayer, {"name": node.name, "type": kind, "num_outputs": len(outs)},
                             get_output=lambda j, o=outs: o[j]))
    inputs = []
    for v in model.graph.input:
        dims = tuple(-1 if d.dim_param or not d.dim_value else d.dim_value for d in v.type.tensor_type.shape.dim)
        inputs.append(double(trt.ITensor, {"name": v.name, "shape": dims,
                                           "dtype": _dtype_of(v.type.tensor_type.elem_type)}))
    net = double(trt.INetworkDefinition, {"num_layers": len(layers), "num_inputs": len(inputs)},
                 get_layer=lambda i: layers[i], get_input=lambda i: inputs[i])
    return net, layers


class FakeCuda:
    """Stands in for cuda_mem.PycudaBackend in the build (device facts only): a discrete GPU, or with
    `memory` a Jetson whose GPU shares that many bytes with the CPU."""

    closed = False

    def __init__(self, memory: int | None = None) -> None:
        self.memory = memory

    def device_name(self) -> str:
        return "Orin (double)"

    def compute_capability(self) -> str:
        return "8.7"

    def total_memory(self) -> int:
        return self.memory or 80 << 30

    def integrated(self) -> bool:
        return self.memory is not None

    def close(self) -> None:
        FakeCuda.closed = True


def builder_world(bundle: str, flags: list[str]) -> tuple[dict[str, Any], list[Double], dict[str, Any]]:
    """Builder, parser, config and profile doubles for `bundle`; returns the FakeTrt factories, the layers and
    what the build read (timing cache bytes). With `--plan-profile` the plan bytes carry the profile set, so a
    runtime double deserializing them knows it (the engine cache builds where no sidecar path is known)."""
    onnx_path = Path(bundle) / "model.onnx"
    network, layers = network_from_onnx(onnx_path)
    parse_ok = "--parse-fails" not in flags
    first = layers[0].name
    named = {"node_name": lambda: first, "node_operator": lambda: "Cast"} if hasattr(trt.ParserError, "node_name") \
        else {}  # 10.x names the failing node; 8.x gives only its index
    err = double(trt.ParserError, desc=lambda: "unsupported operator", node=lambda: 0,
                 code=lambda: trt.ErrorCode.UNSUPPORTED_NODE, **named)
    read: dict[str, Any] = {}
    caches: list[Double] = []

    def create_cache(data: Any) -> Double:
        read["timing_cache"] = bytes(data)
        caches.append(double(trt.ITimingCache, serialize=lambda: bytearray(b"TIMING-CACHE-v2:" + bytes(data))))
        return caches[-1]

    shapes: dict[str, Any] = {}

    def set_shape(name: str, lo: Any, opt: Any, hi: Any) -> None:
        shapes[name] = {"input": name, "min": list(lo), "opt": list(opt), "max": list(hi)}

    def plan(n: Any, c: Any) -> bytearray:
        return bytearray(b"PLAN" + (json.dumps(list(shapes.values())).encode() if "--plan-profile" in flags else b""))

    config = double(trt.IBuilderConfig,
                    create_timing_cache=create_cache, set_timing_cache=lambda c, ig: True,
                    get_timing_cache=lambda: caches[-1], add_optimization_profile=lambda p: 0)
    profile = double(trt.IOptimizationProfile, set_shape=set_shape)
    dla = int(flags[flags.index("--dla-cores") + 1]) if "--dla-cores" in flags else 2
    fast16 = {"platform_has_fast_fp16": "--no-fast-fp16" not in flags}
    if not hasattr(trt.Builder, "platform_has_fast_fp16"):
        fast16 = {}  # 11.x removed it
    builder = double(trt.Builder, {**fast16, "num_DLA_cores": dla},
                     create_network=lambda flags=0: network, create_builder_config=lambda: config,
                     create_optimization_profile=lambda: profile, build_serialized_network=plan)
    parser = double(trt.OnnxParser, {"num_errors": 0 if parse_ok else 1},
                    parse_from_file=lambda path: parse_ok, get_error=lambda i: err)
    return {"Builder": lambda logger: builder, "OnnxParser": lambda net, logger: parser}, layers, read


def mode_build(bundle: str, out: str, options: str, flags: list[str]) -> dict[str, Any]:
    from hrm_edge.runtime.trt_build import EngineOptions, build_engine

    o = json.loads(options)
    if o.get("timing_cache"):
        o["timing_cache"] = Path(o["timing_cache"])
    opts = EngineOptions(**o)
    as_85 = model_85(flags)
    factories, layers, read = builder_world(bundle, flags)
    fake = FakeTrt(factories, version="8.5.2.2" if as_85 else None, as_85=as_85)
    memory = int(flags[flags.index("--jetson-memory") + 1]) if "--jetson-memory" in flags else None
    result: dict[str, Any] = {"version": fake.__version__ if as_85 else trt.__version__, "notes": []}
    try:
        result["sidecar"] = build_engine(bundle, out, opts, trt=fake, cuda=FakeCuda(memory),
                                         say=result["notes"].append)
    except Exception as exc:  # reported, and the test decides whether it was expected
        result["error"] = f"{type(exc).__name__}: {exc}"
        if not type(exc).__name__.endswith("HrmEdgeError"):
            result["traceback"] = traceback.format_exc()
    result["cuda_closed"] = FakeCuda.closed
    result["timing_cache_read"] = read["timing_cache"].decode(errors="replace") if "timing_cache" in read else None
    result["config"] = summarize(layers)
    return result


def _j(v: Any) -> Any:
    if isinstance(v, Double):
        return f"<{v._spec_class.__name__}>"
    if type(v).__module__.startswith("tensorrt") and hasattr(v, "name"):
        return f"{type(v).__name__}.{v.name}"
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode(errors="replace")
    if isinstance(v, (list, tuple)):
        return [_j(x) for x in v]
    return v


def summarize(layers: list[Double]) -> dict[str, Any]:
    """What the code configured, from the recorded calls and property sets."""
    calls = [(c, m, [_j(a) for a in args], {k: _j(v) for k, v in kw.items()}) for c, m, args, kw in CALLS]
    sets = [(c, n, _j(v), who) for c, n, v, who in SETS]
    fp32 = sorted({who for c, n, v, who in SETS if (c, n) == ("ILayer", "precision") and v == trt.float32})
    return {
        "flags": [a[0] for c, m, a, _ in calls if (c, m) == ("IBuilderConfig", "set_flag")],
        "cleared": [a[0] for c, m, a, _ in calls if (c, m) == ("IBuilderConfig", "clear_flag")],
        "memory_pool": [a for c, m, a, _ in calls if m == "set_memory_pool_limit"],
        "network_flags": [a for c, m, a, _ in calls if m == "create_network"],
        "profile": [a for c, m, a, _ in calls if (c, m) == ("IOptimizationProfile", "set_shape")],
        "profiles_added": sum(m == "add_optimization_profile" for c, m, a, _ in calls),
        "timing_cache": [(m, a) for c, m, a, _ in calls if "timing_cache" in m or m == "serialize"],
        "output_types": [a for c, m, a, _ in calls if m == "set_output_type"],
        "precision_layers": fp32,
        "sets": sets,
        "problems": PROBLEMS,
    }


# --------------------------------------------------------------------------------------------------
# mode: run (the runner end to end; "device" memory is host bytes, execution is ONNX Runtime)
# --------------------------------------------------------------------------------------------------
class FakeMem:
    """Device memory and a stream for the runner: numbered allocations, byte copies, graph capture."""

    def __init__(self) -> None:
        self.mem: dict[int, bytearray] = {}
        self.next = 1 << 20
        self.freed = 0
        self.closed = False
        self.capturing: list[Any] | None = None
        self.launches = 0
        self.htod_bytes = 0
        self.dtoh_bytes = 0
        self.stream_obj = type("Stream", (), {"handle": 0xC0FFEE, "synchronize": lambda s: None})()

    def _find(self, ptr: int) -> tuple[bytearray, int]:
        for base, buf in self.mem.items():
            if base <= ptr < base + len(buf):
                return buf, ptr - base
        raise AssertionError(f"pointer {ptr:#x} is not in any live allocation")

    # the cuda_mem.PycudaBackend interface
    def device_name(self) -> str:
        return "Orin (double)"

    def compute_capability(self) -> str:
        return "8.7"

    def total_memory(self) -> int:
        return 64 << 30

    def integrated(self) -> bool:
        return False

    def alloc(self, nbytes: int) -> Any:
        ptr, self.next = self.next, self.next + ((nbytes + 4095) // 4096 + 1) * 4096
        self.mem[ptr] = bytearray(max(nbytes, 1))
        mem = self

        class Buf(int):
            def free(self) -> None:
                mem.mem.pop(int(self))
                mem.freed += 1

        return Buf(ptr)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype)

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        buf, off = self._find(int(dst))
        data = np.ascontiguousarray(src).tobytes()
        buf[off:off + len(data)] = data
        self.htod_bytes += len(data)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        buf, off = self._find(int(src))
        n = dst.nbytes
        dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(buf[off:off + n]), np.uint8)
        self.dtoh_bytes += n

    def stream(self) -> Any:
        return self.stream_obj

    def graphs(self) -> Any:
        return self

    def capture(self, handle: int, work: Any) -> Any:
        self.capturing = []
        work()
        recorded, self.capturing = self.capturing, None
        return recorded

    def launch(self, recorded: Any, handle: int) -> None:
        self.launches += 1
        for kernel in recorded:
            kernel()

    def close(self) -> None:
        self.closed = True

    def read(self, ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        buf, off = self._find(ptr)
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(bytes(buf[off:off + n]), dtype).reshape(shape)


def fake_device(engine: str | None, bundle: str, flags: list[str],
                factories: dict[str, Any] | None = None) -> tuple[FakeTrt, FakeMem, dict[str, Any]]:
    """The `tensorrt` module and a CUDA device whose engine "executes" the bundle's graph with ONNX Runtime.

    The engine's profile comes from the plan bytes when they carry it (`builder_world --plan-profile`), else
    from `engine`'s sidecar."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(Path(bundle) / "model.onnx"), providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    names = list(ins) + outs
    np_types = {"tensor(float)": trt.float32, "tensor(int32)": trt.int32, "tensor(bool)": trt.bool,
                "tensor(float16)": trt.float16}
    dtypes = {i.name: np_types[i.type] for i in list(sess.get_inputs()) + list(sess.get_outputs())}
    mem = FakeMem()
    state: dict[str, Any] = {"shapes": {}, "addr": {}, "executions": 0}

    def output_shape(name: str) -> tuple[int, ...]:
        b = next(iter(state["shapes"].values()))[0]
        meta = next(o for o in sess.get_outputs() if o.name == name)
        return tuple(b if not isinstance(d, int) else d for d in meta.shape)

    def kernel(addr: dict[str, int], shapes: dict[str, tuple]) -> None:
        feed = {n: mem.read(addr[n], shapes[n], trt.nptype(dtypes[n])) for n in ins}
        result = dict(zip(outs, sess.run(outs, feed)))
        for n, arr in result.items():
            mem.htod(addr[n], np.ascontiguousarray(arr, trt.nptype(dtypes[n])), None)
        state["executions"] += 1

    def execute(handle: int) -> bool:
        assert handle == mem.stream_obj.handle, "execute_async_v3 got another stream"
        addr, shapes = dict(state["addr"]), dict(state["shapes"])
        missing = [n for n in names if n not in addr]
        assert not missing, f"tensor addresses never set: {missing}"
        if mem.capturing is not None:
            mem.capturing.append(lambda: kernel(addr, shapes))
        else:
            kernel(addr, shapes)
        return True

    prof: dict[str, Any] = {}
    if engine is not None:
        prof.update({p["input"]: p for p in json.loads(Path(engine + ".json").read_text())["profiles"]})
    refuse_address = "--refuse-address" in flags

    def set_input_shape(name: str, shape: Any) -> bool:
        p = prof.get(name)
        if p and not p["min"][0] <= shape[0] <= p["max"][0]:
            return False  # as TensorRT does outside the profile
        state["shapes"][name] = tuple(shape)
        state["max_batch_seen"] = max(state.get("max_batch_seen", 0), int(shape[0]))
        return True

    def set_tensor_address(name: str, ptr: int) -> bool:
        if refuse_address:
            return False
        state["addr"][name] = int(ptr)
        return True

    context = double(trt.IExecutionContext, set_input_shape=set_input_shape, set_tensor_address=set_tensor_address,
                     get_tensor_shape=lambda name: output_shape(name), execute_async_v3=execute)
    eng = double(trt.ICudaEngine, {"num_io_tensors": len(names)}, get_tensor_name=lambda i: names[i],
                 get_tensor_mode=lambda n: trt.TensorIOMode.INPUT if n in ins else trt.TensorIOMode.OUTPUT,
                 get_tensor_dtype=lambda n: dtypes[n], create_execution_context=lambda: context,
                 get_tensor_profile_shape=lambda n, i: [[p[k][0]] + p[k][1:] for p in [prof[n]] for k in
                                                        ("min", "opt", "max")])
    def deserialize(data: Any) -> Double:
        data = bytes(data)
        if data.startswith(b"PLAN["):
            prof.clear()
            prof.update({p["input"]: p for p in json.loads(data[4:])})
        state["deserialized"] = state.get("deserialized", 0) + 1
        return eng

    runtime = double(trt.Runtime, deserialize_cuda_engine=deserialize)
    as_85 = model_85(flags)
    fake = FakeTrt({"Runtime": lambda logger: runtime, **(factories or {})}, version="8.5.2.2" if as_85 else None,
                   as_85=as_85)
    if as_85 and engine is not None:  # the engine was "built" by 8.5
        sc = json.loads(Path(engine + ".json").read_text())
        Path(engine + ".json").write_text(json.dumps({**sc, "tensorrt_version": "8.5.2.2"}))
    return fake, mem, state


def mode_run(engine: str, bundle: str, tokens_npy: str, halt: str, flags: list[str]) -> dict[str, Any]:
    from hrm_edge.runtime.onnxruntime import OrtRunner
    from hrm_edge.runtime.tensorrt import TrtRunner

    fake, mem, state = fake_device(engine, bundle, flags)
    tokens = np.load(tokens_npy)
    runner = TrtRunner.from_engine(engine, trt_module=fake, cuda_factory=lambda: mem,
                                   cuda_graph="--cuda-graph" in flags)
    try:
        with runner:
            got = runner.run_act(tokens, None, halt=halt)
            got2 = runner.run_act(tokens, None, halt=halt)  # a second batch reuses buffers (and graphs)
    except Exception as exc:  # reported, and the test decides whether it was expected
        return {"error": f"{type(exc).__name__}: {exc}", "closed": mem.closed, "problems": PROBLEMS,
                "traceback": "" if type(exc).__name__.endswith("HrmEdgeError") else traceback.format_exc()}
    ref_runner = OrtRunner.from_bundle(bundle)
    ref_runner.fusions = False  # the double's "engine" runs the bundle's graph as written, so must the reference
    with ref_runner:
        ref = ref_runner.run_act(tokens, None, halt=halt)
    return {"version": trt.__version__, "executions": state["executions"], "graph_launches": mem.launches,
            "closed": mem.closed, "live_allocations": len(mem.mem), "freed": mem.freed,
            "max_batch_seen": state.get("max_batch_seen"),
            "dtoh_bytes": mem.dtoh_bytes, "htod_bytes": mem.htod_bytes,
            "logits_bytes_per_sample": int(np.prod(got.logits.shape[1:])) * 4,
            "carry_bytes_per_sample": runner.spec.carry_len * runner.spec.hidden_size * 4 * 2,
            "steps": got.steps.tolist(), "ref_steps": ref.steps.tolist(),
            "grids_equal": bool((got.predictions == ref.predictions).all()),
            "second_equal": bool((got2.predictions == ref.predictions).all()),
            "max_logit_diff": float(np.abs(got.logits - ref.logits).max()),
            "q_halt_diff": float(np.abs(got.q_halt - ref.q_halt).max()),
            "problems": PROBLEMS}


def mode_cli(engine: str, bundle: str, flags: list[str], argv: list[str]) -> dict[str, Any]:
    """`hrm-edge ARGV` with `import tensorrt` answering the fake module and pycuda the fake device, so the
    CLI's own path (option checks, runtime opening, sidecar checks, batching, output) runs end to end.
    `--board NAME` / `--l4t X` make the machine a Jetson of that board and release."""
    import hrm_edge.runtime.jetson_info as jetson_info

    factories, _layers, _read = builder_world(bundle, [*flags, "--plan-profile"])
    fake, mem, state = fake_device(None if engine == "-" else engine, bundle, flags, factories)
    if "--board" in flags:
        facts = {"l4t": flags[flags.index("--l4t") + 1] if "--l4t" in flags else "36.4.3", "jetpack": None,
                 "board": flags[flags.index("--board") + 1], "nvpmodel": None, "jetson_clocks": None}
        jetson_info.jetson_facts = lambda: dict(facts)  # type: ignore[assignment]
    ran = run_cli_with(fake, mem, argv)
    calls = [m for c, m, _a, _k in CALLS if (c, m) == ("Builder", "build_serialized_network")]
    return {**ran, "problems": PROBLEMS, "max_batch_seen": state.get("max_batch_seen"),
            "executions": state["executions"], "closed": mem.closed, "builds": len(calls),
            "deserialized": state.get("deserialized", 0)}


def mode_probe85() -> dict[str, Any]:
    """Every name 8.6 added must be refused by the 8.5 model; the fp32 layer kinds seen by each."""
    from hrm_edge.runtime import trt_compat

    fake86 = FakeTrt({})
    kinds86 = sorted(f"LayerType.{k.name}" for k in trt_compat.fp32_layer_kinds(fake86))
    model_85(["--as-8.5"])
    fake = FakeTrt({}, version="8.5.2.2", as_85=True)
    reachable, checked = [], 0
    for name in API_86_NEW["module"] | {"nptype"}:
        checked += 1
        try:
            obj = getattr(fake, name)
            if name == "nptype":
                obj(trt.float32)
            reachable.append(name)
        except AttributeError:
            pass
    for chain in API_86_NEW["members"]:
        enum, member = chain.split(".")
        checked += 1
        if hasattr(getattr(fake, enum), member) or member in getattr(fake, enum).__members__:
            reachable.append(chain)
    for cls_name, attrs in API_86_NEW["attributes"].items():
        d = double(getattr(trt, cls_name))
        for a in attrs:
            checked += 1
            try:
                getattr(d, a)
                reachable.append(f"{cls_name}.{a}")
            except (AttributeError, AssertionError) as exc:
                if "does not exist" not in str(exc):
                    reachable.append(f"{cls_name}.{a} ({exc})")
    kinds85 = sorted(f"LayerType.{k.name}" for k in trt_compat.fp32_layer_kinds(fake))
    return {"reachable": reachable, "checked": checked, "fp32_kinds_85": kinds85, "fp32_kinds_86": kinds86}


def mode_schedule(engine: str, bundle: str, inputs_npz: str, halt: str, slots: str, flags: list[str]) -> dict[str, Any]:
    """Continuous vs static batching through the TensorRT runner (carry on the "device") at equal slots."""
    from hrm_edge.runtime.onnxruntime import OrtRunner
    from hrm_edge.runtime.scheduler import ContinuousScheduler, Puzzle, StaticScheduler
    from hrm_edge.runtime.tensorrt import TrtRunner

    fake, mem, state = fake_device(engine, bundle, flags)
    data = np.load(inputs_npz)
    tokens, pe = data["tokens"], data["puzzle_emb"] if "puzzle_emb" in data else None
    n, width = int(tokens.shape[0]), int(slots)

    def puzzles() -> list[Puzzle]:
        return [Puzzle(tokens[i], None if pe is None else pe[i], i) for i in range(n)]

    runner = TrtRunner.from_engine(engine, trt_module=fake, cuda_factory=lambda: mem,
                                   cuda_graph="--cuda-graph" in flags)
    with runner:
        static = StaticScheduler(runner, width, halt).run(puzzles())
        before = {"executions": state["executions"], "dtoh": mem.dtoh_bytes, "htod": mem.htod_bytes,
                  "launches": mem.launches}
        sched = ContinuousScheduler(runner, width, halt)
        cont = sched.run(puzzles())
        segments = sched.stats.segments
    ref_runner = OrtRunner.from_bundle(bundle)
    ref_runner.fusions = False  # the double's "engine" runs the bundle's graph as written, so must the reference
    with ref_runner:
        ref = ref_runner.run_act(tokens, pe, halt=halt) if halt != "batch-mean" else None
    pred = [f.logits.argmax(-1) for f in cont]
    return {"steps": [f.steps for f in cont], "static_steps": [f.steps for f in static],
            "ref_steps": None if ref is None else ref.steps.tolist(),
            "grids_equal_static": all(np.array_equal(a, f.logits.argmax(-1)) for a, f in zip(pred, static)),
            "grids_equal_ref": None if ref is None else all(map(np.array_equal, pred, ref.predictions)),
            "max_logit_diff_static": max(float(np.abs(a.logits - b.logits).max()) for a, b in zip(cont, static)),
            "segments": segments, "executions": state["executions"] - before["executions"],
            "graph_launches": mem.launches - before["launches"],
            "dtoh_bytes": mem.dtoh_bytes - before["dtoh"], "htod_bytes": mem.htod_bytes - before["htod"],
            "logits_bytes_per_sample": int(np.prod(cont[0].logits.shape)) * 4,
            "closed": mem.closed, "live_allocations": len(mem.mem), "problems": PROBLEMS}


# --------------------------------------------------------------------------------------------------
# mode: refit (an engine built --refittable by the build doubles takes a new bundle's weights)
# --------------------------------------------------------------------------------------------------
def run_cli_with(fake: Any, device: Any, argv: list[str]) -> dict[str, Any]:
    """`hrm-edge ARGV` in this process with `import tensorrt` answering `fake` and pycuda `device`: rc, stdout,
    stderr (what the command printed, SystemExit's code)."""
    import contextlib
    import io

    import hrm_edge.runtime.cuda_mem as cuda_mem
    from hrm_edge import cli

    sys.modules["tensorrt"] = fake  # type: ignore[assignment]
    cuda_mem.PycudaBackend = lambda *a, **k: device  # type: ignore[assignment,misc]
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["hrm-edge", *argv]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main()
        except SystemExit as exc:
            code = int(exc.code or 0)
    return {"rc": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def mode_refit(engine: str, bundle: str, out: str, flags: list[str]) -> dict[str, Any]:
    """The engine "holds" the old bundle's initializers (named as the ONNX parser names them); the refitter
    doubles record what the code hands them. 10.x / 11.x: `OnnxParserRefitter.refit_from_file`; 8.x: one
    `set_named_weights` per weight, whose values are compared with the new bundle's initializers here."""
    import onnx
    from onnx import numpy_helper

    from hrm_edge.runtime.trt_refit import refit_engine

    sc = json.loads(Path(engine + ".json").read_text())
    old = onnx.load(str(Path(sc["bundle"]) / "model.onnx"))
    # refittable weights are the float initializers layers consume (int64 shape constants are not weights; the
    # real 8.6 `trt.Weights` refuses them)
    names = [t.name for t in old.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    extra = flags[flags.index("--missing") + 1] if "--missing" in flags else None
    engine_names = names + ([extra] if extra else [])
    seen: dict[str, Any] = {}
    state: dict[str, Any] = {"from_file": None, "refits": 0}

    made: dict[int, Any] = {}

    def weights(*args: Any, **kwargs: Any) -> Any:  # the real Weights; what it was made from is kept here
        w = trt.Weights(*args, **kwargs)
        made[id(w)] = (w, np.array(args[0] if args else kwargs["a"]).copy())
        return w

    def set_named(name: str, weights: Any) -> bool:
        seen[name] = made[id(weights)][1]
        return True

    def from_file(path: str) -> bool:
        state["from_file"] = path
        seen.update({n: None for n in names})  # the parser refitter supplies every initializer of the file
        return True

    def refit() -> bool:
        state["refits"] += 1
        return "--refit-fails" not in flags

    eng = double(trt.ICudaEngine, {"refittable": True}, serialize=lambda: bytearray(b"PLAN-REFITTED"))
    runtime = double(trt.Runtime, deserialize_cuda_engine=lambda data: eng)
    refitter = double(trt.Refitter, get_all_weights=lambda: list(engine_names), set_named_weights=set_named,
                      get_missing_weights=lambda: [n for n in engine_names if n not in seen],
                      refit_cuda_engine=refit)
    factories: dict[str, Any] = {"Runtime": lambda logger: runtime, "Refitter": lambda e, logger: refitter,
                                 "Weights": weights}
    if hasattr(trt, "OnnxParserRefitter"):
        parser = double(trt.OnnxParserRefitter, {"num_errors": 0}, refit_from_file=from_file)
        factories["OnnxParserRefitter"] = lambda r, logger: parser
    as_85 = model_85(flags)
    fake = FakeTrt(factories, version="8.5.2.2" if as_85 else None, as_85=as_85)
    result: dict[str, Any] = {"version": fake.__version__ if as_85 else trt.__version__, "notes": []}
    try:
        if "--cli" in flags:  # `hrm-edge refit ENGINE --bundle B --out OUT`, the command's own path
            result.update(run_cli_with(fake, FakeCuda(), ["refit", engine, "--bundle", bundle, "--out", out]))
            if Path(out + ".json").is_file():
                result["sidecar"] = json.loads(Path(out + ".json").read_text())
        else:
            result["sidecar"] = refit_engine(engine, bundle, out=out, trt=fake, cuda=FakeCuda(),
                                             say=result["notes"].append)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        if not type(exc).__name__.endswith("HrmEdgeError"):
            result["traceback"] = traceback.format_exc()
    new = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(Path(bundle) / "model.onnx")).graph.initializer}
    oldv = {t.name: numpy_helper.to_array(t) for t in old.graph.initializer}
    by_name = [n for n, w in seen.items() if w is not None]
    result.update({
        "from_file": state["from_file"], "refit_calls": state["refits"], "set_named": sorted(by_name),
        "engine_weights": len(engine_names),
        "named_values_are_the_new_bundles": all(np.array_equal(seen[n].ravel(), new[n].ravel()) for n in by_name),
        "weights_that_changed": sum(not np.array_equal(new[n], oldv[n]) for n in names if n in new),
        "out_bytes": Path(out).read_bytes().decode(errors="replace") if Path(out).is_file() else None,
        "calls": sorted({f"{c}.{m}" for c, m, _, _ in CALLS}), "problems": PROBLEMS})
    return result


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    pos = [a for a in args if not a.startswith("--")]
    if mode == "names":
        out = mode_names()
    elif mode == "probe85":
        out = mode_probe85()
    elif mode == "cli":  # cli ENGINE BUNDLE [flags] -- ARGV...
        cut = args.index("--")
        mine = args[:cut]
        out = mode_cli(mine[0], mine[1], mine[2:], args[cut + 1:])
    elif mode == "build":
        out = mode_build(pos[0], pos[1], pos[2], args)
    elif mode == "run":
        out = mode_run(pos[0], pos[1], pos[2], pos[3], args)
    elif mode == "refit":
        out = mode_refit(pos[0], pos[1], pos[2], args)
    elif mode == "schedule":
        out = mode_schedule(pos[0], pos[1], pos[2], pos[3], pos[4], args)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out, default=_j))


if __name__ == "__main__":
    main()
