"""lab5's gradients (torch.func.grad, as the step takes them) against central finite
differences in float64, for every variant's losses, the penalty's second-order path included."""

from functools import partial

import pytest
import torch
from torch.func import grad

import lab5
from harness.flags import VARIANTS

F64 = dict(dtype=torch.float64)
SMALL_G = (3, 8, 5, 2)  # any widths run through the same skeleton
SMALL_D = (2, 8, 5, 1)


def central_differences(f, params: dict, h: float = 1e-6) -> dict:
    """∂f/∂θ for every entry of every tensor, as (f(θ + h) − f(θ − h)) / 2h."""
    out = {}
    for k, v in params.items():
        g = torch.zeros_like(v)
        for i in range(v.numel()):
            plus = v.clone()
            minus = v.clone()
            plus.view(-1)[i] += h
            minus.view(-1)[i] -= h
            g.view(-1)[i] = (f({**params, k: plus}) - f({**params, k: minus})) / (2 * h)
        out[k] = g
    return out


def assert_matches_fd(analytic: dict, f, params: dict):
    numeric = central_differences(f, params)
    for k in params:
        torch.testing.assert_close(
            analytic[k], numeric[k], rtol=1e-6, atol=1e-8, msg=f"gradient of {k}"
        )


def penalty_only(d_params, real, fake, eps):
    return lab5.gradient_penalty(d_params, real, fake, eps)["penalty"]


@pytest.fixture
def setup():
    rng = torch.Generator().manual_seed(0)
    g = lab5.init_mlp(SMALL_G, rng, dtype=torch.float64)
    d = lab5.init_mlp(SMALL_D, rng, dtype=torch.float64)
    real = torch.rand(16, 2, generator=rng, **F64) * 1.4 - 0.1
    z = torch.randn(16, 3, generator=rng, **F64)
    eps = torch.rand(16, 1, generator=rng, **F64)
    return g, d, real, z, eps


@pytest.mark.parametrize("variant", VARIANTS)
def test_critic_loss_gradient(variant, setup):
    g, d, real, z, eps = setup
    fake = lab5.generator(g, z)
    hyper = {"gp_weight": torch.tensor(2.0, **F64)}  # a large weight so the penalty's term counts
    loss = partial(lab5.critic_loss, real=real, fake=fake, eps=eps, hyper=hyper, variant=variant)
    analytic, _ = grad(loss, has_aux=True)(d)
    assert_matches_fd(analytic, lambda p: loss(p)[0], d)


@pytest.mark.parametrize(
    "variant,gan_loss",
    [("gan", "minimax"), ("gan", "nonsaturating"), ("wgan", "minimax"), ("wgan_gp", "minimax")],
)
def test_generator_loss_gradient(variant, gan_loss, setup):
    g, d, _, z, _ = setup
    loss = partial(lab5.generator_loss, d_params=d, z=z, variant=variant, gan_loss=gan_loss)
    assert_matches_fd(grad(loss)(g), loss, g)


def test_penalty_gradient_is_second_order(setup):
    """The penalty's parameter gradient runs through ∇ₓ D: check it alone, with its own FD."""
    _, d, real, z, eps = setup
    fake = torch.rand(16, 2, **F64) * 1.4 - 0.1
    penalty = partial(penalty_only, real=real, fake=fake, eps=eps)
    assert penalty(d) > 0
    assert_matches_fd(grad(penalty)(d), penalty, d)


def test_input_gradient_used_by_the_penalty(setup):
    """∇ₓ D(x) per row, as gradient_penalty takes it, against finite differences in x."""
    _, d, real, _, _ = setup
    grad_x = grad(lambda x: lab5.critic(d, x).sum())(real)
    h = 1e-6
    for j in range(2):
        step = torch.zeros(2, **F64)
        step[j] = h
        numeric = (lab5.critic(d, real + step) - lab5.critic(d, real - step)) / (2 * h)
        torch.testing.assert_close(grad_x[:, j], numeric, rtol=1e-6, atol=1e-9)


def test_penalty_is_zero_for_a_unit_slope_critic():
    """A linear critic with ‖w‖ = 1 has ‖∇ₓ D‖ = 1 everywhere: the penalty must vanish; with
    ‖w‖ = 3 it must be (3 − 1)² = 4; the mean slope is 1 and 3."""
    w = torch.tensor([[0.6, 0.8]], **F64)
    eye = {
        "0.weight": torch.eye(2, **F64),
        "0.bias": torch.full((2,), 10.0, **F64),  # ReLU stays linear: x + 10 > 0
        "2.weight": torch.eye(2, **F64),
        "2.bias": torch.zeros(2, **F64),
        "4.bias": torch.zeros(1, **F64),
    }
    x = torch.rand(32, 2, **F64)
    y = torch.rand(32, 2, **F64)
    eps = torch.rand(32, 1, **F64)
    assert penalty_only({**eye, "4.weight": w}, x, y, eps).abs() < 1e-12
    torch.testing.assert_close(
        penalty_only({**eye, "4.weight": 3 * w}, x, y, eps), torch.tensor(4.0, **F64)
    )
    for scale in (1, 3):  # the slope the penalty pulls to 1, as the recorder logs it
        slope = lab5.gradient_penalty({**eye, "4.weight": scale * w}, x, y, eps)["slope"]
        torch.testing.assert_close(slope, torch.tensor(float(scale), **F64))
