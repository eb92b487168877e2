"""Shared fixtures. LAB5_DEVICE=cuda runs the step, compile and ensemble tests on the GPU
(bench/cuda_check.sh does); without a CUDA device they are skipped, never failed."""

import os
import sys

import pytest
import torch

DEVICE = torch.device(os.environ.get("LAB5_DEVICE", "cpu"))


@pytest.fixture
def device() -> torch.device:
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("LAB5_DEVICE=cuda, but this PyTorch sees no CUDA device")
    return DEVICE


@pytest.fixture(autouse=True)
def default_dtype_is_left_alone():
    """A test that changes torch's global default dtype would silently change every later test."""
    yield
    assert torch.get_default_dtype() == torch.float32, "a test changed torch's default dtype"


# Windows has no process groups to signal (os.killpg), no SIGKILL and no pseudo-terminals
posix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals to a process group, or a pseudo-terminal"
)
