"""CPU thread defaults for torch and ONNX Runtime, chosen for a CPU shared with other work.

A Jetson's CPU also runs camera and control processes, and a dev box runs other jobs. With one
intra-op thread per core and spin-waiting at every barrier, a run whose sibling thread is descheduled
burns its time slice spinning: on a loaded 2-core machine torch's default (2 threads, OpenMP's spin-wait)
took 8-35x longer per puzzle than one thread. Measured in benchmarks/threads/ (README there) at 0, 2 and 4
busy background processes: with threads that sleep when they wait (OMP_WAIT_POLICY=PASSIVE, ORT spinning
off) one thread per core is the best setting or within 1.32x of it at every load, for torch and ONNX Runtime
alike; so the count stays the libraries' default and only the waiting changes. `--threads N` sets the count.
"""

from __future__ import annotations

import os

# ORT intra-op spin-waiting (session.intra_op.allow_spinning); see benchmarks/threads/README.md
ORT_SPINNING = False
# OpenMP wait policy for torch's intra-op pool (libgomp reads it once, when torch loads)
OMP_WAIT_POLICY = "PASSIVE"


def set_wait_policy() -> None:
    """Make OpenMP threads sleep rather than spin at barriers, unless the user's environment says otherwise.

    Must run before torch is imported (libgomp reads OMP_WAIT_POLICY when it loads): the CLI calls it first.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
