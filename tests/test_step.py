"""A whole training step against the eager nn.Module + torch.optim reference, and the compiled
step against the uncompiled one."""

import pytest
import torch

import lab5
from harness.flags import VARIANTS, parse_config
from tests.eager_reference import make_reference, reference_step

VARIANT_FLAGS = {"gan": [], "wgan": ["--clip", "0.05"], "wgan_gp": ["--gp-weight", "0.5"]}


def random_batch(cfg, steps, seed, dtype, device):
    rng = torch.Generator().manual_seed(seed)
    train = torch.rand(4096, 2, generator=rng, dtype=torch.float64) * 1.4 - 0.1
    batches = lab5.epoch_batches(train.to(dtype), cfg, steps, rng, device)
    return [{k: v[i].to(dtype) for k, v in batches.items()} for i in range(steps)]


def run_both(variant, flags, device, steps=3, dtype=torch.float64):
    cfg = parse_config(
        variant, ["--n-critic", "1", "--init", "torch", *VARIANT_FLAGS[variant], *flags]
    )
    state = lab5.init_state(cfg, lab5.make_rng(1, "init"), device, dtype)
    ref = make_reference(cfg, state["g"], state["d"])
    step = lab5.make_train_step(cfg)
    for batch in random_batch(cfg, steps, 7, dtype, device):
        state, metrics = step(state, batch)
        ref_metrics = reference_step(ref, batch)
        for k in ref_metrics:
            torch.testing.assert_close(metrics[k], ref_metrics[k].to(dtype), rtol=1e-10, atol=1e-12)
    return state, ref


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "flags",
    [
        ["--batch-size", "32"],
        ["--batch-size", "16", "--n-critic", "3", "--order", "d-first"],
        ["--batch-size", "16", "--n-critic", "2", "--order", "simultaneous"],
        (
            "--batch-size 16 --optimizer sgd --momentum 0.9 --nesterov --weight-decay 0.01 "
            "--lr 0.05"
        ).split(),
        "--batch-size 16 --n-critic 2 --optimizer adam --betas 0.5 0.9 --lr 0.01".split(),
        "--batch-size 16 --momentum 0.5 --centered --rms-alpha 0.9 --lr 0.01".split(),
        ["--batch-size", "16", "--hidden", "16,8,4", "--critic-hidden", "12", "--lr", "0.01"],
    ],
    ids=[
        "g-first",
        "d-first-n3",
        "simultaneous-n2",
        "sgd-nesterov",
        "adam-n2",
        "rmsprop-centered",
        "widths",
    ],
)
def test_step_matches_eager_reference(variant, flags, device):
    state, ref = run_both(variant, flags, device)
    for name, module in (("g", ref["G"]), ("d", ref["D"])):
        ref_params = dict(module.state_dict())
        for k, v in state[name].items():
            torch.testing.assert_close(v, ref_params[k], rtol=1e-10, atol=1e-12)


def test_nonsaturating_gan_step_matches_eager_reference(device):
    state, ref = run_both(
        "gan", ["--batch-size", "16", "--gan-loss", "nonsaturating", "--lr", "0.01"], device
    )
    for k, v in state["g"].items():
        torch.testing.assert_close(v, dict(ref["G"].state_dict())[k], rtol=1e-10, atol=1e-12)


def test_the_orders_differ(device):
    """The three orders are three different algorithms, not one under three names."""
    finals = [
        run_both("wgan_gp", ["--batch-size", "16", "--order", order, "--lr", "0.01"], device)[0][
            "g"
        ]["4.weight"]
        for order in ("g-first", "d-first", "simultaneous")
    ]
    assert not any(
        torch.allclose(a, b)
        for a, b in [(finals[0], finals[1]), (finals[0], finals[2]), (finals[1], finals[2])]
    )


def test_the_critic_can_start_from_another_initialisation():
    """--critic-init changes the critic's starting point and nothing else."""
    cfg = parse_config("wgan_gp", ["--init", "kaiming"])
    same = lab5.init_state(cfg, lab5.make_rng(1, "init"), "cpu")
    mixed = lab5.init_state({**cfg, "critic_init": "torch"}, lab5.make_rng(1, "init"), "cpu")
    assert all(torch.equal(same["g"][k], mixed["g"][k]) for k in same["g"])
    biases = [k for k in same["d"] if k.endswith("bias")]
    assert not any(same["d"][k].any() for k in biases)  # He: zero biases
    assert all(mixed["d"][k].abs().gt(0).all() for k in biases)  # nn.Linear's: drawn
    for k in (k for k in mixed["d"] if k.endswith("weight")):  # nn.Linear's bound 1/√fan_in
        assert mixed["d"][k].abs().max() <= mixed["d"][k].shape[1] ** -0.5
