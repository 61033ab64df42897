"""Check hrm-edge's bf16 mode against the reference code itself, run on the CPU in bfloat16.

    git clone https://github.com/sapientinc/HRM /tmp/HRM
    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels /tmp/TRM
    python scripts/check_reference_bf16.py hrm /tmp/HRM
    python scripts/check_reference_bf16.py trm /tmp/TRM

The reference's own model (`hrm_act_v1.py` / `trm.py`), loss head (`losses.py`) and sparse sign-SGD
(`sparse_embedding.py`) are imported from the clone, with forward_dtype bfloat16; flash-attn (CUDA only) is
replaced by SDPA and einops' one rearrange by a transpose (stand-ins written to a temp folder). Both models
start from the same seed (the init is compared), get the same random puzzle rows and Q head, and then run
8 training steps on the same batches with halting and exploration (p=0.5, same RNG draws): the carry,
halting, loss, every dense gradient and the puzzle-row gradients are compared after each step, and both
take the same Adam-atan2 / sign-SGD updates. Last, the reference's evaluation loop (every segment) against
`TorchRunner(dtype="bfloat16")` and, for contrast, the fp32 runner on the same weights.
Nothing of the reference is copied into hrm-edge; this script needs the clone.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

STUBS = {
    "flash_attn.py": (
        "import torch.nn.functional as F\n\n\n"
        "def flash_attn_func(q, k, v, causal=False):  # [B, S, H, D] as flash-attn takes it\n"
        "    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),\n"
        "                                          is_causal=causal).transpose(1, 2).contiguous()\n"),
    "einops.py": (
        "def rearrange(t, pattern):\n"
        "    assert pattern in ('B S H D -> B H S D', 'B H S D -> B S H D'), pattern\n"
        "    return t.transpose(1, 2)\n"),
}
if len(sys.argv) != 3 or sys.argv[1] not in ("hrm", "trm"):
    sys.exit("usage: check_reference_bf16.py hrm|trm PATH_TO_REFERENCE_CLONE")
which, ROOT = sys.argv[1], sys.argv[2]
stubs = Path(tempfile.mkdtemp(prefix="hrm-edge-ref-stubs-"))
for name, text in STUBS.items():
    (stubs / name).write_text(text)
sys.path[:0] = [str(stubs), ROOT]
from models.losses import ACTLossHead  # noqa: E402
from models.sparse_embedding import _sparse_emb_signsgd_dist  # noqa: E402

from hrm_edge.config import ActV1Config, TrmConfig  # noqa: E402
from hrm_edge.model import build_model  # noqa: E402
from hrm_edge.model.act import act_train_step, initial_train_carry  # noqa: E402
from hrm_edge.runtime.torch import TorchRunner  # noqa: E402
from hrm_edge.train.loss import act_loss  # noqa: E402
from hrm_edge.train.optim import AdamAtan2, SparseSignSGD  # noqa: E402

torch.set_num_threads(1)
B, C, H, P, MAX = 8, 8, 64, 20, 4
common = dict(hidden_size=H, num_heads=4, expansion=4.0, H_cycles=2, L_cycles=2, halt_max_steps=MAX,
              halt_exploration_prob=0.5, forward_dtype="bfloat16", puzzle_emb_ndim=H, num_puzzle_identifiers=P)
if which == "hrm":
    from models.hrm.hrm_act_v1 import HierarchicalReasoningModel_ACTV1 as Ref
    rcfg = dict(batch_size=B, seq_len=C * C, vocab_size=12, H_layers=2, L_layers=2, pos_encodings="rope", **common)
    ocfg = ActV1Config(canvas=C, H_layers=2, L_layers=2, **common)
else:
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1 as Ref
    rcfg = dict(batch_size=B, seq_len=C * C, vocab_size=12, H_layers=0, L_layers=2, pos_encodings="rope",
                puzzle_emb_len=2, no_ACT_continue=True, **common)
    ocfg = TrmConfig(canvas=C, L_layers=2, puzzle_emb_len=2, **common)

torch.manual_seed(0)
ref = ACTLossHead(Ref(rcfg), "stablemax_cross_entropy")
ours = build_model(ocfg, seed=0)
rsd = {k.removeprefix("model.inner."): v for k, v in ref.state_dict().items()}
osd = ours.state_dict()
assert set(rsd) == set(osd), set(rsd) ^ set(osd)
init_gap = {k: float((rsd[k].float() - osd[k].float()).abs().max()) for k in osd}
print("init from seed 0: max |ref - ours| over", len(osd), "tensors:", max(init_gap.values()),
      "| H_init dtype ref", rsd["H_init"].dtype)

# random weights where the init is degenerate (puzzle table 0, Q head 0/-5), same in both
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    ours.puzzle_emb.weights.copy_(torch.randn(P, H, generator=g) * 0.5)
    ours.q_head.weight.copy_(torch.randn(2, H, generator=g) * 0.05)
    ours.q_head.bias.copy_(torch.tensor([0.0, 0.0]))
ref.model.inner.load_state_dict(ours.state_dict())
for k, v in ref.model.inner.state_dict().items():
    assert torch.equal(v.float(), ours.state_dict()[k].float()), k

rng = np.random.default_rng(0)


def batch():
    inp = torch.from_numpy(rng.integers(2, 12, (B, C * C)).astype(np.int32))
    lab = torch.from_numpy(rng.integers(0, 12, (B, C * C)).astype(np.int32))
    lab[:, -10:] = 0  # PAD: hrm-edge's ignored label, the reference's -100
    pid = torch.from_numpy(rng.integers(1, P, (B,)).astype(np.int32))
    return {"inputs": inp, "labels": lab, "puzzle_identifiers": pid}


def to_ref(b):
    lab = b["labels"].clone()
    lab[lab == 0] = -100
    return {**b, "labels": lab}


ours.train()
ref.train()
dense_o = [p for n, p in ours.named_parameters() if n != "puzzle_emb.weights"]
names = [n for n, p in ours.named_parameters() if n != "puzzle_emb.weights"]
ours.puzzle_emb.weights.requires_grad_(False)
rparams = dict(ref.model.inner.named_parameters())
dense_r = [rparams[n] for n in names]
opt_o, opt_r = AdamAtan2(dense_o, lr=1e-3), AdamAtan2(dense_r, lr=1e-3)
sparse = SparseSignSGD(ours.puzzle_emb.weights, 1e-2, 0.1)
b0 = batch()
c_o = initial_train_carry(ours, b0)
c_r = ref.initial_carry(to_ref(b0))
worst = 0.0
for step in range(1, 9):
    b = batch()
    torch.manual_seed(100 + step)
    c_o, out = act_train_step(ours, c_o, b, puzzle_vectors=sparse.rows)
    loss_o, m_o = act_loss(out, c_o.data["labels"], c_o.halted, c_o.steps)
    (loss_o / B).backward()
    torch.manual_seed(100 + step)
    c_r, loss_r, m_r, _, _ = ref(carry=c_r, batch=to_ref(b), return_keys=[])
    (loss_r / B).backward()
    d = {"z_H": (c_o.z_H.float() - c_r.inner_carry.z_H.float()).abs().max(),
         "z_L": (c_o.z_L.float() - c_r.inner_carry.z_L.float()).abs().max(),
         "loss": abs(float(loss_o.detach()) - float(loss_r.detach())),
         "grad": max(float((a.grad - r.grad).abs().max()) for a, r in zip(dense_o, dense_r)),
         "puzzle_grad": float((torch.cat([leaf.grad for leaf in sparse._leaves])
                               - ref.model.inner.puzzle_emb.local_weights.grad).abs().max())}
    same = torch.equal(c_o.halted, c_r.halted) and torch.equal(c_o.steps, c_r.steps)
    print(f"step {step}: carry dtype {c_o.z_H.dtype}/{c_r.inner_carry.z_H.dtype} halted+steps equal {same} "
          f"halted {int(c_o.halted.sum())} " + " ".join(f"{k} {float(v):.3g}" for k, v in d.items()))
    worst = max(worst, *map(float, d.values()))
    for o in (opt_o, opt_r):
        o.step()
        o.zero_grad(set_to_none=True)
    lw = ref.model.inner.puzzle_emb.local_weights
    _sparse_emb_signsgd_dist(lw.grad, ref.model.inner.puzzle_emb.local_ids, ref.model.inner.puzzle_emb.weights,
                             lr=1e-2, weight_decay=0.1, world_size=1)
    lw.grad = None
    sparse.step()
print("training: worst |ref - ours| over 8 steps:", worst)

# evaluation: the reference's loop (every segment, eval mode) vs TorchRunner in bf16 and fp32
ours.eval()
ref.eval()
b = batch()
with torch.inference_mode():
    c = ref.initial_carry(to_ref(b))
    while True:
        c, _, _, preds, done = ref(carry=c, batch=to_ref(b), return_keys=["logits"])
        if done:
            break
    want = preds["logits"].float().numpy()
pv = ours.puzzle_emb.weights.detach()[b["puzzle_identifiers"].long()].numpy()
for dt in ("bfloat16", "float32"):
    with TorchRunner.from_model(ours, dtype=dt) as r:
        got = r.run_act(b["inputs"].numpy(), pv, halt="max").logits
    agree = (got.argmax(-1) == want.argmax(-1)).mean()
    print(f"eval ({MAX} segments) TorchRunner dtype {dt}: max |logit diff| {np.abs(got - want).max():.4g}, "
          f"argmax agreement {agree:.4f}")
