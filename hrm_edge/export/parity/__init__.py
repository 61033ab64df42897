"""The parity ladder: what `export` proves before it commits a bundle (and `verify` re-proves), one level a
file (l1_structure.py, l2_weights.py, l3_teacher_forced.py, l4_free_run.py) run in order by ladder.py, over
the traces (traces.py), PyTorch references (references.py) and comparisons (stats.py) L3 and L4 share.

L1  structure: `onnx.checker` full check, strict shape inference, the opset asked for, and the
    op-support lint of the chosen target (trt_ops.py); every target's lint is recorded.
L2  weights: every tensor of the checkpoint's state dict reaches the graph as an initializer a
    live node reads (value-identical, or its transpose; fp16 = the value within fp16 rounding, 2^-10
    relative, with |x| < 6e-8 lifted to 6e-8 as ONNX Runtime's converter does; int8 = dequantizes to
    the value within half a quantization step), and `puzzle_emb.npy` equals the
    checkpoint's table in the bundle's dtype. A weight constant-folded into something else or
    dropped fails here.
L3  synthetic parity, *segment by segment, teacher-forced*: random token grids go through the bundle in
    ONNX Runtime (the shipped graph; for unrolled / loop an instrumented copy that also returns each
    segment's carry) and every segment is re-run in PyTorch from the *same* carry. Per output,
    max|Δ| must be <= max(base, FLOOR_FACTOR x floor), base 1e-4, floor = how far PyTorch's own fp32
    result lies from a float64 re-run of that segment (measured only when base is exceeded). The
    graph's halting step per sample must equal the host rule applied to PyTorch's q-values, except
    where the deciding q margin is within tolerance (counted). A step bundle runs every segment once
    per batch and each halting rule is judged on those q-values (segments do not depend on the rule).
L4  real puzzles, *free running*, the way a user runs them: ARC test inputs (data.arc + data.tokens,
    puzzle vectors from the bundle's table) through ONNX Runtime, fp32 PyTorch and float64 PyTorch,
    each on its own trajectory. A recurrence amplifies rounding (a random `hrm-6m`'s ORT-vs-PyTorch
    logit gap grows ~3x per segment, 5e-6 to 1e-3 over 8), so the gate is set per segment by the
    model's own fp32 sensitivity measured in the same run: the runtime's max|Δ| at segment k must be
    <= max(base, FLOOR_FACTOR x floor_k), floor_k = max|fp32 PyTorch - float64 PyTorch| at segment k.
    Raw argmax grids (every canvas cell, decodable or not) at the halting segment are compared; a
    differing cell is allowed only where PyTorch's top-two margin is <= 2 x that segment's logit
    tolerance, a differing halting step only where the q decision is within the q tolerance.
    FLOOR_FACTOR = 8: |runtime - PyTorch| <= |runtime - exact| + |PyTorch - exact|, so a runtime whose
    own fp32 error is up to 7x PyTorch's passes (ONNX Runtime CPU on a random hrm-6m: gap / floor up to
    3.2, at segment 5). What an export bug does shows from segment 1 on (every segment runs the same
    graph), where the floor is ~3e-6 and the 1e-4 base decides; the factor only matters once the
    recurrence has amplified PyTorch's own rounding past the base.
fp16 / int8 bundles are measured the same way against fp32 PyTorch, but L3 / L4 only gate on finite
outputs: their agreement is reported, not required (DESIGN: report precision effects separately).
"""

from hrm_edge.export.parity.l1_structure import check_l1
from hrm_edge.export.parity.l2_weights import check_l2, expected_weights
from hrm_edge.export.parity.l3_teacher_forced import check_l3, teacher_forced
from hrm_edge.export.parity.l4_free_run import check_l4, real_inputs
from hrm_edge.export.parity.ladder import run_ladder
from hrm_edge.export.parity.references import TorchF64Runner
from hrm_edge.export.parity.report import (
    BASE_TOL,
    DEFAULT_L4_SOURCE,
    FLOOR_FACTOR,
    LevelResult,
    ParityError,
    ParityReport,
)
from hrm_edge.export.parity.traces import OrtTrace, instrument

__all__ = ["ParityReport", "LevelResult", "ParityError", "check_l1", "check_l2", "check_l3", "check_l4", "run_ladder",
           "instrument", "TorchF64Runner", "BASE_TOL", "FLOOR_FACTOR", "DEFAULT_L4_SOURCE", "real_inputs", "OrtTrace",
           "teacher_forced", "expected_weights"]
