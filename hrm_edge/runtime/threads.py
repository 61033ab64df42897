"""CPU thread defaults for torch and ONNX Runtime, chosen for a CPU shared with other work.

A Jetson's CPU also runs camera and control processes, and a dev box runs other jobs. With one
intra-op thread per core and spin-waiting at every barrier, a run whose sibling thread is descheduled
burns its time slice spinning: measured here at load ~5 on 2 cores, `solve --ckpt` took 3.1 s per
puzzle with the libraries' defaults and 0.14 s with one thread. The defaults below come from
benchmarks/threads/ (every setting at 0, 2 and 4 busy background processes; the default must stay
within 1.5x of the best setting at each load); `--threads N` overrides the count.
"""

from __future__ import annotations

import os

# ORT intra-op spin-waiting (session.intra_op.allow_spinning); see benchmarks/threads/README.md
ORT_SPINNING = False
# OpenMP wait policy for torch's intra-op pool (libgomp reads it once, when torch loads)
OMP_WAIT_POLICY = "PASSIVE"


def default_threads() -> int | None:
    """The intra-op thread count used when --threads is not given (None: the library's own, one per core)."""
    return None


def set_wait_policy() -> None:
    """Make OpenMP threads sleep rather than spin at barriers, unless the user's environment says otherwise.

    Must run before torch is imported (libgomp reads OMP_WAIT_POLICY when it loads): the CLI calls it first.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
