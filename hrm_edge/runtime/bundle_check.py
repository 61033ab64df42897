"""One check of an export bundle's files, run by every command that reads a bundle before it does anything else.

A bundle copied half-way (a cut `model.onnx`, a short `puzzle_emb.npy`, a truncated manifest) used to reach
protobuf or numpy and end in a traceback, or in a hash error on one command and a parse error on another.
`check_bundle` says the same one line everywhere: which file, what is wrong, and how many bytes are there of how
many the manifest recorded. A checkpoint file given where the folder belongs is named as such.
Torch-free, and no model is loaded: only hashes, sizes and the .npy header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import file_sha256, read_json
from hrm_edge.runtime.onnxruntime import MANIFEST, read_manifest

_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"  # torch.save's zip container; the legacy pickle format


def _not_a_folder(path: Path) -> HrmEdgeError:
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_ZIP) or head.startswith(_PICKLE):
        return HrmEdgeError("is a checkpoint file, not an export bundle folder (make one with "
                            f"`hrm-edge export {path}`)", path)
    return HrmEdgeError("is a file, not an export bundle folder (the folder `hrm-edge export` writes, with "
                        f"{MANIFEST})", path)


def _cut(path: Path, want: int | None) -> str:
    have = path.stat().st_size
    return f"; {have} of {want} bytes: cut short?" if want and have < want else ""


def check_model_file(bundle: Path, manifest: dict[str, Any]) -> Path:
    """model.onnx (and its external data) present and byte-identical to what the manifest recorded."""
    onnx_info = manifest.get("onnx") or {}
    path = bundle / str(onnx_info.get("file") or "model.onnx")
    if not path.is_file():
        raise HrmEdgeError("bundle's model file is missing", path)
    external = onnx_info.get("external_data")
    if external and not (bundle / external).is_file():
        raise HrmEdgeError("bundle's external weight file is missing", bundle / external)
    want = onnx_info.get("sha256")
    if want and file_sha256(path) != want:
        size = onnx_info.get("bytes") if not external else None
        raise HrmEdgeError(f"does not match its manifest (sha256 differs{_cut(path, size)}): the bundle was damaged, "
                           "modified or mixed with another export; re-export or re-copy it", path)
    return path


def check_puzzle_table(bundle: Path, manifest: dict[str, Any]) -> None:
    """puzzle_emb.npy: a .npy of the recorded dtype and shape, all of its bytes there; the index parses."""
    pe = manifest.get("puzzle_emb")
    if not pe:
        return
    path = bundle / str(pe.get("file") or "puzzle_emb.npy")
    if not path.is_file():
        raise HrmEdgeError("bundle's puzzle-embedding table is missing", path)
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            header = f.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise HrmEdgeError(f"not a readable .npy table ({str(exc).splitlines()[0]})", path) from None
    if list(shape) != list(pe.get("shape", shape)) or str(dtype) != str(pe.get("dtype", dtype)):
        raise HrmEdgeError(f"holds {dtype} {list(shape)}, the manifest says {pe.get('dtype')} {pe.get('shape')}",
                           path)
    want = header + int(np.prod(shape)) * np.dtype(dtype).itemsize
    have = path.stat().st_size
    if have != want:
        raise HrmEdgeError(f"is {have} of {want} bytes (cut short or padded): re-export or re-copy the bundle", path)
    if pe.get("index"):
        index = bundle / str(pe["index"])
        if index.exists():
            rows = read_json(index, "puzzle index")
            if not isinstance(rows, dict) or not isinstance(rows.get("rows", {}), dict):
                raise HrmEdgeError("puzzle index is not an object with 'rows'", index)


def check_bundle(bundle: str | Path) -> dict[str, Any]:
    """The bundle's manifest after checking every file it names; one HrmEdgeError (exit 2) for the first problem."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise HrmEdgeError("no such export bundle folder", bundle)
    if bundle.is_file():
        if bundle.name != MANIFEST:
            raise _not_a_folder(bundle)
        bundle = bundle.parent
    manifest = read_manifest(bundle)
    check_model_file(bundle, manifest)
    check_puzzle_table(bundle, manifest)
    return manifest


def check_bundles(bundles: list[Path] | tuple[Path, ...] | None) -> None:
    """`check_bundle` on each (the commands' first step)."""
    for b in bundles or []:
        check_bundle(b)


__all__ = ["check_bundle", "check_bundles", "check_model_file", "check_puzzle_table"]
