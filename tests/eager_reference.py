"""An independent, eager implementation of lab5's training step, written the way the report
wrote it: nn.Sequential modules (with the Sigmoid for GAN), torch.optim optimisers, .backward(),
and autograd.grad(create_graph=True) for the gradient penalty.

The tests hold lab5's functional step to this reference from the same weights and noise; it
shares no code with lab5 beyond the config dict and the parameter dicts it starts from.
"""

from __future__ import annotations

import torch
from torch import nn


def sequential(params: dict, sigmoid: bool = False) -> nn.Sequential:
    """nn.Sequential(Linear, ReLU, ..., Linear[, Sigmoid]) holding a copy of params."""
    layers = []
    for i in range(len(params) // 2):
        fan_out, fan_in = params[f"{2 * i}.weight"].shape
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    module = nn.Sequential(*layers[:-1], *([nn.Sigmoid()] if sigmoid else []))
    module = module.to(params["0.weight"].device, params["0.weight"].dtype)
    module.load_state_dict({k: v.clone() for k, v in params.items()})
    return module


def optimizer(cfg: dict, parameters) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=cfg["lr"],
            momentum=cfg["momentum"],
            nesterov=cfg["nesterov"],
            weight_decay=cfg["weight_decay"],
        )
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(
            parameters,
            lr=cfg["lr"],
            alpha=cfg["rms_alpha"],
            eps=cfg["opt_eps"],
            momentum=cfg["momentum"],
            centered=cfg["centered"],
            weight_decay=cfg["weight_decay"],
        )
    return torch.optim.Adam(
        parameters,
        lr=cfg["lr"],
        betas=tuple(cfg["betas"]),
        eps=cfg["opt_eps"],
        weight_decay=cfg["weight_decay"],
    )


def make_reference(cfg: dict, g_params: dict, d_params: dict) -> dict:
    G = sequential(g_params)
    D = sequential(d_params, sigmoid=cfg["variant"] == "gan")
    return {
        "cfg": cfg,
        "G": G,
        "D": D,
        "opt_g": optimizer(cfg, G.parameters()),
        "opt_d": optimizer(cfg, D.parameters()),
    }


def input_slopes(D: nn.Module, real, fake, eps):
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad_x,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return grad_x.norm(2, dim=1)


def critic_step(ref: dict, real, fake, eps) -> dict:
    cfg = ref["cfg"]
    D = ref["D"]
    if cfg["variant"] == "gan":  # the report's objective, with logs of the sigmoid's output
        loss = -(torch.log(D(real)).mean() + torch.log(1 - D(fake)).mean())
    else:
        loss = -(D(real).mean() - D(fake).mean())
    metrics = {}
    if cfg["variant"] == "wgan_gp":
        slopes = input_slopes(D, real, fake, eps)
        metrics = {"penalty": ((slopes - 1) ** 2).mean(), "slope": slopes.mean()}
        loss = loss + cfg["gp_weight"] * metrics["penalty"]
    ref["opt_d"].zero_grad()
    loss.backward()
    ref["opt_d"].step()
    if cfg["variant"] == "wgan":
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-cfg["clip"], cfg["clip"])
    return {"d_loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}


def generator_step(ref: dict, z) -> torch.Tensor:
    cfg = ref["cfg"]
    D = ref["D"]
    score = D(ref["G"](z))
    if cfg["variant"] != "gan":
        loss = -score.mean()
    elif cfg.get("gan_loss", "minimax") == "minimax":
        loss = torch.log(1 - score).mean()
    else:
        loss = -torch.log(score).mean()
    ref["opt_g"].zero_grad()
    loss.backward()
    ref["opt_g"].step()
    return loss.detach()


def reference_step(ref: dict, batch: dict) -> dict:
    """One step in place: a generator update and n_critic critic updates, in cfg's order. The
    critic's fake batches come from the generator as it is when they are drawn; "simultaneous"
    draws them before the generator's update, as the report's code does."""
    n_critic = batch["real"].shape[0]

    def draw_fakes():
        with torch.no_grad():
            return [ref["G"](batch["z_critic"][k]) for k in range(n_critic)]

    def critic_steps(fakes):
        ms = [
            critic_step(ref, batch["real"][k], fakes[k], batch["eps"][k]) for k in range(n_critic)
        ]
        return {key: sum(m[key] for m in ms) / n_critic for key in ms[0]}

    order = ref["cfg"]["order"]
    if order == "d-first":
        critic_metrics = critic_steps(draw_fakes())
        g_loss = generator_step(ref, batch["z_gen"])
    elif order == "g-first":
        g_loss = generator_step(ref, batch["z_gen"])
        critic_metrics = critic_steps(draw_fakes())
    else:
        fakes = draw_fakes()
        g_loss = generator_step(ref, batch["z_gen"])
        critic_metrics = critic_steps(fakes)
    return {"g_loss": g_loss, **critic_metrics}
