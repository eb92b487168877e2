"""Where a run trains and whether its step compiles, as a pure function of what PyTorch reports:
table-driven, with the arch lists PyTorch's own CUDA wheels report."""

import pytest

from errors import UserError
from harness.hardware import Gpu, arch_number, compiler_fix, fallback_line, place, runs_kernels

# torch.cuda.get_arch_list() of PyTorch's CUDA 12.6 and 12.8 wheels (2.7-2.9)
CU126 = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")
CU128 = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
GTX_1060 = "NVIDIA GeForce GTX 1060 6GB"
H100 = "NVIDIA H100 80GB HBM3"


def gpu(name=H100, capability=(9, 0), arch_list=CU128, cuda="12.8", triton=True) -> Gpu:
    return Gpu(name, capability, arch_list, cuda, triton)


@pytest.mark.parametrize(
    "asked,facts,device,compiles,note",
    [
        ("auto", None, "cpu", True, None),  # no CUDA
        ("cpu", gpu(), "cpu", True, None),  # asked for the CPU on a GPU machine
        ("auto", gpu(), "cuda", True, None),  # sm_90, Triton there
        ("cuda", gpu(), "cuda", True, None),
        ("auto", gpu(triton=False), "cuda", False, "no Triton to compile the step"),
        # a GTX 1060 with the CUDA 12.6 wheel: kernels, but Triton does not go below 7.0
        ("auto", gpu(GTX_1060, (6, 1), CU126, "12.6"), "cuda", False, "Triton does not compile"),
        # with the CUDA 12.8 wheel: no kernels for it, so the CPU, saying which wheel has them
        ("auto", gpu(GTX_1060, (6, 1), CU128), "cpu", True, "/whl/cu126; training on the CPU"),
        # a GPU newer than the wheel's newest binary kernels runs its PTX
        ("auto", gpu(capability=(12, 1), arch_list=("sm_90", "compute_90")), "cuda", True, None),
    ],
)
def test_the_device_and_the_compile_follow_from_what_pytorch_reports(
    asked, facts, device, compiles, note
):
    placement = place(asked, facts)
    assert (placement.device, placement.compiles) == (device, compiles)
    assert placement.note == note if note is None else note in placement.note


@pytest.mark.parametrize(
    "facts,message",
    [
        (None, "--device cuda: no CUDA device is available to this PyTorch"),
        (
            gpu(GTX_1060, (6, 1), CU128),
            "--device cuda: this PyTorch (CUDA 12.8) has no kernels for the NVIDIA GeForce GTX "
            "1060 6GB (sm_61): pip install torch --index-url https://download.pytorch.org/whl/cu126",
        ),
    ],
)
def test_device_cuda_where_it_cannot_run_is_one_line(facts, message):
    with pytest.raises(UserError) as error:
        place("cuda", facts)
    assert str(error.value) == message


def test_no_compile_asked_says_nothing_of_triton():
    placement = place("auto", gpu(triton=False), compile_asked=False)
    assert placement == ("cuda", True, None)


@pytest.mark.parametrize(
    "capability,arch_list,runs",
    [
        ((6, 1), ("sm_60",), True),  # same major, lower minor: binary compatible
        ((6, 0), ("sm_61",), False),  # a higher minor is not
        ((7, 5), ("sm_60", "sm_80"), False),  # another major is not
        ((8, 6), ("compute_80",), True),  # PTX for an older GPU is compiled for a newer one
        ((7, 5), ("compute_80",), False),  # but not for an older one
        ((9, 0), ("sm_90a",), True),
    ],
)
def test_kernels_follow_cuda_s_compatibility_rules(capability, arch_list, runs):
    assert runs_kernels(capability, arch_list) == runs


def test_arch_names_read_as_capabilities():
    assert [arch_number(a) for a in ("sm_61", "compute_120", "sm_90a", "sm_100f")] == [
        (6, 1),
        (12, 0),
        (9, 0),
        (10, 0),
    ]


@pytest.mark.parametrize(
    "device,platform,fix",
    [
        ("cpu", "linux", "apt install g++"),
        ("cpu", "darwin", "xcode-select --install"),
        ("cpu", "win32", "Visual Studio's Build Tools with the C++ workload"),
        ("cuda", "linux", "pip install triton"),
    ],
)
def test_a_failed_compile_says_what_failed_and_the_fix_for_this_os(device, platform, fix):
    reason = "InductorError: InvalidCxxCompiler: No working C++ compiler found in " + "x" * 80
    line = fallback_line(reason, device, platform)
    assert fix in compiler_fix(device, platform) and line.endswith(compiler_fix(device, platform))
    assert "(InductorError: InvalidCxxCompiler: No working C++ compiler" in line
    assert "training uncompiled" in line and "\n" not in line and "x" * 30 not in line
