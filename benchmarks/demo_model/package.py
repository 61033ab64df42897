"""Package a demo-model training run into hrm_edge/assets/demo/ (weights only, identifiers, demo.json).

    python benchmarks/demo_model/package.py --run demo_run --data demo_data      # the run's best.pt
    python benchmarks/demo_model/package.py --ckpt demo_run/checkpoints/step_2000.pt --data demo_data

The checks and the manifest are hrm_edge.demo.asset.package_asset's: the dataset must be built with
--hold-out-tests and --skip-larger, the checkpoint must come from that dataset (fingerprint), and the
weights-only file must stay under 10 MB. Prints the manifest's summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from hrm_edge.demo.asset import ASSET_DIR, package_asset
    from hrm_edge.errors import HrmEdgeError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="training run folder (its best.pt is packaged)")
    ap.add_argument("--ckpt", type=Path, help="a checkpoint to package instead of RUN/best.pt")
    ap.add_argument("--data", type=Path, required=True, help="the run's dataset folder (identifiers.json, build.json)")
    ap.add_argument("--out", type=Path, default=ASSET_DIR, help=f"asset folder (default: {ASSET_DIR})")
    args = ap.parse_args(argv)
    ckpt = args.ckpt or (args.run / "best.pt" if args.run else None)
    if ckpt is None:
        ap.error("give --run or --ckpt")
    try:
        m = package_asset(ckpt, args.data, args.out)
    except HrmEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c, s = m["checkpoint"], m["selection"]
    print(f"wrote {args.out}: step {c['step']} of {c['total_steps']}, {c['bytes'] / 1e6:.2f} MB, "
          f"{len(s['tasks'])} tasks / {s['test_inputs']} held-out test inputs ({s['rule']}); "
          f"metrics {c['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
