"""TensorRT runner: a serialized engine plus its JSON sidecar, driven by the shared ACT driver.

The engine file (`model.engine`) is useless on another TensorRT version or GPU, so it always travels
with `model.engine.json` (TensorRT version, device name, compute capability, board, JetPack/L4T,
precision, ONNX hash, profiles, the bundle's model spec and I/O). The runner refuses, in one line that
says to rebuild, an engine whose sidecar does not match what it runs on (TensorRT version, compute
capability, board model, L4T: every Orin calls its GPU "Orin", so the device name alone would let an AGX
Orin engine onto an Orin Nano) or the bundle beside it (its ONNX hash). A batch larger than the
engine's optimization profile runs in chunks of the profile's maximum (`batch-mean` halting, whose
answers depend on the batch, is refused instead), and every `set_input_shape` / `set_tensor_address`
result is checked. `tensorrt` and `pycuda` are imported lazily (the
`trt` / `jetson` extras), so the package imports and its CPU tests run without them.

It uses the name-based I/O API (`set_input_shape`, `set_tensor_address`, `execute_async_v3`),
present from TensorRT 8.5 (JetPack 5) through 11.x (JetPack 7); the rest of the version differences
live in `trt_compat`. Device memory goes through the small interface of `cuda_mem` (pycuda).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.fileio import read_json
from hrm_edge.runtime import trt_compat
from hrm_edge.runtime.base import ActResult, ModelSpec, Runner, StepSession, TensorMeta

SIDECAR_SUFFIX = ".json"


def import_tensorrt() -> Any:
    """`import tensorrt`, or one clear error saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: on a Jetson it comes with JetPack (python3-libnvinfer); on a desktop "
            "GPU `pip install 'hrm-edge[trt]'`") from None
    return trt


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


# sidecar key -> what it is called in the refusal
_MUST_MATCH = (("tensorrt_version", "TensorRT"), ("compute_capability", "compute capability"),
               ("board", "board"), ("l4t", "L4T"), ("device_name", "device"))


def here_facts(trt_version: str, cuda: Any) -> dict[str, Any]:
    """What an engine must match on this machine: TensorRT, GPU name and compute capability, board, L4T."""
    from hrm_edge.runtime.jetson_info import jetson_facts

    facts = jetson_facts()
    cc = getattr(cuda, "compute_capability", None)
    return {"tensorrt_version": trt_version, "device_name": cuda.device_name(),
            "compute_capability": cc() if cc else None, "board": facts["board"], "l4t": facts["l4t"]}


def sidecar_mismatch(sidecar: dict[str, Any], here: dict[str, Any]) -> str | None:
    """Why this engine cannot run here (None when it can). Engines are portable across none of these.

    A fact unknown on either side (an older sidecar, no device tree off a Jetson) is not compared.
    """
    for key, what in _MUST_MATCH:
        built, now = sidecar.get(key), here.get(key)
        if built is None or now is None or str(built) == str(now):
            continue
        return (f"engine was built for {what} {built!r} but this is {what} {now!r}; "
                "rebuild it here with `hrm-edge build-engine`")
    return None


def engine_bundle_dir(engine: str | Path, sidecar: dict[str, Any]) -> Path:
    """The export bundle an engine belongs to: its folder when the manifest is there, else the one it was built
    from (an engine in the engine cache)."""
    folder = Path(engine).parent
    if (folder / "manifest.json").is_file() or not sidecar.get("bundle"):
        return folder
    return Path(sidecar["bundle"])


def bundle_mismatch(sidecar: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """Why this engine does not belong to this bundle (its ONNX hash differs), or None."""
    built, have = sidecar.get("onnx_sha256"), (manifest.get("onnx") or {}).get("sha256")
    if built and have and built != have:
        return (f"engine was built from another model.onnx (sha256 {built[:12]}...) than the bundle beside it "
                f"({have[:12]}...); rebuild it with `hrm-edge build-engine`")
    return None


@dataclass
class TrtRunner(Runner):
    """An engine run through the shared ACT driver; in step mode the carry never leaves the device.

    `trt_module` / `cuda_factory` default to `import tensorrt` and pycuda (`cuda_mem.PycudaBackend`);
    the CPU tests pass doubles spec'd from the real TensorRT classes instead.
    """

    engine_path: str = ""
    sidecar: dict[str, Any] = field(default_factory=dict)
    name: str = "tensorrt"
    cuda_graph: bool = False
    trt_module: Any = None
    cuda_factory: Callable[[], Any] | None = None
    _state: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_engine(cls, engine: str | Path, **kw: Any) -> TrtRunner:
        sc = read_sidecar(engine)
        manifest_path = engine_bundle_dir(engine, sc) / "manifest.json"
        if manifest_path.is_file():
            why = bundle_mismatch(sc, read_json(manifest_path, "bundle manifest"))
            if why:
                raise HrmEdgeError(why, engine)
        return cls(spec=ModelSpec.from_dict(sc["spec"]), act_mode=sc["act_mode"], baked_halt=sc.get("halt"),
                   engine_path=str(engine), sidecar=sc, **kw)

    @property
    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch of the engine's profile: the engine's own once active, else the sidecar's."""
        if self._state.get("batch_range"):
            return self._state["batch_range"]
        prof = (self.sidecar.get("profiles") or [{}])[0]
        return (int(prof["min"][0]), int(prof["max"][0])) if prof.get("max") else (1, 1 << 30)

    def input_metadata(self) -> dict[str, TensorMeta]:
        return {i["name"]: TensorMeta(np.dtype(i["dtype"]), tuple(i["shape"])) for i in self.sidecar["inputs"]}

    def activate(self) -> None:
        trt = self.trt_module or import_tensorrt()
        if self.cuda_factory is None:
            from hrm_edge.runtime.cuda_mem import PycudaBackend

            cuda = PycudaBackend()
        else:
            cuda = self.cuda_factory()
        try:
            why = sidecar_mismatch(self.sidecar, here_facts(str(trt.__version__), cuda))
            if why:
                raise HrmEdgeError(why, self.engine_path)
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            engine = runtime.deserialize_cuda_engine(Path(self.engine_path).read_bytes())
            if engine is None:
                raise HrmEdgeError("TensorRT could not deserialize this engine; rebuild it", self.engine_path)
            inputs, outputs = trt_compat.io_tensors(trt, engine)
            self._state = {"trt": trt, "cuda": cuda, "runtime": runtime, "engine": engine,
                           "context": engine.create_execution_context(), "stream": cuda.stream(),
                           "inputs": inputs, "outputs": outputs, "buffers": {}, "graphs": {},
                           "batch_range": trt_compat.profile_batch_range(engine, "tokens")}
        except BaseException:
            cuda.close()
            self._state = {}
            raise

    def deactivate(self) -> None:
        st, self._state = self._state, {}
        if not st:
            return
        try:
            for buf in st["buffers"].values():
                buf[0].free()
        finally:
            st["cuda"].close()

    # -- device memory ---------------------------------------------------------------------------
    def _buffer(self, key: str, nbytes: int) -> int:
        """Device pointer of a named buffer, (re)allocated when a larger one is needed."""
        bufs = self._state["buffers"]
        have = bufs.get(key)
        if have is None or have[1] < nbytes:
            if have is not None:
                have[0].free()
                self._state["graphs"].clear()  # captured graphs point at the old address
            have = (self._state["cuda"].alloc(nbytes), nbytes)
            bufs[key] = have
        return int(have[0])

    def _dtype(self, name: str) -> np.dtype:
        st = self._state
        return trt_compat.nptype(st["trt"], st["engine"].get_tensor_dtype(name))

    def set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """`set_input_shape`, refused shapes reported (TensorRT answers False outside the profile)."""
        if not self._state["context"].set_input_shape(name, tuple(int(d) for d in shape)):
            lo, hi = self.batch_range
            raise HrmEdgeError(f"TensorRT refused shape {tuple(shape)} for input {name!r} (the engine's profile "
                               f"takes batch {lo}-{hi}); rebuild with --max-batch", self.engine_path)

    def set_address(self, name: str, ptr: int) -> None:
        if not self._state["context"].set_tensor_address(name, int(ptr)):
            raise HrmEdgeError(f"TensorRT refused the device address of tensor {name!r}", self.engine_path)

    # -- batches larger than the profile ---------------------------------------------------------------
    def run_act(self, tokens: np.ndarray, puzzle_emb: np.ndarray | None = None, halt: str = "max") -> ActResult:
        """The shared ACT driver, in chunks of the profile's maximum batch when the batch is larger."""
        lo, hi = self.batch_range
        b = int(tokens.shape[0])
        if b < lo:
            raise HrmEdgeError(f"batch {b} is below the engine's profile minimum {lo}; rebuild with --min-batch {b}",
                               self.engine_path)
        if b <= hi:
            return super().run_act(tokens, puzzle_emb, halt)
        if halt == "batch-mean":
            raise HrmEdgeError(f"batch {b} exceeds the engine's profile maximum {hi}, and batch-mean halting depends "
                               f"on the whole batch; pass --batch {hi} or rebuild with --max-batch {b}",
                               self.engine_path)
        if b % hi and b % hi < lo:
            raise HrmEdgeError(f"batch {b} in chunks of the profile maximum {hi} leaves {b % hi}, below the profile "
                               f"minimum {lo}; pass --batch {hi}", self.engine_path)
        parts = [super(TrtRunner, self).run_act(tokens[i:i + hi], None if puzzle_emb is None else
                                                puzzle_emb[i:i + hi], halt) for i in range(0, b, hi)]
        return ActResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                           ("logits", "q_halt", "q_continue", "steps")))
    # -- one call with host inputs and outputs (unrolled / loop graphs) ------------------------------
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        st = self._state
        cuda, context, stream = st["cuda"], st["context"], st["stream"]
        for name in st["inputs"]:
            arr = np.ascontiguousarray(feed[name].astype(self._dtype(name), copy=False))
            self.set_shape(name, arr.shape)
            ptr = self._buffer(name, arr.nbytes)
            cuda.htod(ptr, arr, stream)
            self.set_address(name, ptr)
        outputs: dict[str, np.ndarray] = {}
        for name in st["outputs"]:
            host = np.empty(tuple(context.get_tensor_shape(name)), dtype=self._dtype(name))
            self.set_address(name, self._buffer(name, host.nbytes))
            outputs[name] = host
        if not context.execute_async_v3(stream.handle):
            raise HrmEdgeError("TensorRT execution failed", self.engine_path)
        for name, host in outputs.items():
            cuda.dtoh(host, self._buffer(name, host.nbytes), stream)
        stream.synchronize()
        return outputs

    def step_session(self, feed: dict[str, np.ndarray]) -> StepSession:
        self.check_feed(feed)
        return DeviceSteps(self, feed)


class DeviceSteps(StepSession):
    """Step-mode ACT with the carry resident on the device.

    Two carry buffer pairs, A and B: a segment reads z_H/z_L from one and writes z_H_next/z_L_next into
    the other, and `advance` swaps their addresses, so the carry never crosses to the host. Each segment
    brings back only q_halt / q_continue; logits come back only for the samples that halted. The first
    segment reads a `halted = 1` buffer, the later ones a `halted = 0` buffer. With `--cuda-graph` the
    later segments are replayed from two captured graphs (one per carry direction), kept per batch size.
    """

    def __init__(self, runner: TrtRunner, feed: dict[str, np.ndarray]) -> None:
        super().__init__(runner, feed)
        self.r = runner
        st = runner._state
        self.cuda, self.context, self.stream = st["cuda"], st["context"], st["stream"]
        self.b = b = int(feed["tokens"].shape[0])
        self.ptr: dict[str, int] = {}
        for name in st["inputs"]:
            arr = np.ascontiguousarray(feed[name].astype(runner._dtype(name), copy=False))
            runner.set_shape(name, arr.shape)
            if name in ("z_H", "z_L"):
                for side in "AB":
                    self.ptr[name + side] = runner._buffer(f"{name}{side}/{b}", arr.nbytes)
                self.cuda.htod(self.ptr[name + "A"], arr, self.stream)  # the zero carry of segment 1
            elif name == "halted":
                for flag in (1, 0):
                    self.ptr[f"halted{flag}"] = runner._buffer(f"halted{flag}/{b}", arr.nbytes)
                    self.cuda.htod(self.ptr[f"halted{flag}"], np.full(arr.shape, flag, arr.dtype), self.stream)
            else:
                self.ptr[name] = runner._buffer(f"{name}/{b}", arr.nbytes)
                self.cuda.htod(self.ptr[name], arr, self.stream)
        self.out_shape = {n: tuple(self.context.get_tensor_shape(n)) for n in st["outputs"]}
        for name in ("logits", "q_halt", "q_continue"):
            nbytes = int(np.prod(self.out_shape[name])) * runner._dtype(name).itemsize
            self.ptr[name] = runner._buffer(f"{name}/{b}", nbytes)
        self.q = {n: self.cuda.pinned(self.out_shape[n], runner._dtype(n)) for n in ("q_halt", "q_continue")}
        self.parity, self.first = 0, True
        self.mixed: np.ndarray | None = None  # per-row `halted` of the next segment after `restart`
        self.staged: list[np.ndarray] = []  # host sources of pending copies, alive until the next sync

    def _halted_buffer(self) -> str:
        """All rows restart (segment 1), some rows restart (after `restart`), or none."""
        return "halted1" if self.first else ("haltedM" if self.mixed is not None else "halted0")

    def _bind(self) -> None:
        src, dst = "AB"[self.parity], "BA"[self.parity]
        addr = {"z_H": self.ptr["z_H" + src], "z_L": self.ptr["z_L" + src], "z_H_next": self.ptr["z_H" + dst],
                "z_L_next": self.ptr["z_L" + dst], "halted": self.ptr[self._halted_buffer()]}
        for name in self.r._state["inputs"] + self.r._state["outputs"]:
            self.r.set_address(name, addr.get(name, self.ptr.get(name, 0)))

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise HrmEdgeError("TensorRT execution failed", self.r.engine_path)

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        self._bind()
        if self.r.cuda_graph and not self.first:
            graphs = self.r._state["graphs"]
            key = (self.b, self.parity, self._halted_buffer())
            if key not in graphs:
                graphs[key] = self.cuda.graphs().capture(self.stream.handle, self._enqueue)
            self.cuda.graphs().launch(graphs[key], self.stream.handle)
        else:
            self._enqueue()
        for n, host in self.q.items():
            self.cuda.dtoh(host, self.ptr[n], self.stream)
        self.stream.synchronize()
        self.staged.clear()
        self.r.inference_times.append(time.perf_counter() - t0)
        return self.q["q_halt"].copy(), self.q["q_continue"].copy()

    def logits(self, rows: np.ndarray) -> np.ndarray:
        dtype = self.r._dtype("logits")
        per = self.out_shape["logits"][1:]
        row_bytes = int(np.prod(per)) * dtype.itemsize
        if rows.size == self.b:
            host = np.empty(self.out_shape["logits"], dtype)
            self.cuda.dtoh(host, self.ptr["logits"], self.stream)
        else:
            host = np.empty((rows.size,) + per, dtype)
            for k, r in enumerate(rows):
                self.cuda.dtoh(host[k], self.ptr["logits"] + int(r) * row_bytes, self.stream)
        self.stream.synchronize()
        return host[rows] if rows.size == self.b else host

    def advance(self) -> None:
        self.parity ^= 1
        self.first = False
        self.mixed = None

    def restart(self, rows: np.ndarray, tokens: np.ndarray, puzzle_emb: np.ndarray | None) -> None:
        """New puzzles in `rows`: only their token / puzzle-vector rows are copied to the device, and the
        next segment reads a per-row `halted` buffer (its address is fixed, so a captured graph replays)."""
        rows = np.asarray(rows, dtype=np.int64)
        news = {"tokens": tokens, "puzzle_emb": puzzle_emb}
        for name in self.r._state["inputs"]:
            if name not in news or news[name] is None:
                continue
            arr = np.ascontiguousarray(np.asarray(news[name]).astype(self.r._dtype(name), copy=False))
            row_bytes = arr[0].nbytes if arr.shape[0] else 0
            for k, r in enumerate(rows):
                self.staged.append(arr)
                self.cuda.htod(self.ptr[name] + int(r) * row_bytes, arr[k], self.stream)
        if self.first:
            return  # segment 1 restarts every row anyway
        if self.mixed is None:
            self.mixed = np.zeros(self.b, self.r._dtype("halted"))
            if "haltedM" not in self.ptr:
                self.ptr["haltedM"] = self.r._buffer(f"haltedM/{self.b}", self.mixed.nbytes)
        self.mixed[rows] = 1
        self.staged.append(self.mixed)
        self.cuda.htod(self.ptr["haltedM"], self.mixed, self.stream)
