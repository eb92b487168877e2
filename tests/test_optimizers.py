"""Each functional optimiser against torch.optim over several steps on the same gradients, for
every option it supports, including a learning rate changed between steps."""

import pytest
import torch

import lab5

OPTIONS = {
    "sgd": [
        dict(),
        dict(momentum=0.9),
        dict(momentum=0.9, nesterov=True),
        dict(weight_decay=0.1),
        dict(momentum=0.5, nesterov=True, weight_decay=0.01),
    ],
    "rmsprop": [
        dict(),
        dict(alpha=0.9),
        dict(eps=1e-3),
        dict(momentum=0.9),
        dict(centered=True),
        dict(weight_decay=0.1),
        dict(alpha=0.8, eps=1e-4, momentum=0.5, centered=True, weight_decay=0.01),
    ],
    "adam": [
        dict(),
        dict(betas=(0.5, 0.9)),
        dict(eps=1e-3),
        dict(weight_decay=0.1),
        dict(betas=(0.0, 0.99), eps=1e-6, weight_decay=0.01),
    ],
}
FUNCTIONAL = {"sgd": lab5.sgd, "rmsprop": lab5.rmsprop, "adam": lab5.adam}
TORCH = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}
CASES = [(name, opts) for name, all_opts in OPTIONS.items() for opts in all_opts]


@pytest.mark.parametrize(
    "name,opts", CASES, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in CASES]
)
def test_matches_torch_optim(name, opts):
    rng = torch.Generator().manual_seed(0)
    params = {
        "0.weight": torch.randn(5, 3, generator=rng, dtype=torch.float64),
        "0.bias": torch.randn(5, generator=rng, dtype=torch.float64),
    }
    reference = {k: v.clone().requires_grad_() for k, v in params.items()}
    torch_opt = TORCH[name](reference.values(), lr=0.01, **opts)
    opt = FUNCTIONAL[name](**opts)
    state = opt.init(params, 0.01)
    for step in range(8):
        if step == 5:  # a new learning rate mid-run: a new tensor in the state, as the loop does
            state = {**state, "lr": torch.tensor(0.003, dtype=torch.float64)}
            torch_opt.param_groups[0]["lr"] = 0.003
        grads = {
            k: torch.randn(v.shape, generator=rng, dtype=torch.float64) for k, v in params.items()
        }
        before = {k: v.clone() for k, v in params.items()}
        params, state = opt.update(grads, state, params)
        for k, p in reference.items():
            p.grad = grads[k].clone()
        torch_opt.step()
        for k, p in reference.items():
            torch.testing.assert_close(params[k], p.detach(), rtol=1e-12, atol=1e-14)
        assert not any(torch.equal(before[k], params[k]) for k in params)  # every step moved


def test_update_is_pure():
    """update returns new tensors and leaves its inputs as they were (no in-place mutation)."""
    params = {"w": torch.ones(3)}
    grads = {"w": torch.full((3,), 0.5)}
    for opt in (lab5.sgd(momentum=0.9), lab5.rmsprop(momentum=0.9, centered=True), lab5.adam()):
        state = opt.init(params, 0.1)
        copies = {
            k: v.clone() if torch.is_tensor(v) else {kk: vv.clone() for kk, vv in v.items()}
            for k, v in state.items()
        }
        new_params, new_state = opt.update(grads, state, params)
        assert torch.equal(params["w"], torch.ones(3)) and torch.equal(
            grads["w"], torch.full((3,), 0.5)
        )
        for k, v in state.items():
            if torch.is_tensor(v):
                assert torch.equal(v, copies[k])
            else:
                assert all(torch.equal(v[kk], copies[k][kk]) for kk in v)
        assert not torch.equal(new_params["w"], params["w"])


def test_lr_lives_in_the_state_with_the_params_dtype():
    params = {"w": torch.zeros(2, dtype=torch.float64)}
    for opt in (lab5.sgd(), lab5.rmsprop(), lab5.adam()):
        lr = opt.init(params, 1e-4)["lr"]
        assert lr.dtype == torch.float64 and lr.item() == 1e-4
