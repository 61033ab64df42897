"""ACT v1 training loss, as the reference's `ACTLossHead` computes it (sapientinc/HRM models/losses.py).

Per step: cross-entropy (stablemax by default, softmax as an option) over the non-ignored label
tokens, averaged per sequence and summed over the batch; BCE of q_halt against "this sequence is
exactly right"; BCE of q_continue against the bootstrapped target of `act.act_train_step`; total
`lm + 0.5 * (q_halt + q_continue)`. The caller divides by the global batch. The metrics count only
samples that halted at this step (their answer is final), as the reference's do; PAD labels are
ignored everywhere, so no accuracy here is PAD-inflated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hrm_edge.data.tokens import PAD

LOSS_KINDS = ("stablemax", "softmax")


def _stablemax_s(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token -log stablemax(logits)[label] in float64 (0 where `mask` is False)."""
    s = _stablemax_s(logits.to(torch.float64))
    logp = torch.log(s / s.sum(-1, keepdim=True))
    picked = logp.gather(-1, torch.where(mask, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, picked, 0)


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token softmax cross-entropy in float32 (0 where `mask` is False)."""
    ce = F.cross_entropy(logits.float().flatten(0, -2), torch.where(mask, labels, 0).long().flatten(),
                         reduction="none").view(labels.shape)
    return torch.where(mask, ce, 0)


def act_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, halted: torch.Tensor, steps: torch.Tensor,
             kind: str = "stablemax") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(summed loss of the batch, metric sums as 0-d tensors; `count` = halted samples with labels).

    `labels` are the slots' current labels (the carry's data), `halted`/`steps` the carry after the step.
    """
    logits = out["logits"]
    mask = labels != PAD
    with torch.no_grad():
        counts = mask.sum(-1)
        divisor = counts.clamp_min(1).unsqueeze(-1)
        correct = mask & (logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == counts
        valid = halted & (counts > 0)
        metrics = {
            "count": valid.sum(),
            "token_accuracy": torch.where(valid, (correct.float() / divisor).sum(-1), 0).sum(),
            "exact_accuracy": (valid & seq_correct).sum(),
            "q_halt_accuracy": (valid & ((out["q_halt_logits"] >= 0) == seq_correct)).sum(),
            "steps": torch.where(valid, steps, 0).sum(),
        }
    ce = stablemax_cross_entropy if kind == "stablemax" else softmax_cross_entropy
    lm = (ce(logits, labels, mask) / divisor).sum()
    q_halt = F.binary_cross_entropy_with_logits(out["q_halt_logits"], seq_correct.to(out["q_halt_logits"].dtype),
                                                reduction="sum")
    metrics["lm_loss"], metrics["q_halt_loss"] = lm.detach(), q_halt.detach()
    total = lm + 0.5 * q_halt
    if "target_q_continue" in out:
        q_cont = F.binary_cross_entropy_with_logits(out["q_continue_logits"], out["target_q_continue"],
                                                    reduction="sum")
        metrics["q_continue_loss"] = q_cont.detach()
        total = total + 0.5 * q_cont
    return total, metrics
