"""The small CUDA interface the TensorRT code needs, implemented with pycuda (the `jetson` / `trt` extra).

TensorRT only needs device pointers and a stream handle, so the runner and `build-engine` talk to
this interface and nothing else: device name, compute capability, memory size and whether it is an
integrated (Jetson) GPU, allocate / free, host<->device
copies, a stream, the current context, and CUDA-graph capture of a stream (pycuda has
no graph API, so capture goes through the CUDA driver library with ctypes; every JetPack ships
`libcuda.so.1`). cuda-python or torch's allocator could stand behind the same methods.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError, MissingDependencyError


class PycudaBackend:
    """The device's primary CUDA context, made current; `close()` releases it (on exit and on error).

    The primary context is the one TensorRT's builder and torch's CUDA runtime use, so a TensorRT
    runner and a torch CUDA runner can share one process (a private `make_context` would not).
    """

    def __init__(self, ordinal: int = 0) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError:
            raise MissingDependencyError("pycuda is not installed (`pip install 'hrm-edge[jetson]'`, or "
                                         "`[trt]` on a desktop GPU)") from None
        try:
            cuda.init()
            self.device = cuda.Device(ordinal)
            self.ctx = self.device.retain_primary_context()
            self.ctx.push()
        except Exception as exc:  # pycuda present but no driver / GPU
            raise MissingDependencyError(f"pycuda cannot reach a CUDA device: {str(exc).splitlines()[0]}") from None
        self.cuda = cuda
        self._graphs = CudaGraphs()

    # facts
    def device_name(self) -> str:
        return str(self.device.name())

    def compute_capability(self) -> str:
        major, minor = self.device.compute_capability()
        return f"{major}.{minor}"

    def total_memory(self) -> int:
        """Bytes of device memory (on a Jetson: the board's RAM, shared with the CPU)."""
        return int(self.device.total_memory())

    def integrated(self) -> bool:
        """True on an integrated GPU (every Jetson), whose memory is the system's."""
        return bool(self.device.get_attribute(self.cuda.device_attribute.INTEGRATED))

    # memory and copies
    def alloc(self, nbytes: int) -> Any:
        return self.cuda.mem_alloc(max(int(nbytes), 1))

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def htod(self, dst: Any, src: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(dst, np.ascontiguousarray(src), stream)

    def dtoh(self, dst: np.ndarray, src_ptr: int, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(dst, src_ptr, stream)

    def stream(self) -> Any:
        return self.cuda.Stream()

    def graphs(self) -> CudaGraphs:
        return self._graphs

    def close(self) -> None:
        try:
            self._graphs.destroy_all()
        finally:
            self.cuda.Context.pop()
            self.ctx.detach()


class CudaGraphs:
    """Capture a stream's work into a CUDA graph and replay it (CUDA driver API through ctypes, CUDA >= 11.4)."""

    CAPTURE_THREAD_LOCAL = 1

    def __init__(self) -> None:
        self._lib: Any = None
        self._made: list[tuple[ctypes.c_void_p, ctypes.c_void_p]] = []

    def _cu(self) -> Any:
        if self._lib is None:
            try:
                self._lib = ctypes.CDLL("libcuda.so.1")
            except OSError as exc:
                raise MissingDependencyError(f"--cuda-graph needs the CUDA driver library: {exc}") from None
        return self._lib

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise HrmEdgeError(f"CUDA graph {what} failed (CUresult {rc}); run without --cuda-graph")

    def capture(self, stream_handle: int, work: Any) -> ctypes.c_void_p:
        """Record `work()` (which enqueues on the stream) into an executable graph."""
        cu = self._cu()
        s = ctypes.c_void_p(stream_handle)
        self._check(cu.cuStreamBeginCapture_v2(s, self.CAPTURE_THREAD_LOCAL), "begin capture")
        graph = ctypes.c_void_p()
        try:
            work()
        finally:
            self._check(cu.cuStreamEndCapture(s, ctypes.byref(graph)), "end capture")
        exe = ctypes.c_void_p()
        self._check(cu.cuGraphInstantiateWithFlags(ctypes.byref(exe), graph, ctypes.c_ulonglong(0)), "instantiate")
        self._made.append((graph, exe))
        return exe

    def launch(self, exe: ctypes.c_void_p, stream_handle: int) -> None:
        self._check(self._cu().cuGraphLaunch(exe, ctypes.c_void_p(stream_handle)), "launch")

    def destroy_all(self) -> None:
        if self._lib is None:
            return
        for graph, exe in self._made:
            self._lib.cuGraphExecDestroy(exe)
            self._lib.cuGraphDestroy(graph)
        self._made.clear()
