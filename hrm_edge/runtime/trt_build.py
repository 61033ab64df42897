"""`hrm-edge build-engine`: an export bundle's model.onnx -> `model.engine` + `model.engine.json`.

One optimization profile over the batch axis. Two ways to say the precision, by TensorRT generation:
- strongly typed (TensorRT 11, the only mode there; 10.x with `--strongly-typed`): the network's tensor
  types are the bundle's, so the precision IS the bundle's (`export --precision fp16`: fp16 with fp32
  norms / softmax / residual sums; `int8-qdq`: int8 from its Q/DQ pairs, the rest fp32 at opset 17 and
  fp16 at opset >= 19, recorded as `int8+fp16`). `--fp16` / `--int8` are then checks against the bundle,
  never flags.
- weakly typed (8.5, 8.6, 10.x): `--fp16` lets TensorRT pick fp16 kernels, with the normalisation,
  softmax and reduction layers pinned to fp32 through obeyed precision constraints (fp16 RMS/LayerNorm
  sums overflow); `--int8` takes only an explicitly quantized bundle (QuantizeLinear / DequantizeLinear
  nodes: the path TensorRT 10 keeps) and also allows fp16 for the layers outside the Q/DQ pairs (with
  the same fp32 pins), unless the GPU has no fast fp16.
fp32 engines clear TF32, so they are the reference they claim to be. On a Jetson the workspace defaults
to a quarter of the board's memory (at most 4 GB): an 8 GB Orin Nano shares it with the CPU and runs out
when TensorRT takes all free memory. DLA engines need a static batch (min = opt = max). The timing cache
is read before and written after the build. Every TensorRT version difference goes through
`trt_compat`. The sidecar records what a runner checks (TensorRT version, device, compute capability,
board, L4T, the bundle's ONNX hash, the profile) and what a person needs to reproduce the build,
including the equivalent `trtexec` command line for the TensorRT that built it.

`trt` (the tensorrt module) and `cuda` (a `cuda_mem.PycudaBackend`) are parameters so the CPU tests can
run this whole function against doubles spec'd from the real TensorRT classes.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx

from hrm_edge import __version__
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import atomic_write_bytes, atomic_write_json, file_sha256
from hrm_edge.runtime import trt_compat
from hrm_edge.runtime.jetson_info import jetson_facts
from hrm_edge.runtime.tensorrt import sidecar_path

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
ORT_INT8_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul"})
# Kept in fp32 under --fp16: reductions and softmax, and the arithmetic of a norm around its ReduceMean
# (x*x or x-mean before it; x-mean, +eps, sqrt, reciprocal and the dividing Mul/Div after it).
FP32_OPS = frozenset({"ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceMax", "ReduceMin", "ReduceL2",
                      "ReduceLogSumExp", "Softmax", "LogSoftmax", "LayerNormalization"})
_NORM_BEFORE = frozenset({"Mul", "Pow", "Sub"})
_NORM_AFTER = frozenset({"Add", "Sub", "Sqrt", "Reciprocal", "Div", "Mul"})
# bundle precision -> what a strongly typed engine built from it runs
STRONG_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8-qdq": "int8"}
WORKSPACE_CAP_MB = 4096


@dataclass
class EngineOptions:
    fp16: bool = False
    int8: bool = False
    workspace_mb: int | None = None
    timing_cache: Path | None = None
    min_batch: int = 1
    opt_batch: int | None = None  # default: max_batch
    max_batch: int = 16
    builder_level: int | None = None  # None: TensorRT's default (3)
    dla: int | None = None
    gpu_fallback: bool = False
    strongly_typed: bool = False  # 10.x: build strongly typed (11.x always is)
    refittable: bool = False  # BuilderFlag.REFIT: `hrm-edge refit` can replace the weights later

    def validate(self) -> None:
        """Every option checked before any work (one clear line each)."""
        opt = self.opt
        if not 1 <= self.min_batch <= opt <= self.max_batch:
            raise HrmEdgeError(f"batch profile needs 1 <= --min-batch ({self.min_batch}) <= --opt-batch ({opt}) "
                               f"<= --max-batch ({self.max_batch})")
        if self.builder_level is not None and not 0 <= self.builder_level <= 5:
            raise HrmEdgeError(f"--builder-level must be 0-5, got {self.builder_level}")
        if self.workspace_mb is not None and self.workspace_mb <= 0:
            raise HrmEdgeError(f"--workspace must be a positive number of MB, got {self.workspace_mb}")
        if self.gpu_fallback and self.dla is None:
            raise HrmEdgeError("--gpu-fallback only applies with --dla N")
        if self.dla is not None and self.dla < 0:
            raise HrmEdgeError(f"--dla takes a DLA core number (0 or 1), got {self.dla}")
        if self.dla is not None and not (self.fp16 or self.int8):
            raise HrmEdgeError("DLA runs fp16 or int8 only: add --fp16 or --int8 to --dla")
        if self.dla is not None and not self.min_batch == self.opt == self.max_batch:
            raise HrmEdgeError(f"DLA needs a static shape (min = opt = max batch), got {self.min_batch}/{self.opt}/"
                               f"{self.max_batch}: pass --min-batch N --opt-batch N --max-batch N")
        if self.timing_cache is not None and self.timing_cache.is_dir():
            raise HrmEdgeError("--timing-cache is a folder, expected a file", self.timing_cache)

    @property
    def opt(self) -> int:
        return self.opt_batch if self.opt_batch is not None else self.max_batch

    @property
    def precision(self) -> str:
        """What was asked (weakly typed); the sidecar records what was built."""
        return "+".join(p for p, on in (("int8", self.int8), ("fp16", self.fp16)) if on) or "fp32"


# --------------------------------------------------------------------------------------------------
# what the ONNX graph holds
# --------------------------------------------------------------------------------------------------
def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    out = []
    for n in graph.node:
        out.append(n)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += _all_nodes(a.g)
            out += [x for g in a.graphs for x in _all_nodes(g)]
    return out


def qdq_count(model: onnx.ModelProto) -> int:
    """QuantizeLinear + DequantizeLinear nodes (explicit quantization), subgraphs included."""
    return sum(n.op_type in QDQ_OPS for n in _all_nodes(model.graph))


def fp32_node_names(model: onnx.ModelProto) -> list[str]:
    """ONNX nodes of the norms, softmaxes and reductions that must stay fp32 under --fp16.

    The export names nodes after their module scope (`/H_level/layers.0/ReduceMean`,
    `/h_layers.0/norm1/Div`, ...), and the TensorRT ONNX parser names each layer after its node, so
    these names find the layers (exact names: `X_1` is another node of the export, not a helper of X).
    Seeds are the FP32_OPS; around each reduction the square / centring that feeds it and the chain
    +eps -> sqrt -> divide -> multiply that applies it are added.
    """
    nodes = _all_nodes(model.graph)
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    keep: set[str] = set()
    for n in nodes:
        if n.op_type not in FP32_OPS:
            continue
        keep.add(n.name)
        if not n.op_type.startswith("Reduce"):
            continue
        src = producer.get(n.input[0]) if n.input else None
        if src is not None and src.op_type in _NORM_BEFORE:
            keep.add(src.name)
        frontier, depth = [n], 0
        while frontier and depth < 4:  # ReduceMean -> Add(eps) -> Sqrt -> Div(1/.) -> Mul(x * .), at most
            nxt = []
            for f in frontier:
                for c in consumers.get(f.output[0], []) if f.output else []:
                    if c.op_type in _NORM_AFTER and c.name not in keep:
                        keep.add(c.name)
                        if c.op_type != "Mul":
                            nxt.append(c)
            frontier, depth = nxt, depth + 1
    return sorted(k for k in keep if k)


# --------------------------------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------------------------------
def trtexec_command(opts: EngineOptions, onnx_path: Path, out: Path, inputs: list[dict[str, Any]],
                    fp32_layers: list[str], *, version: str = "10.3", typing: str = "weak",
                    fp16: bool | None = None, int8: bool | None = None, workspace_mb: int | None = None,
                    tf32: bool | None = None) -> str:
    """The equivalent NVIDIA `trtexec` line, valid for TensorRT `version`, to reproduce the build."""
    def shapes(b: int) -> str:
        return ",".join(f"{i['name']}:" + "x".join(str(b) if not isinstance(d, int) else str(d) for d in i["shape"])
                        for i in inputs if i["shape"] and not isinstance(i["shape"][0], int))

    fp16 = opts.fp16 if fp16 is None else fp16
    int8 = opts.int8 if int8 is None else int8
    workspace_mb = opts.workspace_mb if workspace_mb is None else workspace_mb
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={out}"]
    if shapes(1):
        cmd += [f"--minShapes={shapes(opts.min_batch)}", f"--optShapes={shapes(opts.opt)}",
                f"--maxShapes={shapes(opts.max_batch)}"]
    cmd += trt_compat.trtexec_flags(trt_compat.parse_version(version), typing=typing, fp16=fp16, int8=int8,
                                    fp32_layers=fp32_layers, tf32=(fp16 or int8) if tf32 is None else tf32,
                                    builder_level=opts.builder_level)
    if workspace_mb:
        cmd.append(f"--memPoolSize=workspace:{workspace_mb}M")
    if opts.timing_cache:
        cmd.append(f"--timingCacheFile={opts.timing_cache}")
    if opts.refittable:
        cmd.append("--refit")
    if opts.dla is not None:
        cmd.append(f"--useDLACore={opts.dla}")
        if opts.gpu_fallback:
            cmd.append("--allowGPUFallback")
    return shlex.join(cmd)


def default_workspace_mb(total_bytes: int | None, integrated: bool) -> int | None:
    """Workspace when --workspace is not given: on a shared-memory board (Jetson) a quarter of its memory,
    at most 4 GB (TensorRT's own default, all free memory, starves the CPU side of an 8 GB Orin Nano);
    None (TensorRT's default) on a discrete GPU."""
    if not integrated or not total_bytes:
        return None
    return max(256, min(WORKSPACE_CAP_MB, int(total_bytes) // 4 >> 20))


def strong_precision(manifest: dict[str, Any], opts: EngineOptions, bundle: Path) -> str:
    """A strongly typed engine runs the bundle's own types; --fp16 / --int8 must agree with them."""
    have = str(manifest.get("precision", "fp32"))
    if have not in STRONG_PRECISION:
        raise HrmEdgeError(f"a strongly typed build takes fp32, fp16 or int8-qdq bundles; this one is {have} "
                           "(ONNX Runtime's dynamic int8): export with --precision int8-qdq or fp16", bundle)
    got = STRONG_PRECISION[have]
    if got == "int8" and (manifest.get("quantization") or {}).get("body") == "fp16":
        got = "int8+fp16"  # an opset >= 19 int8-qdq bundle: fp16 outside the Q/DQ pairs (export/precision.py)
    if opts.fp16 and got == "int8":
        raise HrmEdgeError("--fp16: strongly typed engines take their precision from the graph, and this int8-qdq "
                           "bundle is fp32 outside its Q/DQ pairs (opset 17 has fp32 scales only); export with "
                           "--precision int8-qdq --opset 19 for an fp16 body, or drop --fp16", bundle)
    if opts.fp16 and got not in ("fp16", "int8+fp16"):
        raise HrmEdgeError(f"--fp16: strongly typed engines take their precision from the graph, and this bundle is "
                           f"{have}; export with --precision fp16 (fp32 norms and softmax are kept) and build that",
                           bundle)
    if opts.int8 and not got.startswith("int8"):
        raise HrmEdgeError(f"--int8: strongly typed engines take int8 from Q/DQ nodes, and this bundle is {have}; "
                           "export with --precision int8-qdq", bundle)
    return got


def check_bundle(bundle: Path, opts: EngineOptions) -> tuple[dict[str, Any], Path, onnx.ModelProto]:
    """The bundle's manifest, model path and graph (weights not loaded), refused early when unusable."""
    from hrm_edge.runtime.onnxruntime import read_manifest

    manifest = read_manifest(bundle)
    onnx_path = Path(bundle) / manifest["onnx"].get("file", "model.onnx")
    if not onnx_path.is_file():
        raise HrmEdgeError("bundle has no model file", onnx_path)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise HrmEdgeError(f"not a readable ONNX model: {str(exc).splitlines()[0][:160]}", onnx_path) from None
    ops = {n.op_type for n in _all_nodes(model.graph)}
    if opts.int8:
        if ops & ORT_INT8_OPS:
            raise HrmEdgeError(f"--int8 needs an explicitly quantized (Q/DQ) export; this bundle is ONNX Runtime's "
                               f"dynamic int8 ({', '.join(sorted(ops & ORT_INT8_OPS))}), which TensorRT cannot build. "
                               "Export with --precision int8-qdq", bundle)
        if not qdq_count(model):
            raise HrmEdgeError("--int8 needs an explicitly quantized export (QuantizeLinear/DequantizeLinear nodes) "
                               "and this bundle has none; export with --precision int8-qdq", bundle)
    fixed = manifest.get("batch")
    if isinstance(fixed, int) and not (opts.min_batch == opts.opt == opts.max_batch == fixed):
        raise HrmEdgeError(f"bundle was exported for a fixed batch of {fixed}; pass --min-batch/--opt-batch/"
                           f"--max-batch {fixed} or re-export with a dynamic batch", bundle)
    return manifest, onnx_path, model


def build_engine(bundle: str | Path, out: str | Path, opts: EngineOptions, *, trt: Any = None, cuda: Any = None,
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    """Build `out` (+ `out.json`) from `bundle`; returns the sidecar. Raises HrmEdgeError with the reason."""
    bundle, out = Path(bundle), Path(out)
    opts.validate()
    manifest, onnx_path, model = check_bundle(bundle, opts)
    facts = jetson_facts()
    if opts.dla is not None and "orin nano" in str(facts.get("board") or "").lower():
        raise HrmEdgeError(f"--dla: {facts['board']} has no DLA cores (Orin Nano); drop --dla")
    if trt is None:
        from hrm_edge.runtime.tensorrt import import_tensorrt

        trt = import_tensorrt()
    version = trt_compat.version_tuple(trt)
    typing = trt_compat.typing_for(version, opts.strongly_typed)
    if typing == "strong":
        precision = strong_precision(manifest, opts, bundle)
        fp16 = int8 = False  # no flags: the graph's types decide
    else:
        precision, fp16, int8 = "", opts.fp16, opts.int8
    if cuda is None:
        from hrm_edge.runtime.cuda_mem import PycudaBackend

        cuda = PycudaBackend()
    t0 = time.perf_counter()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        fast = trt_compat.fast_fp16(trt, builder)
        if typing == "weak" and int8 and not fp16:
            if fast:
                fp16 = True  # layers outside the Q/DQ pairs would otherwise run fp32
                say("note: --int8 also allows fp16 for the layers outside the Q/DQ pairs (norms and softmax stay "
                    "fp32)")
            else:
                say("note: this GPU has no fast fp16, so the layers outside the Q/DQ pairs stay fp32")
        elif fp16 and fast is False:
            say("note: this GPU has no fast fp16; the engine is built as asked but may not be faster")
        if typing == "weak":
            precision = "+".join(p for p, on in (("int8", int8), ("fp16", fp16)) if on) or "fp32"
        if opts.dla is not None and opts.dla >= builder.num_DLA_cores:
            raise HrmEdgeError(f"--dla {opts.dla}: this device has {builder.num_DLA_cores} DLA cores "
                               "(Orin Nano has none); drop --dla")
        network = builder.create_network(trt_compat.network_flags(trt, typing == "strong"))
        parser = trt.OnnxParser(network, logger)
        say(f"parsing {onnx_path} ({len(model.graph.node)} nodes)")
        if not parser.parse_from_file(str(onnx_path)):
            errs = trt_compat.parser_errors(parser, trt, [n.name for n in model.graph.node])
            raise HrmEdgeError("TensorRT cannot parse the model: " + "; ".join(errs or ["no error reported"]),
                               onnx_path)

        config = builder.create_builder_config()
        workspace = opts.workspace_mb or default_workspace_mb(cuda.total_memory(), cuda.integrated())
        if workspace:
            trt_compat.set_workspace(trt, config, workspace << 20)
        level_applied = None
        if opts.builder_level is not None:
            level_applied = trt_compat.set_builder_level(trt, config, opts.builder_level)
            if not level_applied:
                say(f"note: TensorRT {trt.__version__} has no builder optimization level; --builder-level ignored")
        fp32_nodes = fp32_node_names(model) if fp16 else []
        constrained = _keep_fp32(trt, network, set(fp32_nodes)) if fp16 else []
        flags = trt_compat.set_precision_flags(trt, config, fp16=fp16, int8=int8, obey=bool(constrained))
        tf32 = precision != "fp32"
        if not tf32:
            trt_compat.clear_tf32(trt, config)
        if opts.refittable:
            trt_compat.set_refittable(trt, config)
            flags.append("REFIT")
        if opts.dla is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = opts.dla
            if opts.gpu_fallback:
                config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
                flags.append("GPU_FALLBACK")

        profiles = _add_profile(builder, config, network, opts)

        cache_in = opts.timing_cache.read_bytes() if opts.timing_cache and opts.timing_cache.is_file() else b""
        cache = None
        if opts.timing_cache:
            cache = config.create_timing_cache(cache_in)
            if not config.set_timing_cache(cache, False):
                say(f"note: timing cache {opts.timing_cache} does not match this TensorRT/device; starting a new one")
                cache = config.create_timing_cache(b"")
                config.set_timing_cache(cache, True)

        say(f"building {precision} engine ({typing}ly typed) for batch {opts.min_batch}-{opts.max_batch} "
            f"(opt {opts.opt}); this takes minutes on a Jetson")
        plan = trt_compat.build_plan(builder, network, config)
        if plan is None:
            raise HrmEdgeError("TensorRT failed to build the engine (its log above says why)", onnx_path)
        build_s = time.perf_counter() - t0

        say(f"writing {out} ({len(plan) / 1e6:.1f} MB)")
        if opts.timing_cache:
            data = bytes(memoryview(config.get_timing_cache().serialize()))
            atomic_write_bytes(opts.timing_cache, lambda f: f.write(data))
        sidecar = {
            "format": "hrm-edge-engine", "hrm_edge_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "tensorrt_version": str(trt.__version__), "device_name": cuda.device_name(),
            "compute_capability": cuda.compute_capability(), "l4t": facts["l4t"], "jetpack": facts["jetpack"],
            "board": facts["board"], "precision": precision, "typing": typing,
            "bundle_precision": manifest.get("precision", "fp32"), "flags": flags, "tf32": tf32,
            "profiles": profiles, "workspace_mb": workspace, "builder_level": opts.builder_level,
            "builder_level_applied": level_applied, "dla_core": opts.dla, "gpu_fallback": opts.gpu_fallback,
            "timing_cache": str(opts.timing_cache) if opts.timing_cache else None,
            "fp32_layers": constrained, "bundle": str(bundle.resolve()), "refittable": opts.refittable,
            "bundle_manifest_sha256": file_sha256(bundle / "manifest.json"),
            "onnx_sha256": manifest["onnx"].get("sha256"), "build_seconds": round(build_s, 2),
            "spec": manifest["spec"], "act_mode": manifest["act"]["mode"], "halt": manifest["act"].get("halt"),
            "inputs": manifest["inputs"], "outputs": manifest["outputs"], "options": _opts_dict(opts),
            "trtexec": trtexec_command(opts, onnx_path, out, manifest["inputs"], constrained,
                                       version=str(trt.__version__), typing=typing, fp16=fp16, int8=int8,
                                       workspace_mb=workspace, tf32=tf32),
        }
        atomic_write_bytes(out, lambda f: f.write(plan))
        atomic_write_json(sidecar_path(out), sidecar)
    finally:
        cuda.close()
    return sidecar


def _opts_dict(opts: EngineOptions) -> dict[str, Any]:
    d = asdict(opts)
    d["timing_cache"] = str(opts.timing_cache) if opts.timing_cache else None
    return d


def _keep_fp32(trt: Any, network: Any, node_names: set[str]) -> list[str]:
    """Pin the norm / softmax / reduction layers (and their float outputs) to fp32; returns their names."""
    kinds = trt_compat.fp32_layer_kinds(trt)
    floats = (trt.float32, trt.float16)
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type not in kinds and layer.name not in node_names:
            continue
        outs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not outs:
            continue
        trt_compat.pin_fp32(trt, layer, outs)
        pinned.append(layer.name)
    return pinned


def _add_profile(builder: Any, config: Any, network: Any, opts: EngineOptions) -> list[dict[str, Any]]:
    """One optimization profile: every input's batch axis from --min-batch to --max-batch."""
    profile = builder.create_optimization_profile()
    shapes = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if not dims or dims[0] != -1:
            continue
        if any(d == -1 for d in dims[1:]):
            raise HrmEdgeError(f"input {tensor.name} has dynamic dimensions besides the batch: {dims}")
        lo, mid, hi = ([b] + dims[1:] for b in (opts.min_batch, opts.opt, opts.max_batch))
        profile.set_shape(tensor.name, lo, mid, hi)
        shapes.append({"input": tensor.name, "min": lo, "opt": mid, "max": hi})
    config.add_optimization_profile(profile)
    return shapes
