"""The engine cache: `solve` / `compare` / `bench --bundle B --trt` build B's TensorRT engine on first use
and load it on every later run, as Jetson users expect from tools like ONNX Runtime's TensorRT provider.

An engine is only valid for one model graph, one TensorRT version and one GPU / board / L4T, at one
precision and one optimization profile, so the cache key is exactly those: the bundle's ONNX hash, the
TensorRT version, the device name, compute capability, board and L4T release, the precision (the
bundle's: fp16 bundles make fp16 engines, int8-qdq bundles int8 ones), the typing (strong on TensorRT 11)
and the batch profile. Two profiles are offered: `throughput` (batch 1..N, tuned for N, the command's
--batch) and `latency` (batch 1 only, tuned for it). Each key is a folder holding `model.engine` and its
sidecar (whose `bundle` field leads the runner back to the bundle's puzzle table); one timing cache per
TensorRT version and device sits beside them, so a second profile or precision builds faster.

The cache lives in $HRM_EDGE_ENGINE_CACHE, else ~/.cache/hrm-edge/engines. Building goes through
`trt_build.build_engine`, so every check it makes applies here too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import atomic_write_json

PROFILES = ("throughput", "latency")
PRECISION_FLAGS = {"fp32": {}, "fp16": {"fp16": True}, "int8-qdq": {"int8": True}}


def cache_root() -> Path:
    return Path(os.environ.get("HRM_EDGE_ENGINE_CACHE") or Path.home() / ".cache" / "hrm-edge" / "engines")


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise HrmEdgeError(f"--trt-profile must be one of {', '.join(PROFILES)}, got {profile!r}")


def engine_options(manifest: dict[str, Any], profile: str, batch: int, timing_cache: Path | None) -> Any:
    """Build options for a bundle: its own precision, the chosen batch profile, the shared timing cache."""
    from hrm_edge.runtime.trt_build import EngineOptions

    check_profile(profile)
    precision = str(manifest.get("precision", "fp32"))
    if precision not in PRECISION_FLAGS:
        raise HrmEdgeError(f"--trt needs an fp32, fp16 or int8-qdq bundle; this one is {precision} (ONNX Runtime's "
                           "dynamic int8, which TensorRT cannot build)")
    fixed = manifest.get("batch")
    if isinstance(fixed, int):
        lo = opt = hi = fixed
    elif profile == "latency":
        lo = opt = hi = 1
    else:
        lo, opt, hi = 1, int(batch), int(batch)
    return EngineOptions(min_batch=lo, opt_batch=opt, max_batch=hi, timing_cache=timing_cache,
                         **PRECISION_FLAGS[precision])


def cache_key(onnx_sha256: str, here: dict[str, Any], opts: Any, typing: str) -> dict[str, Any]:
    """Everything an engine depends on (see the module docstring), as a JSON-able dict."""
    return {"onnx_sha256": onnx_sha256, "tensorrt": here.get("tensorrt_version"), "device": here.get("device_name"),
            "compute_capability": here.get("compute_capability"), "board": here.get("board"), "l4t": here.get("l4t"),
            "precision": opts.precision, "typing": typing,
            "profile": [opts.min_batch, opts.opt, opts.max_batch]}


def key_folder(key: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{key['precision']}-b{key['profile'][0]}-{key['profile'][2]}-{digest}"


def _timing_cache(root: Path, here: dict[str, Any]) -> Path:
    tag = re.sub(r"[^A-Za-z0-9.]+", "_", f"{here.get('tensorrt_version')}-{here.get('device_name')}")
    return root / f"timing-{tag}.cache"


def cached_engine(bundle: str | Path, *, profile: str = "throughput", batch: int = 16, trt: Any = None,
                  cuda_factory: Callable[[], Any] | None = None, root: Path | None = None,
                  strongly_typed: bool = False, say: Callable[[str], None] = print) -> Path:
    """The engine of `bundle` for this machine: from the cache, or built into it now."""
    from hrm_edge.runtime import trt_compat
    from hrm_edge.runtime.onnxruntime import read_manifest
    from hrm_edge.runtime.tensorrt import here_facts, import_tensorrt
    from hrm_edge.runtime.trt_build import build_engine

    bundle = Path(bundle)
    if not bundle.is_dir():
        raise HrmEdgeError("no such export bundle folder", bundle)
    check_profile(profile)
    manifest = read_manifest(bundle)
    root = Path(root) if root is not None else cache_root()
    trt = trt if trt is not None else import_tensorrt()
    if cuda_factory is None:
        from hrm_edge.runtime.cuda_mem import PycudaBackend

        cuda_factory = PycudaBackend
    cuda = cuda_factory()
    try:
        here = here_facts(str(trt.__version__), cuda)
    except BaseException:
        cuda.close()
        raise
    opts = engine_options(manifest, profile, batch, _timing_cache(root, here))
    opts.strongly_typed = strongly_typed
    typing = trt_compat.typing_for(trt_compat.version_tuple(trt), strongly_typed)
    key = cache_key(str((manifest.get("onnx") or {}).get("sha256")), here, opts, typing)
    engine = root / key_folder(key) / "model.engine"
    if engine.is_file() and engine.with_name("model.engine.json").is_file():
        cuda.close()
        say(f"engine cache: {engine} ({key['precision']}, batch {opts.min_batch}-{opts.max_batch})")
        return engine
    engine.parent.mkdir(parents=True, exist_ok=True)
    say(f"engine cache: building {bundle} -> {engine} (first use on this device)")
    build_engine(bundle, engine, opts, trt=trt, cuda=cuda, say=say)  # closes cuda; the sidecar is written last
    atomic_write_json(engine.parent / "key.json", key)
    return engine


def cached_engines(bundles: Sequence[Path] | None, trt: bool, *, batch: int, profile: str = "throughput",
                   say: Callable[[str], None] = print) -> list[Path]:
    """`--trt`: the cached engine of every --bundle (built on first use); nothing without --trt.

    The one call `compare` and `bench` make; `solve` uses `solve_artifacts`."""
    check_profile(profile)
    if not trt:
        return []
    if not bundles:
        raise HrmEdgeError("--trt builds engines from --bundle; give at least one --bundle")
    return [cached_engine(b, profile=profile, batch=batch, say=say) for b in bundles]


def solve_artifacts(bundle: Path | None, engine: Path | None, trt: bool, *, batch: int, profile: str = "throughput",
                    say: Callable[[str], None] = print) -> tuple[Path | None, Path | None]:
    """`solve --bundle B --trt`: (no bundle, B's cached engine), so the TensorRT runtime runs; else unchanged."""
    check_profile(profile)
    if not trt:
        return bundle, engine
    if bundle is None or engine is not None:
        raise HrmEdgeError("--trt builds the engine from --bundle: give --bundle and no --engine")
    return None, cached_engine(bundle, profile=profile, batch=batch, say=say)
