"""Plot a training run's curve: loss and token accuracy from metrics.jsonl, held-out eval from eval.jsonl.

    python benchmarks/demo_model/plot_curve.py RUN benchmarks/demo_model/curve.png
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

run, out = Path(sys.argv[1]), Path(sys.argv[2])
m = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
e = [r for r in map(json.loads, (run / "eval.jsonl").read_text().splitlines()) if not r.get("full")]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
a.plot([r["step"] for r in m], [r["loss"] for r in m], lw=0.8, label="training loss (total)")
a.set_xlabel("step")
a.set_title("training loss")
b.plot([r["step"] for r in m], [r["token_accuracy"] for r in m], lw=0.6, alpha=0.6, label="train non-PAD tokens")
b.plot([r["step"] for r in e], [r["token_accuracy"] for r in e], "o-", label="held-out non-PAD tokens")
b.plot([r["step"] for r in e], [r["exact_accuracy"] for r in e], "s-", label="held-out exact grids")
b.set_xlabel("step")
split = {r.get("split", "test") for r in e}
what = ("validation: each task's last demonstration pair, augmented" if split == {"val"} else
        "augmented test inputs")
b.set_title(f"accuracy (held-out: {what})", fontsize=10)
b.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
