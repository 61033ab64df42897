"""TensorRT runner: a serialized engine plus its JSON sidecar, driven by the shared ACT driver.

The engine file (`model.engine`) is useless on another TensorRT version or GPU, so it always travels
with `model.engine.json` (TensorRT version, device name, JetPack/L4T, precision, ONNX hash, profiles,
the bundle's model spec and I/O). The runner refuses an engine whose sidecar does not match the
running TensorRT / device, saying to rebuild. `tensorrt` and `pycuda` are imported lazily (the
`trt` / `jetson` extras), so the package imports and its CPU tests run without them.

It uses the name-based I/O API (`set_input_shape`, `set_tensor_address`, `execute_async_v3`),
present from TensorRT 8.5 (JetPack 5) through 10.x (JetPack 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.fileio import read_json
from hrm_edge.runtime.base import ModelSpec, Runner, TensorMeta

SIDECAR_SUFFIX = ".json"


def import_tensorrt() -> Any:
    """`import tensorrt`, or one clear error saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: on a Jetson it comes with JetPack (python3-libnvinfer); on a desktop "
            "GPU `pip install hrm-edge[trt]`") from None
    return trt


def import_pycuda() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError:
        raise MissingDependencyError("pycuda is not installed (`pip install hrm-edge[jetson]` or `[trt]`)") from None
    except Exception as exc:  # pycuda present but no driver / GPU
        raise MissingDependencyError(f"pycuda cannot reach a CUDA driver: {exc}") from None
    return cuda


def sidecar_path(engine: str | Path) -> Path:
    return Path(str(engine) + SIDECAR_SUFFIX)


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    """The engine's sidecar, with a clear error when it is missing or not ours."""
    path = sidecar_path(engine)
    if not Path(engine).exists():
        raise HrmEdgeError("no such engine file", engine)
    if not path.exists():
        raise HrmEdgeError(f"engine has no sidecar {path.name}; rebuild it with `hrm-edge build-engine`", engine)
    data = read_json(path, "engine sidecar")
    for key in ("tensorrt_version", "device_name", "spec", "inputs", "act_mode"):
        if key not in data:
            raise HrmEdgeError(f"engine sidecar lacks {key!r}; rebuild the engine", path)
    return data


def sidecar_mismatch(sidecar: dict[str, Any], trt_version: str, device_name: str) -> str | None:
    """Why this engine cannot run here (None when it can). Engines are not portable across either."""
    built_v, built_d = str(sidecar["tensorrt_version"]), str(sidecar["device_name"])
    if built_v != trt_version:
        return (f"engine was built with TensorRT {built_v} but this is TensorRT {trt_version}; "
                "rebuild it here with `hrm-edge build-engine`")
    if built_d != device_name:
        return (f"engine was built on '{built_d}' but this device is '{device_name}'; "
                "rebuild it here with `hrm-edge build-engine`")
    return None


@dataclass
class TrtRunner(Runner):
    engine_path: str = ""
    sidecar: dict[str, Any] = field(default_factory=dict)
    name: str = "tensorrt"
    _state: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_engine(cls, engine: str | Path) -> TrtRunner:
        sc = read_sidecar(engine)
        return cls(spec=ModelSpec.from_dict(sc["spec"]), act_mode=sc["act_mode"], baked_halt=sc.get("halt"),
                   engine_path=str(engine), sidecar=sc)

    def input_metadata(self) -> dict[str, TensorMeta]:
        return {i["name"]: TensorMeta(np.dtype(i["dtype"]), tuple(i["shape"])) for i in self.sidecar["inputs"]}

    def activate(self) -> None:
        trt = import_tensorrt()
        cuda = import_pycuda()
        cuda.init()
        dev = cuda.Device(0)
        why = sidecar_mismatch(self.sidecar, trt.__version__, dev.name())
        if why:
            raise HrmEdgeError(why, self.engine_path)
        ctx = dev.make_context()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            engine = trt.Runtime(logger).deserialize_cuda_engine(Path(self.engine_path).read_bytes())
            if engine is None:
                raise HrmEdgeError("TensorRT could not deserialize this engine; rebuild it", self.engine_path)
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            self._state = {
                "trt": trt, "cuda": cuda, "ctx": ctx, "engine": engine, "context": engine.create_execution_context(),
                "stream": cuda.Stream(), "names": names, "buffers": {},
                "inputs": [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT],
            }
        except BaseException:
            ctx.pop()
            raise

    def deactivate(self) -> None:
        st = self._state
        if not st:
            return
        for buf in st["buffers"].values():
            buf[0].free()
        st["ctx"].pop()
        self._state = {}

    def _buffer(self, name: str, nbytes: int) -> Any:
        """Device buffer for a tensor, grown when a larger batch arrives."""
        st = self._state
        have = st["buffers"].get(name)
        if have is None or have[1] < nbytes:
            if have is not None:
                have[0].free()
            have = (st["cuda"].mem_alloc(max(nbytes, 1)), nbytes)
            st["buffers"][name] = have
        return have[0]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        st = self._state
        trt, cuda, engine, context, stream = st["trt"], st["cuda"], st["engine"], st["context"], st["stream"]
        st["ctx"].push()
        try:
            for name in st["inputs"]:
                arr = np.ascontiguousarray(feed[name].astype(trt.nptype(engine.get_tensor_dtype(name)), copy=False))
                context.set_input_shape(name, arr.shape)
                buf = self._buffer(name, arr.nbytes)
                cuda.memcpy_htod_async(buf, arr, stream)
                context.set_tensor_address(name, int(buf))
            outputs: dict[str, np.ndarray] = {}
            for name in st["names"]:
                if name in st["inputs"]:
                    continue
                shape = tuple(context.get_tensor_shape(name))
                host = np.empty(shape, dtype=trt.nptype(engine.get_tensor_dtype(name)))
                buf = self._buffer(name, host.nbytes)
                context.set_tensor_address(name, int(buf))
                outputs[name] = host
            if not context.execute_async_v3(stream.handle):
                raise HrmEdgeError("TensorRT execution failed", self.engine_path)
            for name, host in outputs.items():
                cuda.memcpy_dtoh_async(host, st["buffers"][name][0], stream)
            stream.synchronize()
        finally:
            st["ctx"].pop()
        return outputs
