"""`hrm-edge info`, `init` and `convert`: look inside a checkpoint or preset; make a random one; make any
checkpoint a native one (its config resolved)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hrm_edge.config import PRESETS
from hrm_edge.errors import HrmEdgeError


def info(
    ckpt: Optional[Path] = typer.Argument(None, metavar="CKPT", help="Checkpoint: hrm-edge .pt, the lite script's "
                                          "hrm_arc_best.pt, a reference HRM or TRM step_N file, or a bare state dict."),
    preset: Optional[str] = typer.Option(None, "--preset", metavar="NAME", help="Describe a named preset instead of "
                                         f"a file ({', '.join(PRESETS)})."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    canvas: Optional[int] = typer.Option(None, "--canvas", metavar="N", help="Canvas side of a checkpoint that "
                                         "does not store it (a reference one with RoPE or no positions): "
                                         "otherwise read from all_config.yaml's data path, else 30 with a note."),
) -> None:
    """Show a model's config, parameter counts (dense vs puzzle-embedding table), ACT settings and source."""
    from hrm_edge.config import preset as get_preset
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import describe, load_checkpoint

    if (ckpt is None) == (preset is None):
        raise HrmEdgeError("give exactly one of CKPT or --preset")
    if ckpt is not None:
        ck = load_checkpoint(ckpt, canvas=canvas)
        d = describe(ck, ck.config, ck.model)
    else:
        if canvas is not None:
            raise HrmEdgeError("--canvas is for checkpoints that do not store theirs, not presets")
        cfg = get_preset(preset)  # type: ignore[arg-type]
        d = describe(None, cfg, build_model(cfg, seed=0))
        d["preset"] = preset
    if as_json:
        print(json.dumps(d, indent=2, default=str))
        return
    con = Console()
    title = str(ckpt) if ckpt else f"preset {preset}"
    t = Table(title=f"{title} ({d['family']}, source: {d['source_format']})", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_row("dense parameters", f"{d['dense_params']:,}")
    t.add_row("puzzle-embedding parameters", f"{d['puzzle_emb_params']:,}")
    t.add_row("puzzle identifiers", f"{d['num_puzzle_identifiers']:,}")
    t.add_row("ACT", f"max {d['act']['max_steps']} segments; halt modes {', '.join(d['act']['halt_modes'])}; "
                     f"adaptive halts where {d['act']['adaptive_rule'].replace('>', ' > ')}, "
                     f"after at least {d['act']['min_halt_steps']}")
    if d.get("trained_dtype"):
        t.add_row("trained in", d["trained_dtype"])
    t.add_row("computes in", "; ".join(f"{k}: {v}" for k, v in d["dtypes"].items()))
    for key in ("step", "epoch", "best_metric", "best_metric_name", "sha256"):
        if d.get(key) is not None:
            t.add_row(key.replace("_", " "), str(d[key]))
    for note in d.get("notes") or []:
        t.add_row("note", note)
    con.print(t)
    p = Table(title="parameters per module")
    p.add_column("module")
    p.add_column("parameters", justify="right")
    for name, n in d["params_per_module"].items():
        p.add_row(name, f"{n:,}")
    con.print(p)
    c = Table(title="config")
    c.add_column("field")
    c.add_column("value")
    for k, v in d["config"].items():
        c.add_row(k, str(v))
    con.print(c)


def init(
    preset: str = typer.Option(..., "--preset", metavar="NAME", help="Named preset to initialise: "
                                                                     f"{', '.join(PRESETS)}."),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="Checkpoint file to write (hrm-edge format: a JSON "
                                                                "sidecar goes beside it)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same weights."),
    puzzles: Optional[int] = typer.Option(None, "--puzzles", min=1, help="Puzzle identifiers in the embedding table "
                                                                         "(ACT v1 only)."),
    fmt: str = typer.Option("hrm-edge", "--format", metavar="FORMAT", help="hrm-edge (native, with sidecar) or "
                            "lite-script (the dict train_arc_full.py saves as hrm_arc_best.pt; lite presets only)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing checkpoint (and its hrm-edge sidecar)."),
) -> None:
    """Write a randomly initialised checkpoint (for tests, benchmarks, trying export before training)."""
    import torch

    from hrm_edge.commands.options import check_choice
    from hrm_edge.config import preset as get_preset
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import check_checkpoint_out, save_checkpoint, save_lite_script

    check_choice("--format", fmt, ("hrm-edge", "lite-script"))
    cfg = get_preset(preset)
    if fmt == "lite-script":
        if cfg.family != "lite":
            raise HrmEdgeError(f"--format lite-script holds lite models; {preset} is {cfg.family}")
        check_checkpoint_out(out, new=True, force=force, sidecar=False)  # the script's format has no sidecar
    else:
        check_checkpoint_out(out, new=True, force=force)
    if puzzles is not None:
        if cfg.puzzle_emb_ndim == 0:
            raise HrmEdgeError(f"--puzzles applies to presets with a puzzle table; {preset} ({cfg.family}) has none")
        cfg.num_puzzle_identifiers = puzzles
    model = build_model(cfg, seed=seed)
    if cfg.puzzle_emb_ndim > 0:
        # zero-initialised in training; random rows here so an untrained export exercises the input path
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed + 1)
            model.puzzle_emb.weights.normal_(0.0, 0.02, generator=g)  # type: ignore[union-attr]
    if fmt == "lite-script":
        save_lite_script(out, model)
    else:
        save_checkpoint(out, model, train_state={"step": 0, "seed": seed, "preset": preset})
    n = model.count_params()
    form = "" if fmt == "hrm-edge" else f"{fmt} format, "
    print(f"wrote {out} ({form}{cfg.family}, {n['dense']:,} dense + {n['puzzle_emb']:,} puzzle-embedding "
          f"parameters, seed {seed})")


def convert(
    ckpt: Path = typer.Argument(..., metavar="CKPT", help="Any checkpoint `info` reads (a reference HRM or TRM "
                                "step_N file, the lite script's dict, a bare state dict)."),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="Native hrm-edge checkpoint to write (a JSON "
                                                                "sidecar goes beside it)."),
    canvas: Optional[int] = typer.Option(None, "--canvas", metavar="N", help="Canvas side for a checkpoint that "
                                         "does not store it (see `info --canvas`)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing checkpoint (and its hrm-edge sidecar)."),
) -> None:
    """Write any checkpoint as a native hrm-edge one, its config resolved (canvas, trained dtype).

    Export, solve, compare and train --init-from then read it without guessing."""
    from hrm_edge.model.checkpoint import check_checkpoint_out, load_checkpoint, save_checkpoint

    check_checkpoint_out(out, new=True, force=force)
    ck = load_checkpoint(ckpt, canvas=canvas)
    trained = ck.meta.get("trained_dtype", "float32")
    if trained != "float32":
        ck.model.set_forward_dtype(trained)  # recorded as the file's forward_dtype: it reads back as trained_dtype
    save_checkpoint(out, ck.model, train_state={"step": ck.meta.get("step"), "converted_from": str(ckpt),
                                                "source_format": ck.source_format, "source_sha256": ck.sha256})
    for note in ck.meta.get("notes") or []:
        print(f"note: {note}")
    print(f"wrote {out} ({ck.config.family}, canvas {ck.config.canvas}, trained in {trained}, from "
          f"{ck.source_format})")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("init")(init)
    app.command("convert")(convert)
