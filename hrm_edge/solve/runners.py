"""Open a runtime by name: torch (checkpoint), onnxruntime (bundle) or tensorrt (engine).

`open_runtime` returns a `Runtime`: the runner (not yet activated), the model's puzzle table
(identifier names -> rows, and the rows' vectors as that runtime stores them), the artifact's
size and a label. `probe_runtime` does the same but turns "cannot run here" (TensorRT not
installed, no GPU, no CUDA execution provider, ...) into a reason string, so `compare` can show a
row instead of crashing. Heavy backends are imported lazily.

Puzzle identifiers (ACT v1). Each augmented copy of a training task is its own identifier,
named `"{task}"` for the identity and `"{task}_{augmentation.name}"` otherwise (the reference's
naming, see data/augment.py). The name -> row index comes from, in order: an explicit
`--identifiers FILE`; what the bundle's manifest / index says; a checkpoint's `train_state`
(`identifiers`, or `data_dir` holding `identifiers.json`); `identifiers.json` beside the
artifact. The file is either the reference's list (row i names identifier i, row 0 the blank)
or a dict name -> row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.identifiers import parse_identifiers, read_identifiers
from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.runtime.base import Runner

RUNTIMES = ("torch", "onnxruntime", "tensorrt")


@dataclass
class PuzzleTable:
    """A model's puzzle-embedding table as one runtime sees it.

    `names` maps identifier names to rows (empty when unknown); `rows` returns the vectors of
    given rows (None for families without puzzle embeddings).
    """

    ndim: int
    num_rows: int
    names: dict[str, int] = field(default_factory=dict)
    rows: Callable[[np.ndarray], np.ndarray] | None = None
    source: str = ""  # where `names` came from, for reports

    def __post_init__(self) -> None:
        if self.names and self.ndim > 0:
            top = max(self.names.values())
            if top >= self.num_rows:
                raise HrmEdgeError(f"identifier index names row {top} but the model's puzzle table has "
                                   f"{self.num_rows} rows: the index belongs to another model or dataset",
                                   self.source or None)

    @property
    def used(self) -> bool:
        return self.ndim > 0

    def lookup(self, name: str) -> int | None:
        row = self.names.get(name)
        return row if row is not None and 0 < row < self.num_rows else None

    def ids_for(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for these names (0, the blank puzzle, where unknown) and a known-mask."""
        rows = [self.lookup(n) for n in names]
        known = np.array([r is not None for r in rows], dtype=bool)
        return np.array([r or 0 for r in rows], dtype=np.int64), known

    def vectors(self, ids: np.ndarray) -> np.ndarray | None:
        if not self.used or self.rows is None:
            return None
        return np.asarray(self.rows(np.asarray(ids, dtype=np.int64)), dtype=np.float32)


def _names_for_artifact(path: Path, explicit: str | Path | None, extra: list[tuple[str, Any]]
                        ) -> tuple[dict[str, int], str]:
    if explicit is not None:
        return read_identifiers(explicit), str(explicit)
    for where, obj in extra:
        if obj is not None:
            if isinstance(obj, (str, Path)):
                p = Path(obj)
                if (p / "identifiers.json").is_file() or p.is_file():
                    return read_identifiers(p), str(p)
                continue
            return parse_identifiers(obj, where), where
    side = (path if path.is_dir() else path.parent) / "identifiers.json"
    if side.is_file():
        return read_identifiers(side), str(side)
    return {}, ""


# --------------------------------------------------------------------------------------------------
# runtimes
# --------------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    kind: str
    artifact: Path
    label: str
    runner: Runner
    puzzles: PuzzleTable
    size_bytes: int
    device: str = "cpu"


def artifact_size(path: str | Path) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def torch_dtype(ck: Any, dtype: str | None) -> str:
    """The forward dtype a `--torch-dtype` choice means for this checkpoint ("trained": the one it was trained in)."""
    name = str(ck.meta.get("trained_dtype", "float32")) if dtype == "trained" else (dtype or "float32")
    if name not in ("float32", "bfloat16"):
        raise HrmEdgeError(f"torch dtype must be float32, bfloat16 or trained, got {dtype!r}")
    if name != "float32" and not hasattr(ck.model, "set_forward_dtype"):
        raise HrmEdgeError(f"the {ck.config.family} family computes in float32 only; {name} is for act-v1 and trm")
    return name


def _open_torch(path: Path, device: str | None, identifiers: str | Path | None, threads: int | None = None,
                dtype: str | None = None) -> Runtime:
    import torch

    if threads:
        torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
    from hrm_edge.model.checkpoint import load_checkpoint
    from hrm_edge.runtime.torch import TorchRunner

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise MissingDependencyError(f"torch has no CUDA device here (asked for {dev})")
    ck = load_checkpoint(path)
    fwd = torch_dtype(ck, dtype)
    runner = TorchRunner.from_model(ck.model, device=dev, dtype=None if fwd == "float32" else fwd)
    cfg = ck.config
    ts = ck.train_state or {}
    names, source = _names_for_artifact(path, identifiers, [("checkpoint train_state", ts.get("identifiers")),
                                                            ("checkpoint data_dir", ts.get("data_dir"))])
    ndim = int(cfg.puzzle_emb_ndim)
    table = PuzzleTable(ndim=ndim, num_rows=int(cfg.num_puzzle_identifiers), names=names,
                        rows=runner.puzzle_vectors if ndim > 0 else None, source=source)
    where = dev if fwd == "float32" else f"{dev}, {fwd}"
    return Runtime("torch", path, f"pytorch {path.name} ({where})", runner, table, artifact_size(path), dev)


def _open_onnxruntime(path: Path, device: str | None, identifiers: str | Path | None, threads: int | None = None
                      ) -> Runtime:
    from hrm_edge.runtime import onnxruntime as ort_mod
    from hrm_edge.runtime.ort_install import require_onnxruntime

    require_onnxruntime("the onnxruntime runtime")

    if not path.exists():
        raise HrmEdgeError("no such export bundle", path)
    providers = _ort_providers(device)
    runner = ort_mod.OrtRunner.from_bundle(path, providers=providers, threads=threads)
    table = _bundle_puzzle_table(runner, path, runner.manifest, identifiers)
    prov = providers[0] if providers else "default providers"
    label = f"onnxruntime {path.name} ({prov.replace('ExecutionProvider', '')})"
    return Runtime("onnxruntime", path, label, runner, table, artifact_size(path), prov)


def _ort_providers(device: str | None) -> list[str]:
    """The named execution provider (checked by the runtime), else CUDA when the install offers it, else CPU."""
    import onnxruntime as ort

    from hrm_edge.runtime.onnxruntime import resolve_providers

    if device:
        return resolve_providers(device)
    # CUDA before TensorRT: the TensorRT EP builds an engine per session (minutes on a Jetson) unless
    # its cache is configured, so it is used when asked for (`--provider tensorrt`), not by default.
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _bundle_puzzle_table(runner: Runner, bundle: Path, manifest: dict[str, Any],
                         identifiers: str | Path | None) -> PuzzleTable:
    """The bundle's own table (fp16 rows, read-only memory map) and its identifier index."""
    from hrm_edge.runtime.onnxruntime import OrtRunner, open_puzzle_table, read_puzzle_index

    ndim = int(runner.spec.puzzle_emb_ndim)
    table_rows: Callable[[np.ndarray], np.ndarray] | None = None
    num_rows = 1
    if ndim > 0:
        table = open_puzzle_table(bundle, manifest)
        if table is None:
            raise HrmEdgeError("bundle has no puzzle-embedding table but the model needs puzzle embeddings", bundle)
        num_rows = int(table.shape[0])
        table_rows = runner.puzzle_vectors if isinstance(runner, OrtRunner) else \
            (lambda ids: np.asarray(table[ids], dtype=np.float32))
    extra: list[tuple[str, Any]] = []
    index = read_puzzle_index(bundle, manifest)
    if index is not None:
        extra.append(("bundle index", index))
    for key in ("identifiers", "puzzle_identifiers"):
        val = manifest.get(key)
        if isinstance(val, str):
            extra.append((f"manifest {key}", bundle / val))
        elif val is not None:
            extra.append((f"manifest {key}", val))
    names, source = _names_for_artifact(bundle, identifiers, extra)
    return PuzzleTable(ndim=ndim, num_rows=num_rows, names=names, rows=table_rows, source=source)


def _open_tensorrt(path: Path, device: str | None, identifiers: str | Path | None, threads: int | None = None
                   ) -> Runtime:
    from hrm_edge.runtime import tensorrt as trt_mod
    from hrm_edge.runtime.onnxruntime import read_manifest

    try:
        trt_mod.import_tensorrt()
    except MissingDependencyError:
        raise MissingDependencyError("TensorRT is not installed here (Python module `tensorrt` not found; "
                                     "on a Jetson it comes with JetPack, elsewhere pip install 'hrm-edge[trt]')"
                                     ) from None
    except Exception as exc:  # a broken install (missing libnvinfer) raises OSError & co.
        raise MissingDependencyError(f"TensorRT cannot be imported here: {str(exc).splitlines()[0][:160]}") from None
    if not path.exists():
        raise HrmEdgeError("no such engine file", path)
    runner = trt_mod.TrtRunner.from_engine(path, cuda_graph=device == "cuda-graph")
    bundle_dir = trt_mod.engine_bundle_dir(path, runner.sidecar)  # the bundle's puzzle table and index
    manifest = read_manifest(bundle_dir) if (bundle_dir / "manifest.json").is_file() else {}
    table = _bundle_puzzle_table(runner, bundle_dir, manifest, identifiers)
    return Runtime("tensorrt", path, f"tensorrt {path.name}", runner, table, artifact_size(path), "cuda")


_OPENERS = {"torch": _open_torch, "onnxruntime": _open_onnxruntime, "tensorrt": _open_tensorrt}


def open_runtime(kind: str, artifact: str | Path, *, device: str | None = None,
                 identifiers: str | Path | None = None, threads: int | None = None,
                 dtype: str | None = None) -> Runtime:
    """Open one runtime; raises MissingDependencyError when it cannot run here, HrmEdgeError on bad input.

    `device`: torch device (cpu, cuda), onnxruntime execution provider (cpu, cuda, tensorrt), or for
    tensorrt "cuda-graph" (replay each step from a captured CUDA graph);
    `threads`: CPU intra-op threads (torch: process-wide; onnxruntime: this session), None = default;
    `dtype`: torch only, what the model computes in (float32, bfloat16, or "trained": the checkpoint's own).
    """
    if kind not in _OPENERS:
        raise HrmEdgeError(f"unknown runtime {kind!r}; choose one of {', '.join(RUNTIMES)}")
    if kind == "torch":
        return _open_torch(Path(artifact), device, identifiers, threads, dtype)
    if dtype not in (None, "float32"):
        raise HrmEdgeError(f"a compute dtype ({dtype}) is for the torch runtime; {kind} runs what its artifact holds")
    return _OPENERS[kind](Path(artifact), device, identifiers, threads)


def probe_runtime(kind: str, artifact: str | Path, **kw: Any) -> tuple[Runtime | None, str | None, str]:
    """`open_runtime`, with failure turned into (None, reason, status).

    status is "unavailable" for a missing backend/device, "error" for a bad artifact.
    """
    try:
        return open_runtime(kind, artifact, **kw), None, "ok"
    except MissingDependencyError as exc:
        return None, str(exc), "unavailable"
    except HrmEdgeError as exc:
        return None, str(exc), "error"


def artifact_option(runtime: str, ckpt: Path | None, bundle: Path | None, engine: Path | None) -> Path:
    """The one artifact `solve --runtime R` needs, checked against which of --ckpt/--bundle/--engine was given."""
    need = {"torch": ("--ckpt", ckpt), "onnxruntime": ("--bundle", bundle), "tensorrt": ("--engine", engine)}
    if runtime not in need:
        raise HrmEdgeError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    given = [flag for flag, v in need.values() if v is not None]
    flag, value = need[runtime]
    if value is None:
        raise HrmEdgeError(f"--runtime {runtime} needs {flag}" + (f" (got {', '.join(given)})" if given else ""))
    others = [f for f in given if f != flag]
    if others:
        raise HrmEdgeError(f"--runtime {runtime} uses {flag}; {', '.join(others)} would be ignored, drop it")
    return value


def infer_runtime(ckpt: Path | None, bundle: Path | None, engine: Path | None) -> str:
    """The runtime implied by the single artifact option given (for `solve` without --runtime)."""
    given = [(k, v) for k, v in (("torch", ckpt), ("onnxruntime", bundle), ("tensorrt", engine)) if v is not None]
    if len(given) != 1:
        raise HrmEdgeError("give exactly one of --ckpt, --bundle, --engine (or name --runtime)")
    return given[0][0]
