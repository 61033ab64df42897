"""HRM model families behind one interface (see base.py)."""

from __future__ import annotations

import torch

from hrm_edge.config import ActV1Config, HRMConfig, LiteConfig
from hrm_edge.model.base import HRMBase
from hrm_edge.model.hrm import HRMActV1
from hrm_edge.model.lite import HRMLite


def build_model(cfg: HRMConfig, seed: int | None = None) -> HRMBase:
    """A freshly initialised model of the config's family (deterministic when `seed` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(cfg, ActV1Config):
        return HRMActV1(cfg)
    if isinstance(cfg, LiteConfig):
        return HRMLite(cfg)
    raise TypeError(f"not an HRM config: {type(cfg).__name__}")


__all__ = ["build_model", "HRMBase", "HRMActV1", "HRMLite"]
