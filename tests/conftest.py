"""The test kit, one of each: a CLI runner, a small-model builder, a random-token maker, a task writer,
and the artifacts several test files need, built once per test run (session fixtures).

Models are the `tiny` / `tiny-lite` presets on a 10x10 canvas (100 tokens instead of 900: attention
is ~80x cheaper on 2 CPU cores); ARC tasks whose grids all fit 10x10 exist in plenty, so parity L4
and the solver still run real puzzles. Full-canvas, real-size models are exported once per family in
test_export_presets.py. Random weights are adjusted so halting is not trivial: ACT v1's Q head gets
random weights (its init, zero weight / bias -5, never halts adaptively) and the lite halting bias is
centred on the 0.9 threshold, so some samples halt early and others do not.

Session artifacts (`tiny_ckpt`, `lite_ckpt`, `other_ckpt`, `tasks_dir`, `bundles`) are shared and must
not be modified by a test: copy them first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

# The kit's tiny models run fastest on one thread (a parallel region costs more than their matmuls, and on
# a shared CPU a second thread busy-waits: a tiny export took 19 s on 2 threads, 3 s on 1). Results are
# bit-identical across thread counts on CPU. Real-size tests ask for more with the `all_threads` fixture.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
FAST = {"l3_batches": (1, 3), "l4_puzzles": 3}  # the ladder the session bundles pass
# (family, ACT mode, baked halting rule): every mode once per family, every halting rule in a graph once
BUNDLE_CASES = [("tiny", "step", "max"), ("tiny", "unrolled", "max"), ("tiny", "loop", "adaptive"),
                ("tiny-lite", "step", "max"), ("tiny-lite", "unrolled", "max"), ("tiny-lite", "loop", "batch-mean")]
TINY_IDENTIFIERS = ["<blank>"] + [f"p{i}" for i in range(1, 16)]  # the reference's list form


# --------------------------------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, inprocess: bool = False, cwd: str | Path | None = None, timeout: int = 600,
            threads: int | None = None) -> CliResult:
    """`hrm-edge ARGS` as a user runs it, on this checkout's code.

    Default: a subprocess (what the console script does, process-level behaviour included). With
    `inprocess`, the same entry point `cli.main` in this process (no interpreter and torch start-up);
    exit codes and the one-line error mapping are the same code path. `threads` sets the subprocess's
    OMP_NUM_THREADS (torch's default pool size) for commands without a --threads option.
    """
    if not inprocess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        p = subprocess.run([sys.executable, "-m", "hrm_edge.cli", *args], capture_output=True, text=True,
                           cwd=cwd, timeout=timeout, env=env)
        return CliResult(p.returncode, p.stdout, p.stderr)
    from hrm_edge import cli

    out, err = io.StringIO(), io.StringIO()
    argv, here = sys.argv, os.getcwd()
    sys.argv = ["hrm-edge", *args]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """The CLI in a subprocess."""
    return run_cli


def run_inprocess(*args: str, **kw: Any) -> Any:
    """`hrm-edge ARGS` through the console script's code path (`cli.main`), in this process."""
    return run_cli(*args, inprocess=True, **kw)


@pytest.fixture
def cli_fast():
    """The CLI in this process."""
    return run_inprocess


@pytest.fixture
def all_threads() -> Iterator[int]:
    """torch on min(2, cores) threads for this test (real-size models), one again afterwards."""
    n = min(2, os.cpu_count() or 1)
    torch.set_num_threads(n)
    yield n
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------------------------------
# models and inputs
# --------------------------------------------------------------------------------------------------
def tiny_model(name: str = "tiny", canvas: int = 10, seed: int = 0) -> torch.nn.Module:
    """A random `tiny` / `tiny-lite` / `tiny-trm` on a small canvas whose adaptive halting differs between
    samples (the ACT v1 / TRM Q head gets random weights: its init, zero weight / bias -5, never halts)."""
    from hrm_edge.config import preset
    from hrm_edge.model import build_model
    from hrm_edge.model.act import halt_margin

    cfg = dataclasses.replace(preset(name), canvas=canvas)
    model = build_model(cfg, seed=seed).eval()
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        if hasattr(model, "q_head"):  # act-v1, trm
            model.q_head.weight.copy_(torch.randn(model.q_head.weight.shape, generator=g) * 0.5)
            model.q_head.bias.fill_(0.0)
            model.puzzle_emb.weights.copy_(torch.randn(model.puzzle_emb.weights.shape, generator=g) * 0.5)
        else:
            model.halt_predictor.weight.mul_(8.0)
    # centre the halting decision on random inputs, so samples fall on both sides of it
    tokens, pe = random_tokens(model, 16, seed=seed + 11)
    with torch.no_grad():
        t = torch.from_numpy(tokens)
        v = None if pe is None else torch.from_numpy(pe)
        z = model.empty_carry(16)
        margins = []
        for k in range(cfg.max_steps):
            _, qh, qc, *z = model.step(t, v, z[0], z[1], torch.full((16,), k == 0))
            margins.append(halt_margin(qh, qc, model.adaptive_rule))
        mid = torch.cat(margins[1:]).median()
        if hasattr(model, "q_head"):
            model.q_head.bias[0] -= mid
        else:
            model.halt_predictor.bias -= mid
    return model


def small_checkpoint(path: Path, name: str = "tiny", canvas: int = 10, seed: int = 0) -> Path:
    """`tiny_model` saved as a native checkpoint (no identifier index beside it)."""
    from hrm_edge.model.checkpoint import save_checkpoint

    return save_checkpoint(path, tiny_model(name, canvas, seed), train_state={"step": 0, "seed": seed})


def random_tokens(model: Any, batch: int, seed: int | np.random.Generator = 0
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Random token grids for `model` (its vocabulary and sequence length) and, for ACT v1, the puzzle
    vectors of random identifiers of its table (None for lite)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    cfg = model.config
    tokens = rng.integers(0, cfg.vocab_size, (batch, cfg.seq_len)).astype(np.int32)
    pe = None
    if cfg.puzzle_emb_ndim:
        ids = torch.as_tensor(rng.integers(0, cfg.num_puzzle_identifiers, batch))
        with torch.no_grad():
            pe = model.puzzle_vectors(ids).float().numpy()
    return tokens, pe


# --------------------------------------------------------------------------------------------------
# ARC tasks
# --------------------------------------------------------------------------------------------------
def small_real_tasks(n: int, max_side: int = 9, split: str = "arc-agi-1/evaluation") -> list:
    """The first n tasks of a real ARC set whose grids all fit max_side x max_side."""
    from hrm_edge.data.arc import load_tasks

    out = []
    for t in load_tasks(split).tasks:
        if all(h <= max_side and w <= max_side for h, w in t.shapes()):
            out.append(t)
            if len(out) == n:
                break
    return out


def write_tasks(folder: Path, tasks: list | Mapping[str, Any]) -> Path:
    """Write ARC task files into `folder` (created): ArcTask objects as `<id>.json`, or a mapping of
    name -> JSON object (or a raw string, for files that are not JSON) as `<name>.json`. Returns folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = tasks.items() if isinstance(tasks, Mapping) else ((t.id, t.to_json()) for t in tasks)
    for name, obj in items:
        (folder / f"{name}.json").write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return folder


# --------------------------------------------------------------------------------------------------
# artifacts built once per test run
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kit")


@pytest.fixture(scope="session")
def tiny_ckpt(kit_dir: Path) -> Path:
    """`tiny` (ACT v1) on a 10x10 canvas, seed 0, saved as a native checkpoint."""
    return small_checkpoint(kit_dir / "ckpt" / "tiny.pt")


@pytest.fixture(scope="session")
def other_ckpt(kit_dir: Path) -> Path:
    """The same preset as `lite_ckpt` with another seed (different weights)."""
    return small_checkpoint(kit_dir / "ckpt" / "tiny-lite-seed1.pt", name="tiny-lite", seed=1)


@pytest.fixture(scope="session")
def lite_ckpt(kit_dir: Path) -> Path:
    """`tiny-lite` on a 10x10 canvas, seed 0."""
    return small_checkpoint(kit_dir / "ckpt" / "tiny-lite.pt", name="tiny-lite")


@pytest.fixture(scope="session")
def tasks_dir(kit_dir: Path) -> Path:
    """Three real ARC-AGI-1 evaluation tasks whose grids fit 9x9."""
    return write_tasks(kit_dir / "tasks", small_real_tasks(3))


@pytest.fixture(scope="session")
def bundles(kit_dir: Path, tiny_ckpt: Path, lite_ckpt: Path) -> Iterator[dict[tuple[str, str, str], Any]]:
    """One parity-checked bundle per (family, ACT mode) of BUNDLE_CASES, exported from the session
    checkpoints with the FAST ladder; the tiny step bundle carries an identifier index (<blank>, p1..p15)."""
    from hrm_edge.export import export_checkpoint

    ids = kit_dir / "ids" / "identifiers.json"
    ids.parent.mkdir()
    ids.write_text(json.dumps(TINY_IDENTIFIERS))
    out = {}
    for name, act, halt in BUNDLE_CASES:
        ckpt = tiny_ckpt if name == "tiny" else lite_ckpt
        out[(name, act, halt)] = export_checkpoint(
            ckpt, kit_dir / "bundles" / f"{name}-{act}", act=act, halt=halt,
            identifiers=ids if (name, act) == ("tiny", "step") else None, **FAST)
    yield out
