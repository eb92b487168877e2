"""Where a run trains and whether its step compiles: a pure function (place) of what PyTorch
reports about the machine (gpu_facts), and what to do when compiling fails on it anyway.

PyTorch's CUDA wheels carry kernels for some GPU generations only: its CUDA 12.8 and 13 builds
have none for the GTX 10xx series (Pascal, sm_60/61), its CUDA 12.6 build does. torch.compile
needs Triton on a GPU, and Triton needs a GPU of compute capability 7.0 or more; on the CPU it
needs a C++ compiler. What cannot run is said in one line, and the run goes on where it can.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import NamedTuple

import torch

from errors import UserError

TRITON_CAPABILITY = (7, 0)  # the oldest GPU Triton compiles for (inductor's own check)
WHEELS = "https://download.pytorch.org/whl"


class Gpu(NamedTuple):
    name: str  # as torch.cuda.get_device_name says it
    capability: tuple[int, int]  # compute capability: (6, 1) for a GTX 1060
    arch_list: tuple[
        str, ...
    ]  # what this PyTorch has kernels for: sm_XY (binary), compute_XY (PTX)
    cuda: str | None  # the CUDA version this PyTorch was built with
    triton: bool  # is Triton installed


class Placement(NamedTuple):
    device: str  # "cuda" or "cpu"
    compiles: bool  # can torch.compile build the step there
    note: str | None  # one line on why a GPU is not used, or not compiled for; None: nothing to say


def gpu_facts() -> Gpu | None:
    """What this PyTorch reports of the first CUDA device, or None where it sees none."""
    if not torch.cuda.is_available():
        return None
    return Gpu(
        name=torch.cuda.get_device_name(0),
        capability=tuple(torch.cuda.get_device_capability(0)),
        arch_list=tuple(torch.cuda.get_arch_list()),
        cuda=torch.version.cuda,
        triton=importlib.util.find_spec("triton") is not None,
    )


def arch_number(arch: str) -> tuple[int, int]:
    """'sm_61' -> (6, 1); 'compute_120' -> (12, 0); 'sm_90a' -> (9, 0)"""
    digits = arch.split("_", 1)[1].rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(digits[:-1]), int(digits[-1])


def runs_kernels(capability: tuple[int, int], arch_list: tuple[str, ...]) -> bool:
    """Binary kernels for sm_XY run on a GPU of major X and minor at least Y; PTX for compute_XY
    is compiled for any GPU of capability XY or more."""
    for arch in arch_list:
        number = arch_number(arch)
        if arch.startswith("sm_") and number[0] == capability[0] and number[1] <= capability[1]:
            return True
        if arch.startswith("compute_") and number <= capability:
            return True
    return False


def wheel_for(capability: tuple[int, int]) -> str:
    """Which PyTorch build has kernels for a GPU of this capability, as a command."""
    if capability < (5, 0):
        return "no current PyTorch build has kernels for it"
    index = "cu126" if capability < (7, 5) else "cu128"
    return f"pip install torch --index-url {WHEELS}/{index}"


def place(asked: str, gpu: Gpu | None, compile_asked: bool = True) -> Placement:
    """--device (auto, cpu or cuda) on this machine: auto is the GPU where this PyTorch runs
    kernels on it, else the CPU; cuda where it cannot is a one-line error. The step compiles on
    the CPU, and on a GPU where Triton is installed and supports it."""
    if asked == "cpu" or asked == "auto" and gpu is None:
        return Placement("cpu", True, None)
    if gpu is None:
        raise UserError("--device cuda: no CUDA device is available to this PyTorch")
    sm = "sm_{}{}".format(*gpu.capability)
    if not runs_kernels(gpu.capability, gpu.arch_list):
        line = (
            f"this PyTorch (CUDA {gpu.cuda}) has no kernels for the {gpu.name} ({sm}): "
            f"{wheel_for(gpu.capability)}"
        )
        if asked == "cuda":
            raise UserError(f"--device cuda: {line}")
        return Placement("cpu", True, f"{line}; training on the CPU")
    if compile_asked and not gpu.triton:
        return Placement(
            "cuda", False, "no Triton to compile the step: training uncompiled on the GPU"
        )
    if compile_asked and gpu.capability < TRITON_CAPABILITY:
        note = f"Triton does not compile for {sm} (7.0 or newer): training uncompiled on the GPU"
        return Placement("cuda", False, note)
    return Placement("cuda", True, None)


def compiler_fix(device: str, platform: str = sys.platform) -> str:
    """How to make torch.compile work where it failed, for this device and OS."""
    if device == "cuda":
        return "pip install triton (Linux), or a GPU of compute capability 7.0 or more"
    if platform == "win32":
        return "install Visual Studio's Build Tools with the C++ workload"
    if platform == "darwin":
        return "run xcode-select --install"
    return "install g++ (Debian/Ubuntu: apt install g++)"


def fallback_line(reason: str, device: str, platform: str = sys.platform) -> str:
    """What a run says when compiling its step failed (`reason`: the error's first line): what
    failed, that it goes on uncompiled and about how much slower (BENCHMARKS.md), and how to
    compile next time."""
    if len(reason) > 70:
        reason = reason[:67] + "..."
    return (
        f"compiling the step failed ({reason}); training uncompiled, about 10x slower; to "
        f"compile: {compiler_fix(device, platform)}"
    )
