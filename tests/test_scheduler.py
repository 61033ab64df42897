"""Continuous batching (runtime/scheduler.py) gives the answers of static batching at equal slots: the same
segments per puzzle and the same grids, on every halting rule, through PyTorch, ONNX Runtime (plain and
I/O-bound sessions) and TensorRT (the runner with its device-resident carry, against the real TensorRT
API through spec'd doubles). It must also really interleave: fewer segments than static where halting
varies, and puzzles submitted while others run get their own answers."""

from __future__ import annotations

from pathlib import Path

import _trt_real
import numpy as np
import pytest
from conftest import random_tokens, tiny_model

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export import export_model
from hrm_edge.runtime.onnxruntime import OrtRunner
from hrm_edge.runtime.scheduler import ContinuousScheduler, Puzzle, StaticScheduler, make_scheduler, run_scheduled
from hrm_edge.runtime.torch import TorchRunner

FAMILIES = ["tiny", "tiny-lite", "tiny-trm"]
N, SLOTS = 23, 4  # 23 puzzles: the last static batch is a partial one


def _cases() -> list[tuple[str, str]]:
    from hrm_edge.config import preset
    from hrm_edge.model import model_class

    return [(f, h) for f in FAMILIES for h in model_class(preset(f).family).halt_modes]


@pytest.fixture(scope="module")
def models() -> dict:
    return {f: tiny_model(f) for f in FAMILIES}


@pytest.fixture(scope="module")
def step_bundles(models: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sched")
    return {f: export_model(models[f], root / f, act="step", puzzle_dtype="float32", l3_batches=(1,),
                            l4_puzzles=0).path for f in ("tiny", "tiny-lite")}


def _same(a, b) -> None:
    """Same segments and grids per puzzle; logits equal to float rounding (same kernels, same shapes)."""
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(a.q_halt, b.q_halt, rtol=0, atol=1e-5)


def _check_runner(runner, model, halt: str) -> None:
    tokens, pe = random_tokens(model, N, seed=5)
    static = run_scheduled(runner, tokens, pe, slots=SLOTS, halt=halt, schedule="static")
    cont = run_scheduled(runner, tokens, pe, slots=SLOTS, halt=halt, schedule="continuous")
    _same(cont, static)
    # and static is `run_act` batch by batch (what `solve` does today)
    for s in range(0, N, SLOTS):
        ref = runner.run_act(tokens[s:s + SLOTS], None if pe is None else pe[s:s + SLOTS], halt=halt)
        np.testing.assert_array_equal(static.steps[s:s + SLOTS], ref.steps)
        np.testing.assert_array_equal(static.predictions[s:s + SLOTS], ref.predictions)
    if halt == "adaptive":
        assert len(set(static.steps.tolist())) > 1, "the kit's model must halt at different segments"


@pytest.mark.parametrize("family,halt", _cases())
def test_torch_continuous_equals_static(models: dict, family: str, halt: str) -> None:
    with TorchRunner.from_model(models[family]) as r:
        _check_runner(r, models[family], halt)


@pytest.mark.parametrize("io_binding", [True, False], ids=["iobinding", "plain"])
@pytest.mark.parametrize("family,halt", [c for c in _cases() if c[0] != "tiny-trm"])
def test_onnxruntime_continuous_equals_static(models: dict, step_bundles: dict, family: str, halt: str,
                                              io_binding: bool) -> None:
    with OrtRunner.from_bundle(step_bundles[family], io_binding=io_binding) as r:
        _check_runner(r, models[family], halt)


def test_continuous_runs_fewer_segments_where_halting_varies(models: dict) -> None:
    """The point of it: halted slots take new puzzles, so adaptive halting costs fewer segment calls."""
    model = models["tiny"]
    tokens, pe = random_tokens(model, N, seed=5)
    with TorchRunner.from_model(model) as r:
        stats = {}
        for kind in ("static", "continuous"):
            sched = make_scheduler(kind, r, SLOTS, "adaptive")
            sched.run([Puzzle(tokens[i], pe[i], i) for i in range(N)])
            stats[kind] = sched.stats
    assert stats["continuous"].segments < stats["static"].segments
    assert stats["continuous"].occupancy > stats["static"].occupancy
    assert stats["continuous"].puzzles == stats["static"].puzzles == N


def test_batch_mean_runs_in_cohorts(models: dict) -> None:
    """batch-mean reads its batch company: continuous admits a cohort only when every slot is free, so its
    batches (and segment calls) are exactly static's."""
    model = models["tiny-lite"]
    tokens, _ = random_tokens(model, N, seed=5)
    with TorchRunner.from_model(model) as r:
        segs = {}
        for kind in ("static", "continuous"):
            sched = make_scheduler(kind, r, SLOTS, "batch-mean")
            sched.run([Puzzle(tokens[i], None, i) for i in range(N)])
            segs[kind] = sched.stats.segments
    assert segs["continuous"] == segs["static"]


def test_puzzles_arriving_while_others_run(models: dict) -> None:
    """The service's case: puzzles are submitted between segments, in uneven groups; each still gets the
    answer it gets alone in a static batch."""
    model = models["tiny"]
    tokens, pe = random_tokens(model, N, seed=9)
    rng = np.random.default_rng(0)
    with TorchRunner.from_model(model) as r:
        alone = [r.run_act(tokens[i:i + 1], pe[i:i + 1], halt="adaptive") for i in range(N)]
        sched = ContinuousScheduler(r, SLOTS, "adaptive")
        done, i = [], 0
        while i < N or not sched.idle:
            if i < N and rng.random() < 0.5:
                k = int(rng.integers(1, 5))
                sched.submit(Puzzle(tokens[j], pe[j], j) for j in range(i, min(N, i + k)))
                i += k
            done.extend(sched.step())
    assert sorted(f.puzzle.tag for f in done) == list(range(N))
    for f in done:
        ref = alone[f.puzzle.tag]
        assert f.steps == int(ref.steps[0])
        np.testing.assert_array_equal(f.logits.argmax(-1), ref.predictions[0])


def test_discard_drops_waiting_puzzles(models: dict) -> None:
    model = models["tiny"]
    tokens, pe = random_tokens(model, 6, seed=1)
    with TorchRunner.from_model(model) as r:
        sched = ContinuousScheduler(r, 2, "max")
        sched.submit(Puzzle(tokens[i], pe[i], "a" if i < 3 else "b") for i in range(6))
        sched.step()  # two "a" puzzles enter their slots
        assert sched.discard(lambda p: p.tag == "b") == 3 and sched.waiting == 1
        done = []
        while not sched.idle:
            done.extend(sched.step())
    assert [f.puzzle.tag for f in done] == ["a", "a", "a"]


def test_refusals(models: dict, tmp_path: Path) -> None:
    model = models["tiny"]
    bundle = export_model(model, tmp_path / "unrolled", act="unrolled", halt="max", l3_batches=(1,),
                          l4_puzzles=0).path
    with OrtRunner.from_bundle(bundle) as r:
        with pytest.raises(HrmEdgeError, match="continuous batching needs a `step` export"):
            ContinuousScheduler(r, 4, "max")
        StaticScheduler(r, 4, "max")  # static runs any export
    with TorchRunner.from_model(model) as r:
        with pytest.raises(HrmEdgeError, match="slots must be at least 1"):
            make_scheduler("continuous", r, 0)
        with pytest.raises(HrmEdgeError, match="unknown schedule"):
            make_scheduler("dynamic", r, 4)
        with pytest.raises(HrmEdgeError, match="batch-mean.*not available"):
            make_scheduler("continuous", r, 4, "batch-mean")


# --------------------------------------------------------------------------------------------------
# TensorRT: the runner's device-resident carry, against the real API through spec'd doubles
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["10.3", "8.6"])
def real(request) -> _trt_real.RealTrt:
    return _trt_real.require(request.param)


@pytest.fixture(scope="module")
def trt_engine(real, step_bundles: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import json

    folder = tmp_path_factory.mktemp(f"engine{real.version}")
    got = real.run("_trt_doubles.py", "build", str(step_bundles["tiny"]), str(folder / "model.engine"),
                   json.dumps({"max_batch": 8}))
    assert "error" not in got, got
    return folder / "model.engine"


@pytest.mark.parametrize("graph", [False, True], ids=["plain", "cuda-graph"])
@pytest.mark.parametrize("halt", ["adaptive", "max"])
def test_tensorrt_continuous_equals_static(real, trt_engine: Path, step_bundles: dict, models: dict, tmp_path: Path,
                                           halt: str, graph: bool) -> None:
    tokens, pe = random_tokens(models["tiny"], N, seed=5)
    np.savez(tmp_path / "inputs.npz", tokens=tokens, puzzle_emb=pe)
    got = real.run("_trt_doubles.py", "schedule", str(trt_engine), str(step_bundles["tiny"]),
                   str(tmp_path / "inputs.npz"), halt, str(SLOTS), *(["--cuda-graph"] if graph else []))
    assert got["problems"] == []
    assert got["steps"] == got["static_steps"] == got["ref_steps"]
    assert got["grids_equal_static"] and got["grids_equal_ref"]
    assert got["max_logit_diff_static"] < 1e-5
    if halt == "adaptive":
        assert len(set(got["steps"])) > 1
    # the carry never came back to the host: logits once per puzzle, 8 bytes of q values per slot-segment
    assert got["dtoh_bytes"] == N * got["logits_bytes_per_sample"] + got["segments"] * SLOTS * 8
    assert got["executions"] == got["segments"]
    # every segment after the first replays a captured graph, restarts included (fixed halted addresses)
    assert got["graph_launches"] == (got["segments"] - 1 if graph else 0)
    assert got["closed"] and got["live_allocations"] == 0
