"""The compiled epoch (on the CPU one scan over the epoch's steps, on CUDA a compiled step per
batch) and the compiled step against the uncompiled step-by-step epoch, for every variant,
order and optimiser (inductor has miscompiled optimiser arithmetic on CPU before), and no
recompiles after the first call.

The comparison runs in float64: in float32, RMSprop's g / sqrt(E[g²]) turns the last-bit
differences of a reordered sum into visible ones wherever a gradient is close to zero."""

import csv
import subprocess
import sys

import pytest
import torch
from torch.func import vmap

import harness.main
import lab5
from harness.flags import parse_config
from harness.main import main
from tests import ROOT

CASES = {
    "gan-rmsprop": ("gan", []),
    "wgan-rmsprop": ("wgan", ["--clip", "0.05", "--order", "simultaneous"]),
    "wgan_gp-rmsprop": ("wgan_gp", ["--gp-weight", "0.5", "--order", "d-first", "--ema", "0.9"]),
    "gan-sgd": (
        "gan",
        ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--weight-decay", "0.01"],
    ),
    "gan-adam": (
        "gan",
        ["--optimizer", "adam", "--weight-decay", "0.01", "--gan-loss", "nonsaturating"],
    ),
    "gan-rmsprop-options": ("gan", ["--momentum", "0.5", "--centered", "--weight-decay", "0.01"]),
}


def assert_same_trajectory(eager, compiled, state, batches: dict, steps: int) -> dict:
    """Run both steps side by side from `state` over `steps` of `batches`; every step's metrics
    and the final states must agree to float64 rounding. Returns the eager final state."""
    a = b = state
    for i in range(steps):
        batch = {k: v[i] for k, v in batches.items()}
        a, metrics_a = eager(a, batch)
        b, metrics_b = compiled(b, batch)
        torch.testing.assert_close(metrics_b, metrics_a, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
    return a


@pytest.mark.parametrize("case", CASES)
def test_compiled_step_matches_eager(case, device):
    variant, flags = CASES[case]
    cfg = parse_config(variant, ["--n-critic", "2", "--batch-size", "32", "--lr", "0.01", *flags])
    state = lab5.init_state(cfg, lab5.make_rng(0, "init"), device, torch.float64)
    rng = torch.Generator().manual_seed(0)
    batches = lab5.epoch_batches(torch.rand(1000, 2, generator=rng), cfg, 4, rng, device)
    batches = {k: v.double() for k, v in batches.items()}
    a = assert_same_trajectory(
        lab5.make_train_step(cfg),
        lab5.compile_step(lab5.make_train_step(cfg), device),
        state,
        batches,
        steps=4,
    )
    # not a comparison of two untouched states (a Wasserstein critic's last bias has zero gradient)
    assert all(
        not torch.equal(a[n][k], state[n][k])
        for n in ("g", "d")
        for k in state[n]
        if k.endswith("weight")
    )


# Every variant, every order, more than one critic update, an ensemble, codes and the
# optimisers apart from RMSprop: what the scanned epoch carries and stacks differs in each.
EPOCH_CASES = {
    "wgan_gp-g-first-ensemble-codes": ("wgan_gp", ["--seeds", "2", "--codes", "3"]),
    "wgan-d-first-n-critic-3": ("wgan", ["--order", "d-first", "--n-critic", "3"]),
    "gan-simultaneous-adam": ("gan", ["--order", "simultaneous", "--optimizer", "adam"]),
    "gan-sgd-nonsaturating": (
        "gan",
        ["--optimizer", "sgd", "--momentum", "0.9", "--gan-loss", "nonsaturating"],
    ),
}


def an_epoch(variant: str, flags: list, device, dtype) -> tuple:
    """An ensemble's step, state and one epoch of 5 steps' batches, in `dtype`."""
    cfg = parse_config(variant, ["--batch-size", "16", "--lr", "0.01", *flags])
    members = [{**cfg, "seed": cfg["seed"] + i} for i in range(cfg["seeds"])]
    state = lab5.init_members(members, device, dtype)
    rngs = [torch.Generator().manual_seed(i) for i in range(len(members))]
    points = torch.rand(16 * 5 * cfg["n_critic"], 2, generator=rngs[0])
    batches = lab5.members_batches(points, members, 5, rngs, device)
    return vmap(lab5.make_train_step(cfg)), state, lab5.tree_map(lambda t: t.to(dtype), batches)


@pytest.mark.parametrize("case", EPOCH_CASES)
def test_the_compiled_epoch_is_the_stepwise_epoch(case, device):
    """The epoch a run calls (compile_epoch) against the uncompiled one, step by step, from the
    same state and batches: the same parameters, optimiser states, averages and every step's
    losses to float64 rounding, where a reordered sum differs in its last bits."""
    step, state, batches = an_epoch(*EPOCH_CASES[case], device, torch.float64)
    expected = lab5.stepwise(step)(state, batches)
    got = lab5.compile_epoch(step, device)(state, batches)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert not torch.equal(expected[0]["g"]["0.weight"], state["g"]["0.weight"])  # it trained


def test_the_scanned_epoch_is_the_compiled_step_bit_for_bit():
    """The scan changes how the steps are called, not what a step computes: in float32, where a
    reordered sum would show, an epoch scanned is the compiled step called per batch, bit for
    bit (CPU: on CUDA compile_epoch is that per-step loop)."""
    step, state, batches = an_epoch("wgan_gp", ["--seeds", "2"], "cpu", torch.float32)
    scanned = lab5.compile_epoch(step)(state, batches)
    per_step = lab5.stepwise(lab5.compile_step(step))(state, batches)
    for got, expected in zip(*(torch.utils._pytree.tree_leaves(e) for e in (scanned, per_step))):
        assert torch.equal(got, expected)


def test_no_recompiles_across_epochs_and_a_new_learning_rate(device):
    cfg = parse_config("gan", ["--batch-size", "32", "--n-critic", "1"])
    state = lab5.init_members([cfg], device)
    one_epoch = lab5.compile_epoch(vmap(lab5.make_train_step(cfg)), device)
    train = torch.rand(200, 2)
    rng = torch.Generator().manual_seed(0)
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for epoch in range(3):
            if epoch == 2:
                state = lab5.with_hyper(state, [{"lr": 3e-5, "ema": 0.5}])
            batches = lab5.members_batches(train, [cfg], 6, [rng], device)
            state, _ = one_epoch(state, batches)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert state["g_opt"]["lr"].item() == pytest.approx(3e-5)


def test_a_normal_run_compiles_its_epoch_once(tmp_path, monkeypatch, device):
    """A whole compiled run, frames and distances included, with an ensemble of two and an
    annealed learning rate and clip (new tensors every epoch): one graph, with the guards
    checked on every call (which is what makes skipping them safe)."""
    monkeypatch.setattr(harness.main, "fast_calls", lambda step: step)
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        code = main(
            "wgan",
            [
                *(
                    "--train-size 640 --test-size 200 --batch-size 32 --epochs 3 --frame-every 2 "
                    "--seeds 2 --anneal lr=0.001,clip=0.1 --anneal-epochs 2 --device"
                ).split(),
                device.type,
                "--out",
                str(tmp_path / "run"),
            ],
        )
    assert code == 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_an_epoch_of_the_compiled_step_keeps_every_step_apart(device):
    """stepwise chains the compiled step (CUDA's epoch), each step taking the last one's state,
    and keeps every step's losses. On CUDA each step replays a CUDA graph into the same memory,
    which a step that did not copy its outputs out would overwrite. Against the eager step, in
    float64."""
    cfg = parse_config("wgan_gp", ["--batch-size", "32", "--n-critic", "1"])
    state = lab5.init_state(cfg, lab5.make_rng(0, "init"), device, torch.float64)
    batches = lab5.epoch_batches(
        torch.rand(400, 2), cfg, 5, torch.Generator().manual_seed(0), device
    )
    batches = {k: v.double() for k, v in batches.items()}
    step = lab5.make_train_step(cfg)
    first = [{k: v[:steps] for k, v in batches.items()} for steps in (4, 5)]
    eager = [lab5.stepwise(step)(state, b) for b in first]
    compiled = lab5.stepwise(lab5.compile_step(step, device))
    for b, expected in zip(first, eager):
        torch.testing.assert_close(compiled(state, b), expected, rtol=1e-9, atol=1e-12)
    losses = eager[1][1]["d_loss"]
    assert losses.shape == (5,) and len(set(losses.tolist())) == 5  # every step's own losses


@pytest.mark.parametrize("variant", ["gan", "wgan", "wgan_gp"])
def test_the_path_a_default_run_takes_gives_the_uncompiled_numbers(tmp_path, variant):
    """A run as `python variants/<variant>.py` runs it (its epoch compiled, warmed up, guards
    skipped: fast_calls) against the same run --no-compile: the same parameters and losses,
    to the float32 rounding of a reordered sum, which 3 epochs grow to about 3e-6 of a value (5e-5
    allowed); one epoch more or less moves them by far more."""
    flags = "--train-size 512 --test-size 128 --frame-every 0 --eval-every 1 --epochs".split()
    runs = {}
    for name, extra in (("compiled", ["3"]), ("eager", ["3", "--no-compile"])):
        runs[name] = tmp_path / name
        assert main(variant, [*flags, *extra, "--out", str(runs[name])]) == 0
    assert main(variant, [*flags, "2", "--no-compile", "--out", str(tmp_path / "shorter")]) == 0
    for network in ("generator.pt", "generator_raw.pt", "critic.pt"):
        compiled = torch.load(runs["compiled"] / network)
        eager = torch.load(runs["eager"] / network)
        torch.testing.assert_close(compiled, eager, rtol=5e-5, atol=1e-6)
        shorter = torch.load(tmp_path / "shorter" / network)
        assert any(not torch.allclose(shorter[k], eager[k], rtol=5e-4, atol=1e-5) for k in eager)
    # the continuous columns (a precision or recall counts points, and may tip by one)
    continuous = ("g_loss", "d_loss", "penalty", "slope", "energy", "w1")
    tables = [list(csv.DictReader(open(runs[name] / "metrics.csv"))) for name in runs]
    for compiled, eager in zip(*tables):
        for column in (c for c in continuous if eager.get(c)):
            assert float(compiled[column]) == pytest.approx(
                float(eager[column]), rel=5e-5, abs=1e-6
            )


DENORMAL = """
import torch, lab5
from harness.flags import parse_config
def product():
    return (torch.tensor(1e-30) * torch.tensor(1e-10)).item()  # 1e-40: a float32 denormal
def one_epoch(state, batches):
    print(product())
    return lab5.stepwise(torch.func.vmap(lab5.make_train_step(cfg)))(state, batches)
cfg = parse_config("wgan_gp", ["--batch-size", "16", "--epochs", "1"])
print(product())
for epoch in lab5.train([cfg], torch.rand(64, 2), one_epoch=one_epoch):
    print(product())
"""


def test_an_epoch_computes_denormal_floats_as_zero_and_only_an_epoch():
    """Trained weights and optimiser moments decay into denormal floats, which x86 computes about
    100 times slower; lab5.train flushes them to zero in its epochs (XLA does the same), and
    only there: SciPy's k-d tree crashes on them. In a process of its own, as the mode is a
    thread's."""
    out = subprocess.run(
        [sys.executable, "-c", DENORMAL], cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, during, after = map(float, out.stdout.split())
    assert before == pytest.approx(1e-40, rel=1e-2)
    assert during == 0.0
    assert after == before
