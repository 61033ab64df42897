"""`hrm-edge refit`: an engine built `--refittable` takes a new bundle's weights in place, in seconds, no rebuild.

A `--mode full` adaptation changes the trunk's weights but not the graph: same nodes, same shapes, same
initializer names. TensorRT's refitter swaps the weights of a deserialized engine (10.x / 11.x straight from
the new ONNX file, 8.x by name: `trt_compat.refit_from_onnx`), and the engine is serialized again. The new
bundle must be the same model shape (spec, ACT mode, inputs, outputs, precision: checked against the engine's
sidecar before TensorRT is touched); the sidecar then names the new bundle and its ONNX hash, so runners pair
them as if the engine had been built from it. The engine and sidecar are replaced atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import atomic_write_bytes, atomic_write_json, file_sha256, read_json
from hrm_edge.runtime import trt_compat
from hrm_edge.runtime.tensorrt import here_facts, read_sidecar, sidecar_mismatch, sidecar_path

SAME_MODEL_KEYS = ("spec", "inputs", "outputs")


def check_refit(sidecar: dict[str, Any], manifest: dict[str, Any], engine: Path, bundle: Path) -> None:
    """Refuse, before any TensorRT call, an engine that cannot be refitted or a bundle of another model shape."""
    if not sidecar.get("refittable"):
        raise HrmEdgeError("engine was not built refittable; rebuild it once with `hrm-edge build-engine "
                           "--refittable`, then later weights refit in seconds", engine)
    for key in SAME_MODEL_KEYS:
        if sidecar.get(key) != manifest.get(key):
            raise HrmEdgeError(f"the bundle's {key} differs from the engine's: another model shape, which a refit "
                               "cannot change; build a new engine from it", bundle)
    if sidecar.get("act_mode") != (manifest.get("act") or {}).get("mode"):
        raise HrmEdgeError("the bundle's ACT export mode differs from the engine's; build a new engine", bundle)
    if sidecar.get("bundle_precision", "fp32") != manifest.get("precision", "fp32"):
        raise HrmEdgeError(f"the bundle is {manifest.get('precision')}, the engine was built from "
                           f"{sidecar.get('bundle_precision')}; build a new engine", bundle)


def default_out(engine: Path, bundle: Path) -> Path:
    """In place, unless the engine sits in another bundle's folder (a runner pairs an engine with the manifest
    beside it): then beside the new bundle's manifest, under the same name."""
    folder = engine.parent
    if (folder / "manifest.json").is_file() and folder.resolve() != bundle.resolve():
        return bundle / engine.name
    return engine


def refit_engine(engine: str | Path, bundle: str | Path, *, out: str | Path | None = None, trt: Any = None,
                 cuda: Any = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Refit `engine` with `bundle`'s weights into `out` (default: in place); returns the new sidecar."""
    engine, bundle = Path(engine), Path(bundle)
    out = Path(out) if out is not None else default_out(engine, bundle)
    sidecar = read_sidecar(engine)
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise HrmEdgeError("not an export bundle (no manifest.json)", bundle)
    manifest = read_json(manifest_path, "bundle manifest")
    check_refit(sidecar, manifest, engine, bundle)
    onnx_path = bundle / "model.onnx"
    if trt is None:
        from hrm_edge.runtime.tensorrt import import_tensorrt

        trt = import_tensorrt()
    if cuda is None:
        from hrm_edge.runtime.cuda_mem import PycudaBackend

        cuda = PycudaBackend()
    t0 = time.perf_counter()
    try:
        why = sidecar_mismatch(sidecar, here_facts(str(trt.__version__), cuda))
        if why:
            raise HrmEdgeError(why, engine)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        eng = runtime.deserialize_cuda_engine(engine.read_bytes())
        if eng is None:
            raise HrmEdgeError("TensorRT could not deserialize this engine; rebuild it", engine)
        refitter = trt.Refitter(eng, logger)
        say(f"refitting {engine} with {onnx_path} (TensorRT {trt.__version__})")
        how = trt_compat.refit_from_onnx(trt, refitter, logger, str(onnx_path), lambda: _initializers(onnx_path))
        plan = bytes(memoryview(eng.serialize()))
    finally:
        cuda.close()
    seconds = time.perf_counter() - t0
    new = {**sidecar, "bundle": str(bundle.resolve()), "bundle_manifest_sha256": file_sha256(manifest_path),
           "onnx_sha256": (manifest.get("onnx") or {}).get("sha256"),
           "refits": [*sidecar.get("refits", []), {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **how,
                                                   "from_onnx_sha256": sidecar.get("onnx_sha256"),
                                                   "seconds": round(seconds, 2)}]}
    atomic_write_bytes(out, lambda f: f.write(plan))
    atomic_write_json(sidecar_path(out), new)
    return new


def _initializers(onnx_path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
