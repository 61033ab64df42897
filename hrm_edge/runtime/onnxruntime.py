"""ONNX Runtime runner: runs an export bundle the way a user's machine will, with no PyTorch.

Everything it needs comes from the bundle's `manifest.json` (model spec, ACT mode, baked halting,
input names / dtypes / shapes, puzzle-embedding table); nothing is guessed from the graph. The
ACT loop is the shared driver of runtime/base.py, so a `step` bundle halts exactly like the
PyTorch runner; an `unrolled` / `loop` bundle does it inside the graph.

    with OrtRunner.from_bundle("hrm_arc_best-step") as r:
        vecs = r.puzzle_vectors(r.puzzle_ids(["00576224"]))
        result = r.run_act(tokens, vecs, halt="max")
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError, MissingDependencyError, first_sentence
from hrm_edge.fileio import read_json
from hrm_edge.runtime.base import ModelSpec, Runner, StepSession, TensorMeta
from hrm_edge.runtime.cpu_isa import u8s8_exact

BUNDLE_FORMAT = "hrm-edge-bundle"
MANIFEST = "manifest.json"

# short names accepted for `providers`
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}
_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """The bundle's manifest, checked for the fields a runtime relies on."""
    bundle = Path(bundle)
    path = bundle / MANIFEST if bundle.is_dir() else bundle
    if not path.exists():
        raise HrmEdgeError("not an export bundle (no manifest.json)", bundle)
    m = read_json(path, "manifest")
    if not isinstance(m, dict) or m.get("format") != BUNDLE_FORMAT:
        raise HrmEdgeError(f"manifest is not an {BUNDLE_FORMAT} manifest", path)
    missing = [k for k in ("spec", "act", "onnx", "inputs", "outputs", "precision") if k not in m]
    if missing:
        raise HrmEdgeError(f"manifest lacks {', '.join(missing)}", path)
    return m


def open_puzzle_table(bundle: str | Path, manifest: dict[str, Any]) -> np.ndarray | None:
    """The bundle's `puzzle_emb.npy`, memory-mapped read-only (None for families without one)."""
    pe = manifest.get("puzzle_emb")
    if not pe:
        return None
    path = Path(bundle) / pe["file"]
    if not path.exists():
        raise HrmEdgeError("bundle's puzzle-embedding table is missing", path)
    return np.load(path, mmap_mode="r")


def read_puzzle_index(bundle: str | Path, manifest: dict[str, Any]) -> dict[str, int] | None:
    """Puzzle identifier -> table row from the bundle's index, when the export knew the names."""
    pe = manifest.get("puzzle_emb") or {}
    if not pe.get("index") or not pe.get("index_known"):
        return None
    path = Path(bundle) / pe["index"]
    if not path.exists():
        return None
    return {k: int(v) for k, v in read_json(path, "puzzle index").get("rows", {}).items()}


OPT_LEVELS = ("all", "extended", "basic", "none")
FUSED_PRECISIONS = ("fp32", "int8", "int8-qdq")  # bundles whose attention / RoPE run in fp32 on the CPU
FUSIONS_ENV = "HRM_EDGE_ORT_FUSIONS"


def rewritten_model(path: Path, *, uint8: bool, fused_heads: int | None) -> tuple[bytes | None, int]:
    """The bundle's graph as this runner runs it (None when no rewrite applies), and how many blocks were fused.

    Both rewrites are ORT-only and done in memory, so the bundle on disk stays what TensorRT parses:
    int8-qdq activations as u8 (exact; see graph/qdq_uint8.activations_to_uint8) and the fused kernels
    of graph/ort_fusions.py (attention, RoPE, split projections).
    `fused_heads` is the model's head count (None: no fusions).
    """
    import onnx

    from hrm_edge.graph.ort_fusions import fuse_for_ort
    from hrm_edge.graph.qdq_uint8 import activations_to_uint8

    model = onnx.load(str(path))
    fused = sum(fuse_for_ort(model, fused_heads).values()) if fused_heads else 0
    changed = activations_to_uint8(model) if uint8 else 0
    return (model.SerializeToString() if fused or changed else None), fused


def session_options(threads: int | None = None, opt_level: str = "all", spinning: bool | None = None) -> Any:
    """Session options of every hrm-edge ORT session: intra-op threads, spinning and graph optimisation level.

    `spinning` None = hrm-edge's default (`runtime.threads.ORT_SPINNING`, chosen from benchmarks/threads);
    True/False sets ORT's `session.intra_op.allow_spinning` explicitly.

    `all` (ORT's default) adds layout and hardware-specific fusions to `extended` (e.g. FusedMatMul,
    QuickGelu, LayerNormalization where the pattern is found); `none` runs the graph as exported.
    """
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = levels[opt_level]
    if threads:
        so.intra_op_num_threads = threads
    if spinning is None:
        from hrm_edge.runtime.threads import ORT_SPINNING

        spinning = ORT_SPINNING
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


def resolve_providers(providers: str | list[str] | None) -> list[str]:
    """Requested execution providers, full names; None = CPU. Unavailable ones are an error."""
    from hrm_edge.runtime.ort_install import require_onnxruntime

    require_onnxruntime("an ONNX Runtime session")
    import onnxruntime as ort
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
    available = ort.get_available_providers()
    missing = [n for n in names if n not in available]
    if missing:
        raise MissingDependencyError(f"ONNX Runtime execution provider(s) {', '.join(missing)} not available here "
                                     f"(available: {', '.join(available)})")
    if "CPUExecutionProvider" not in names:
        names.append("CPUExecutionProvider")  # fallback for nodes the accelerator does not take
    return names


@dataclass
class OrtRunner(Runner):
    """A Runner over an export bundle folder (`from_bundle`)."""

    bundle: str = ""
    providers: list[str] | None = None
    threads: int | None = None  # intra-op threads; None = hrm-edge's default (runtime/threads.py)
    spinning: bool | None = None  # intra-op spin-waiting; None = hrm-edge's default (runtime/threads.py)
    opt_level: str = "all"  # graph optimisation level (OPT_LEVELS)
    io_binding: bool = True  # step mode: keep the carry in ORT-owned OrtValues between segments
    # int8-qdq: run activations as u8 (an exact rewrite: x86 int8 kernels are u8 x s8, fast with VNNI); by default
    # only where those kernels are exact (runtime/cpu_isa.py): without VNNI u8 x s8 clips and s8 x s8 stays exact
    uint8_activations: bool = field(default_factory=lambda: u8s8_exact())
    # CPU: attention, RoPE, split projections as fused kernels (graph/ort_fusions.py); HRM_EDGE_ORT_FUSIONS=0 turns
    # them off for every command (the escape hatch if an ONNX Runtime build lacks a contrib kernel)
    fusions: bool = field(default_factory=lambda: os.environ.get(FUSIONS_ENV, "1") != "0")
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    name: str = "onnxruntime"
    model_path: str | None = None  # override the manifest's model file (parity checks of variants)
    fused_kernels: int = 0  # how many blocks graph/ort_fusions replaced at the last activate()
    _session: Any = field(default=None, repr=False)
    _table: Any = field(default=None, repr=False)

    @classmethod
    def from_bundle(cls, bundle: str | Path, providers: str | list[str] | None = None,
                    threads: int | None = None, opt_level: str = "all", io_binding: bool = True) -> OrtRunner:
        manifest = read_manifest(bundle)
        spec = ModelSpec.from_dict(manifest["spec"])
        act = manifest["act"]
        if opt_level not in OPT_LEVELS:
            raise HrmEdgeError(f"ONNX Runtime optimisation level must be one of {', '.join(OPT_LEVELS)}, "
                               f"got {opt_level!r}")
        return cls(spec=spec, act_mode=act["mode"], baked_halt=act.get("halt"), bundle=str(bundle),
                   providers=resolve_providers(providers), threads=threads, manifest=manifest,
                   opt_level=opt_level, io_binding=io_binding)

    # -- lifecycle ---------------------------------------------------------------------------
    def activate(self) -> None:
        import onnxruntime as ort

        path = Path(self.model_path) if self.model_path else Path(self.bundle) / self.manifest["onnx"]["file"]
        if not path.exists():
            raise HrmEdgeError("bundle's model file is missing", path)
        want_sha = self.manifest["onnx"].get("sha256")
        if want_sha and not self.model_path:
            from hrm_edge.fileio import file_sha256

            if file_sha256(path) != want_sha:
                raise HrmEdgeError("does not match its manifest (sha256 differs): the bundle was modified or mixed "
                                   "with another export; re-export it", path)
        so = session_options(self.threads, self.opt_level, self.spinning)
        t0 = time.perf_counter()
        source: str | bytes = str(path)
        uint8 = self.manifest.get("precision") == "int8-qdq" and self.uint8_activations
        heads = self.attention_heads()
        self.fused_kernels = 0
        if uint8 or heads:
            graph, self.fused_kernels = rewritten_model(path, uint8=uint8, fused_heads=heads)
            source = graph if graph is not None else source
        try:
            self._session = ort.InferenceSession(source, so, providers=self.providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises several private exception types
            raise HrmEdgeError(f"ONNX Runtime cannot load the model: {first_sentence(str(exc))}", path) from None
        self.load_seconds = time.perf_counter() - t0
        got = {i.name for i in self._session.get_inputs()}
        want = {i["name"] for i in self.manifest["inputs"]}
        if got != want:
            raise HrmEdgeError(f"model inputs {sorted(got)} do not match the manifest's {sorted(want)}", path)
        self._outputs = [o.name for o in self._session.get_outputs()]

    def attention_heads(self) -> int | None:
        """The head count for the ORT fusions, or None where they do not apply (off, or not a CPU-only session)."""
        if not self.fusions or (self.providers or ["CPUExecutionProvider"])[0] != "CPUExecutionProvider":
            return None
        if self.manifest.get("precision", "fp32") not in FUSED_PRECISIONS:
            return None  # fp16 graphs are for GPUs / TensorRT; the CPU contrib kernels are fp32
        heads = (self.manifest.get("config") or {}).get("num_heads")
        return int(heads) if heads else None

    def deactivate(self) -> None:
        self._session = None

    @property
    def active_providers(self) -> list[str]:
        return list(self._session.get_providers()) if self._session is not None else []

    # -- metadata and inference ------------------------------------------------------------------
    def input_metadata(self) -> dict[str, TensorMeta]:
        meta = {}
        for i in self.manifest["inputs"]:
            shape = tuple(d if isinstance(d, int) else str(d) for d in i["shape"])
            meta[i["name"]] = TensorMeta(np.dtype(_DTYPES[i["dtype"]]), shape)
        return meta

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._session.run(None, feed)
        return dict(zip(self._outputs, outs))

    def step_session(self, feed: dict[str, np.ndarray]) -> StepSession:
        """With I/O binding (the default) the carry stays in ORT-owned OrtValues between segments."""
        if not self.io_binding:
            return super().step_session(feed)
        return _BoundStepSession(self, feed)

    # -- puzzle embeddings -------------------------------------------------------------------------
    def _puzzle_table(self) -> np.ndarray | None:
        if self._table is None:
            self._table = open_puzzle_table(self.bundle, self.manifest)
        return self._table

    def puzzle_vectors(self, puzzle_ids: np.ndarray) -> np.ndarray | None:
        """Rows of the bundle's `puzzle_emb.npy` (stored fp16) as float32 graph inputs."""
        table = self._puzzle_table()
        if table is None:
            return None
        ids = np.asarray(puzzle_ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
            raise HrmEdgeError(f"puzzle id out of range 0..{table.shape[0] - 1}", self.bundle)
        return np.asarray(table[ids], dtype=np.float32)

    @property
    def num_puzzle_identifiers(self) -> int:
        """Rows of the bundle's puzzle table (0 for families without one)."""
        pe = self.manifest.get("puzzle_emb")
        return int(pe["shape"][0]) if pe else 0

    @property
    def identifiers(self) -> dict[str, int] | None:
        """Puzzle identifier -> table row from the bundle's index, when the export knew the names."""
        return read_puzzle_index(self.bundle, self.manifest)

    def puzzle_ids(self, names: list[str], missing: str = "blank") -> np.ndarray:
        """Rows for puzzle identifiers (task name, `name|aug` for augmented copies) from the index file.

        Unknown names map to row 0 (the blank puzzle) with `missing="blank"`, or raise with "error".
        """
        index = self.identifiers or {}
        out = []
        for n in names:
            if n in index:
                out.append(int(index[n]))
            elif missing == "blank":
                out.append(0)
            else:
                raise HrmEdgeError(f"puzzle {n!r} is not in the bundle's puzzle index", self.bundle)
        return np.asarray(out, dtype=np.int64)


__all__ = ["OrtRunner", "OPT_LEVELS", "session_options", "read_manifest", "resolve_providers", "open_puzzle_table",
           "read_puzzle_index", "BUNDLE_FORMAT", "MANIFEST", "PROVIDER_ALIASES"]


class _BoundStepSession(StepSession):
    """Step segments with I/O binding: the carry never leaves ONNX Runtime.

    Two pairs of ORT-owned carry buffers alternate (segment k reads one pair and writes the other);
    logits and q values are written into numpy arrays bound once per batch, so a segment costs one
    `run_with_iobinding` and no copies. Same kernels, same inputs: the outputs are bitwise those of
    the plain path (tests/test_runtime_iobinding.py).
    """

    def __init__(self, runner: OrtRunner, feed: dict[str, np.ndarray]) -> None:
        import onnxruntime as ort

        super().__init__(runner, feed)
        runner.check_feed(feed)
        self.sess = runner._session
        device = "cuda" if runner.active_providers[:1] == ["CUDAExecutionProvider"] else "cpu"
        out_meta = {o["name"]: o for o in runner.manifest["outputs"]}
        b = feed["tokens"].shape[0]
        self.io = self.sess.io_binding()
        for name in ("tokens", "puzzle_emb"):
            if name in feed:
                self.io.bind_cpu_input(name, feed[name])
        self.host: dict[str, np.ndarray] = {}
        for name in ("logits", "q_halt", "q_continue"):
            shape = [b if not isinstance(d, int) else d for d in out_meta[name]["shape"]]
            self.host[name] = np.empty(shape, _DTYPES[out_meta[name]["dtype"]])
            self.io.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(self.host[name]))
        z_shape, z_type = feed["z_H"].shape, feed["z_H"].dtype
        self.pairs = [tuple(ort.OrtValue.ortvalue_from_numpy(feed[k], device) for k in ("z_H", "z_L")),
                      tuple(ort.OrtValue.ortvalue_from_shape_and_type(z_shape, z_type, device) for _ in range(2))]
        self.halted = np.array(feed["halted"], dtype=bool)  # the next segment's `halted` input
        self.k = 0

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        (h_in, l_in), (h_out, l_out) = self.pairs[self.k % 2], self.pairs[(self.k + 1) % 2]
        self.io.bind_cpu_input("halted", self.halted)
        self.io.bind_ortvalue_input("z_H", h_in)
        self.io.bind_ortvalue_input("z_L", l_in)
        self.io.bind_ortvalue_output("z_H_next", h_out)
        self.io.bind_ortvalue_output("z_L_next", l_out)
        t0 = time.perf_counter()
        self.sess.run_with_iobinding(self.io)
        self.runner.inference_times.append(time.perf_counter() - t0)
        return self.host["q_halt"], self.host["q_continue"]

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return self.host["logits"][rows]

    def advance(self) -> None:
        self.k += 1
        self.halted = np.zeros_like(self.halted)

    def restart(self, rows: np.ndarray, tokens: np.ndarray, puzzle_emb: np.ndarray | None) -> None:
        """New puzzles in `rows`: their inputs are rewritten and bound again, their `halted` set."""
        super().restart(rows, tokens, puzzle_emb)
        for name in ("tokens", "puzzle_emb"):
            if name in self.feed:
                self.io.bind_cpu_input(name, self.feed[name])
        self.halted[rows] = True
