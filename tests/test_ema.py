"""The generator's exponential moving average (--ema, --ema-start) against torch's own EMA
(torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn) over a hand-written loop of
torch.optim steps: the same average at every step, from the same step, and nothing of it in
training."""

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import lab5
from harness.flags import parse_config
from harness.main import main
from tests.eager_reference import make_reference, reference_step, sequential
from tests.test_step import random_batch

STEPS_PER_EPOCH = 3
STEPS = 11


def config(*flags):
    cfg = parse_config("wgan_gp", ["--batch-size", "16", "--lr", "0.01", *flags])
    return {**cfg, "steps_per_epoch": STEPS_PER_EPOCH}


def trajectory(cfg, device, dtype=torch.float64) -> list[dict]:
    state = lab5.init_state(cfg, lab5.make_rng(2, "init"), device, dtype)
    step = lab5.make_train_step(cfg)
    states = []
    for batch in random_batch(cfg, STEPS, 5, dtype, device):
        state, _ = step(state, batch)
        states.append(state)
    return states


@pytest.mark.parametrize("decay,start", [(0.9, 1), (0.5, 2), (0.99, 3)])
def test_the_average_is_torch_s_ema_from_the_first_step_of_its_epoch(device, decay, start):
    """Before the first step of epoch --ema-start the average is the generator itself; from it,
    AveragedModel's EMA (which copies at its first update) — to float64 rounding, every step."""
    cfg = config("--ema", str(decay), "--ema-start", str(start))
    states = trajectory(cfg, device)
    first = (start - 1) * STEPS_PER_EPOCH + 1
    init = lab5.init_state(cfg, lab5.make_rng(2, "init"), device, torch.float64)
    ref = make_reference(cfg, init["g"], init["d"])
    average = AveragedModel(ref["G"], multi_avg_fn=get_ema_multi_avg_fn(decay))
    for t, (batch, state) in enumerate(
        zip(random_batch(cfg, STEPS, 5, torch.float64, device), states), start=1
    ):
        reference_step(ref, batch)
        if t >= first:
            average.update_parameters(ref["G"])
        expected = (average.module if t >= first else ref["G"]).state_dict()
        torch.testing.assert_close(state["ema"]["g"], dict(expected), rtol=1e-10, atol=1e-12)
        assert (t > first) == any(
            not torch.equal(state["ema"]["g"][k], state["g"][k]) for k in state["g"]
        )


def test_the_average_never_leaks_into_training(device):
    """With an average and without it, the networks and optimisers take the same steps, bit
    for bit; without one (--ema 0) the 'average' is the generator itself."""
    with_average, without = (trajectory(config("--ema", decay), device) for decay in ("0.9", "0"))
    for a, b in zip(with_average, without):
        for key in ("g", "d", "g_opt", "d_opt"):
            assert all(torch.equal(x, y) for x, y in zip(flat(a[key]), flat(b[key]))), key
        assert all(torch.equal(b["ema"]["g"][k], b["g"][k]) for k in b["g"])
    assert not torch.equal(
        with_average[-1]["ema"]["g"]["0.weight"], with_average[-1]["g"]["0.weight"]
    )


def flat(tree):
    return [x for v in tree.values() for x in (flat(v) if isinstance(v, dict) else [v])]


def test_a_run_samples_and_saves_the_average_and_keeps_the_raw_generator(tmp_path):
    out = tmp_path / "run"
    argv = [
        *(
            "--train-size 640 --test-size 200 --batch-size 32 --epochs 3 --frame-every 0 "
            "--no-compile --ema 0.9 --out"
        ).split(),
        str(out),
    ]
    assert main("wgan_gp", argv) == 0
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["state"]
    for name, params in (("generator.pt", saved["ema"]["g"]), ("generator_raw.pt", saved["g"])):
        loaded = torch.load(out / name)
        assert all(torch.equal(loaded[k], params[k][0]) for k in loaded), name
        sequential(loaded)  # loads into the plain nn.Sequential
    assert not torch.equal(
        torch.load(out / "generator.pt")["0.weight"],
        torch.load(out / "generator_raw.pt")["0.weight"],
    )
