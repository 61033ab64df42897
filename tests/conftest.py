"""Shared fixtures: tiny models with fixed seeds, and a runner for the CLI as a user would call it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def run_cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run `hrm-edge ARGS` in a subprocess (same interpreter) and capture its output."""
    return subprocess.run([sys.executable, "-m", "hrm_edge.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.fixture
def cli():
    return run_cli
