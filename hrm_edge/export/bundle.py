"""The export bundle: one folder a runtime can use with no PyTorch (DESIGN.md "Artifacts").

    bundle/
      model.onnx          the graph (+ model.onnx.data when over 1.5 GB)
      puzzle_emb.npy      ACT v1 puzzle-embedding table, fp16, memory-mappable (a graph *input*)
      puzzle_index.json   identifier (task name, `name|aug` for augmented copies) -> table row
      manifest.json       everything a runtime needs + the parity report

A bundle is built in a hidden temp folder beside its destination and renamed into place only
after the parity ladder passed (`StagedBundle.commit`); any failure removes the temp folder, so
a bundle that exists was proven.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hrm_edge import __version__
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import StagedDir, check_output, file_sha256
from hrm_edge.runtime.onnxruntime import BUNDLE_FORMAT, MANIFEST, read_manifest

MODEL_FILE = "model.onnx"
PUZZLE_FILE = "puzzle_emb.npy"
INDEX_FILE = "puzzle_index.json"
EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf's 2 GB limit, with room
FORMAT_VERSION = 1

_NP = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.INT32: "int32",
       onnx.TensorProto.INT64: "int64", onnx.TensorProto.BOOL: "bool"}


class StagedBundle(StagedDir):
    """The bundle's staging folder: refuses to replace an existing bundle unless forced."""

    def __init__(self, out: str | Path, force: bool = False) -> None:
        out = check_bundle_out(out, force)
        super().__init__(out)


def check_bundle_out(out: str | Path, force: bool = False) -> Path:
    """Refuse, before any work, a bundle folder that exists (without --force) or cannot be written."""
    out = Path(out)
    if out.exists() and out.is_dir() and not force:
        raise HrmEdgeError("already exists; pass --force to replace it", out)
    return check_output(out, "dir", "bundle folder")


def save_model(model: onnx.ModelProto, folder: Path) -> dict[str, Any]:
    """Write model.onnx (external data beside it when too large for one protobuf)."""
    path = folder / MODEL_FILE
    external = model.ByteSize() > EXTERNAL_DATA_BYTES
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=MODEL_FILE + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, path)
    size = path.stat().st_size + ((folder / (MODEL_FILE + ".data")).stat().st_size if external else 0)
    return {"file": MODEL_FILE, "external_data": MODEL_FILE + ".data" if external else None, "bytes": size,
            "sha256": file_sha256(path)}


def write_puzzle_table(folder: Path, table: np.ndarray | None, names: list[str] | None,
                       dtype: str = "float16") -> dict[str, Any] | None:
    """puzzle_emb.npy (fp16 by default) + puzzle_index.json; None for models without puzzle embeddings."""
    if table is None:
        return None
    arr = np.ascontiguousarray(table, dtype=np.float16 if dtype == "float16" else np.float32)
    np.save(folder / PUZZLE_FILE, arr)
    rows: dict[str, int] = {"<blank>": 0}
    if names:
        rows.update({str(n): i for i, n in enumerate(names) if n is not None})
    (folder / INDEX_FILE).write_text(json.dumps({"known": bool(names), "rows": rows}, indent=1) + "\n")
    return {"file": PUZZLE_FILE, "dtype": str(arr.dtype), "shape": list(arr.shape), "index": INDEX_FILE,
            "index_known": bool(names), "rows_named": len(rows)}


def io_entries(values: Any) -> list[dict[str, Any]]:
    out = []
    for vi in values:
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
        out.append({"name": vi.name, "dtype": _NP.get(t.elem_type, str(t.elem_type)), "shape": dims})
    return out


def build_manifest(*, graph: Any, onnx_info: dict[str, Any], config: dict[str, Any], precision: str,
                   source: dict[str, Any], puzzle: dict[str, Any] | None, target: str, lint: dict[str, Any],
                   ops: dict[str, int], export_seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest (parity is added once the ladder has run)."""
    import torch

    spec = graph.spec
    host_modes = list(spec.halt_modes) if graph.act == "step" else [graph.baked_halt]
    return {
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "hrm_edge_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source,
        "config": config,
        "spec": spec.to_dict(),
        "act": {"mode": graph.act, "segments": spec.max_steps, "halt": graph.baked_halt, "halt_modes": host_modes,
                "min_halt_steps": spec.min_halt_steps},
        "precision": precision,
        "batch": "dynamic" if graph.batch is None else graph.batch,
        "onnx": {**onnx_info, "opset": graph.opset, "ir_version": graph.model.ir_version,
                 "exporter": f"torch.onnx TorchScript exporter (torch {torch.__version__}) + hrm-edge assembly",
                 "export_seconds": round(export_seconds, 2), "op_types": sorted(ops), "op_counts": ops},
        "inputs": io_entries(graph.model.graph.input),
        "outputs": io_entries(graph.model.graph.output),
        "puzzle_emb": puzzle,
        "target": target,
        "targets": lint,
        **(extra or {}),
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")


__all__ = ["StagedBundle", "save_model", "write_puzzle_table", "build_manifest", "write_manifest", "read_manifest",
           "MODEL_FILE", "PUZZLE_FILE", "INDEX_FILE", "io_entries"]
