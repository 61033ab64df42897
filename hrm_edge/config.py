"""Model configs, one dataclass per HRM family, and the named presets of DESIGN.md.

`ActV1Config` carries every hyper-parameter of the published HRM (sapientinc/HRM, ACT v1);
`TrmConfig` those of its successor TRM (SamsungSAILMontreal/TinyRecursiveModels);
`LiteConfig` those of the first user's `train_arc_full.py` model. All describe an ARC canvas
(`canvas` x `canvas` tokens, row-major), so `seq_len = canvas ** 2`; smaller canvases work for
small-grid models.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from hrm_edge.errors import HrmEdgeError

#: what `forward_dtype` may be: fp32, or the references' bf16 forward (their default: see ActV1Base.set_forward_dtype)
FORWARD_DTYPES = ("float32", "bfloat16")


@dataclass
class ActV1Config:
    """The published HRM with ACT (v1): puzzle embedding, RoPE, H/L post-norm RMSNorm blocks."""

    family: ClassVar[str] = "act-v1"
    vocab_size: int = 12
    canvas: int = 30
    puzzle_emb_ndim: int = 256
    num_puzzle_identifiers: int = 1
    hidden_size: int = 256
    num_heads: int = 8
    expansion: float = 4.0
    H_layers: int = 4
    L_layers: int = 3
    H_cycles: int = 2
    L_cycles: int = 2
    halt_max_steps: int = 8
    halt_exploration_prob: float = 0.1
    pos_encodings: str = "rope"  # "rope" | "learned"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    forward_dtype: str = "float32"  # the references train in bfloat16 (`train --dtype bfloat16`); edge runs fp32/fp16

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    @property
    def puzzle_emb_len(self) -> int:
        """Positions prepended for the puzzle embedding: ceil(puzzle_emb_ndim / hidden)."""
        return -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def max_steps(self) -> int:
        return self.halt_max_steps

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise HrmEdgeError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.pos_encodings not in ("rope", "learned"):
            raise HrmEdgeError(f"pos_encodings must be 'rope' or 'learned', got {self.pos_encodings!r}")
        if min(self.H_layers, self.L_layers, self.H_cycles, self.L_cycles, self.halt_max_steps) < 1:
            raise HrmEdgeError("layers, cycles and halt_max_steps must be >= 1")
        if self.num_puzzle_identifiers < 1:
            raise HrmEdgeError("num_puzzle_identifiers must be >= 1 (id 0 is the blank puzzle)")
        if self.forward_dtype not in FORWARD_DTYPES:
            raise HrmEdgeError(f"forward_dtype must be one of {', '.join(FORWARD_DTYPES)}, got {self.forward_dtype!r}")


@dataclass
class TrmConfig:
    """The Tiny Recursive Model (TinyRecursiveModels `trm.py`): one 2-block network does both updates.

    Field names are the reference's `arch:` keys. `puzzle_emb_len` is the number of puzzle positions
    (the reference's 16); 0 means ceil(puzzle_emb_ndim / hidden), as in the reference. `mlp_t`
    replaces attention by a SwiGLU across the sequence. The reference's ARC command runs
    H_cycles 3 / L_cycles 4 (its arch file says 6); `pos_encodings` may also be "none".
    """

    family: ClassVar[str] = "trm"
    vocab_size: int = 12
    canvas: int = 30
    puzzle_emb_ndim: int = 512
    num_puzzle_identifiers: int = 1
    puzzle_emb_len: int = 16
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    L_layers: int = 2
    H_cycles: int = 3
    L_cycles: int = 4
    halt_max_steps: int = 16
    halt_exploration_prob: float = 0.1
    pos_encodings: str = "rope"  # "rope" | "learned" | "none"
    mlp_t: bool = False
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    forward_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.puzzle_emb_len == 0:
            self.puzzle_emb_len = -(self.puzzle_emb_ndim // -self.hidden_size)

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    @property
    def max_steps(self) -> int:
        return self.halt_max_steps

    def validate(self) -> None:
        if not self.mlp_t and self.hidden_size % self.num_heads:
            raise HrmEdgeError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.pos_encodings not in ("rope", "learned", "none"):
            raise HrmEdgeError(f"pos_encodings must be 'rope', 'learned' or 'none', got {self.pos_encodings!r}")
        if min(self.L_layers, self.H_cycles, self.L_cycles, self.halt_max_steps) < 1:
            raise HrmEdgeError("L_layers, cycles and halt_max_steps must be >= 1")
        if self.num_puzzle_identifiers < 1:
            raise HrmEdgeError("num_puzzle_identifiers must be >= 1 (id 0 is the blank puzzle)")
        if self.forward_dtype not in FORWARD_DTYPES:
            raise HrmEdgeError(f"forward_dtype must be one of {', '.join(FORWARD_DTYPES)}, got {self.forward_dtype!r}")
        if self.puzzle_emb_ndim == 0 and self.puzzle_emb_len:
            raise HrmEdgeError(f"puzzle_emb_len {self.puzzle_emb_len} needs puzzle_emb_ndim > 0 (the reference "
                               "only prepends puzzle positions when it has a puzzle embedding)")
        if self.puzzle_emb_ndim > self.puzzle_emb_len * self.hidden_size:
            raise HrmEdgeError(f"puzzle_emb_ndim {self.puzzle_emb_ndim} does not fit in {self.puzzle_emb_len} "
                               f"positions of {self.hidden_size}")


@dataclass
class LiteConfig:
    """The first user's simplified HRM (`HierarchicalReasoningModule` of train_arc_full.py)."""

    family: ClassVar[str] = "lite"
    vocab_size: int = 12
    canvas: int = 30
    hidden_size: int = 256
    num_heads: int = 8
    H_layers: int = 4
    L_layers: int = 3
    ff_dim: int = 1024
    dropout: float = 0.1
    max_cycles: int = 8
    halt_threshold: float = 0.9
    max_len: int = 5000  # rows of the fixed sinusoidal table `pos_encoding.pe`
    layer_norm_eps: float = 1e-5

    @property
    def seq_len(self) -> int:
        return self.canvas * self.canvas

    @property
    def puzzle_emb_len(self) -> int:
        return 0

    @property
    def puzzle_emb_ndim(self) -> int:
        return 0

    @property
    def num_puzzle_identifiers(self) -> int:
        return 1

    @property
    def max_steps(self) -> int:
        return self.max_cycles

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise HrmEdgeError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.seq_len > self.max_len:
            raise HrmEdgeError(f"canvas {self.canvas} needs {self.seq_len} positions > max_len {self.max_len}")
        if not 0.0 < self.halt_threshold < 1.0:
            raise HrmEdgeError(f"halt_threshold must be in (0, 1), got {self.halt_threshold}")


HRMConfig = Union[ActV1Config, TrmConfig, LiteConfig]
FAMILIES: dict[str, type] = {"act-v1": ActV1Config, "trm": TrmConfig, "lite": LiteConfig}

PRESETS: dict[str, HRMConfig] = {
    # The first user's model: 5,667,597 trainable parameters.
    "lite-5.7m": LiteConfig(),
    # ACT v1 at the first user's budget: 5,970,434 dense parameters.
    "hrm-6m": ActV1Config(),
    # The paper's ARC model: 27,276,290 dense parameters.
    "hrm-27m": ActV1Config(hidden_size=512, num_heads=8, H_layers=4, L_layers=4, halt_max_steps=16,
                           puzzle_emb_ndim=512),
    # Test-size models on the full 30x30 canvas: tens of thousands of parameters.
    "tiny": ActV1Config(hidden_size=32, num_heads=2, expansion=2.0, H_layers=1, L_layers=1, H_cycles=2,
                        L_cycles=2, halt_max_steps=4, puzzle_emb_ndim=32, num_puzzle_identifiers=16),
    # TRM, the paper's ARC model (H_cycles 3, L_cycles 4 as its ARC command): 6,829,058 dense parameters.
    "trm-7m": TrmConfig(),
    # Test-size TRM: 48-dim puzzle vectors spread over 4 positions (exercises the reference's padding).
    "tiny-trm": TrmConfig(hidden_size=32, num_heads=2, expansion=2.0, L_layers=2, H_cycles=2, L_cycles=2,
                          halt_max_steps=4, puzzle_emb_ndim=48, puzzle_emb_len=4, num_puzzle_identifiers=16),
    "tiny-lite": LiteConfig(hidden_size=32, num_heads=2, H_layers=1, L_layers=1, ff_dim=64, max_cycles=4),
}


def preset(name: str) -> HRMConfig:
    """A fresh copy of a named preset (callers may mutate it)."""
    if name not in PRESETS:
        raise HrmEdgeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name])


def config_to_dict(cfg: HRMConfig) -> dict[str, Any]:
    """JSON-ready dict with the family name, so a config can be rebuilt from a manifest or sidecar."""
    return {"family": cfg.family, **dataclasses.asdict(cfg)}


def config_from_dict(data: dict[str, Any]) -> HRMConfig:
    """Inverse of `config_to_dict`; unknown keys are an error so a foreign dict never half-loads."""
    data = dict(data)
    family = data.pop("family", None)
    if family not in FAMILIES:
        raise HrmEdgeError(f"config has unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    cls = FAMILIES[family]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise HrmEdgeError(f"config for family {family!r} has unknown keys: {', '.join(unknown)}")
    cfg = cls(**data)
    cfg.validate()
    return cfg


__all__ = ["FORWARD_DTYPES", "ActV1Config", "TrmConfig", "LiteConfig", "HRMConfig", "PRESETS", "preset",
           "config_to_dict", "config_from_dict", "FAMILIES", "field"]
