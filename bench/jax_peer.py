"""The strongest peer: lab5's training written in JAX + optax, each epoch one jitted lax.scan (or,
with --loop, the jitted step in a Python loop). The same networks and initial parameters,
losses, RMSprop (alpha and eps as the flags say, eps outside the square root, as torch.optim),
penalty weight, clip, update order, critic updates, generator average, batch size, batches and
noise as `python variants/<variant>.py` with the same flags: the initial parameters and every
epoch's batches are lab5's own (lab5.init_state, lab5.epoch_batches), passed as NumPy arrays.
No frames, no metrics, no files. An optional benchmark dependency: `pip install -r
requirements-bench.txt`.

    python bench/jax_peer.py wgan_gp              # prints its compile and training seconds
    python bench/jax_peer.py wgan_gp --loop --batch-size 64 --order simultaneous
"""

from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np
import torch

import lab5
from errors import UserError
from harness.flags import parse_config
from harness.main import load_data, split_data

try:  # optional (requirements-bench.txt): without it this module imports, and says so when run
    import jax
    import jax.numpy as jnp
    import optax
except ModuleNotFoundError as missing:
    jax = jnp = optax = None
    MISSING = missing.name

# What the peer does not do: a run with any of these set to other than this is refused
SUPPORTED = {"optimizer": "rmsprop", "momentum": 0.0, "centered": False, "weight_decay": 0.0}
SUPPORTED |= {"codes": 0, "anneal": None, "cooldown": None, "seeds": 1, "vary": None}


def mlp(params: dict, x):
    """Linear, ReLU, ..., Linear: lab5's networks, weight (out × in) and bias per layer."""
    layers = len(params) // 2
    for i in range(layers):
        x = x @ params[f"{2 * i}.weight"].T + params[f"{2 * i}.bias"]
        x = jax.nn.relu(x) if i < layers - 1 else x
    return x


def critic(params: dict, x):
    return mlp(params, x)[..., 0]


def penalty_terms(d: dict, real, fake, eps) -> dict:
    """E[(‖∇ₓD(x̂)‖ − 1)²] on x̂ = εx + (1 − ε)G(z), and the mean slope."""
    x_hat = eps * real + (1 - eps) * fake
    grad_x = jax.grad(lambda x: critic(d, x).sum())(x_hat)
    slopes = jnp.linalg.norm(grad_x, axis=-1)
    return {"penalty": ((slopes - 1) ** 2).mean(), "slope": slopes.mean()}


def critic_loss(d: dict, real, fake, eps, gp_weight, variant: str):
    real_score = critic(d, real)
    fake_score = critic(d, fake)
    if variant == "gan":
        loss = -(jax.nn.log_sigmoid(real_score).mean() + jax.nn.log_sigmoid(-fake_score).mean())
    else:
        loss = fake_score.mean() - real_score.mean()
    aux = {}
    if variant == "wgan_gp":
        aux = penalty_terms(d, real, fake, eps)
        loss = loss + gp_weight * aux["penalty"]
    return loss, {"d_loss": loss, **aux}


def generator_loss(g: dict, d: dict, z, variant: str, gan_loss: str):
    fake_score = critic(d, mlp(g, z))
    if variant != "gan":
        return -fake_score.mean()
    if gan_loss == "minimax":
        return jax.nn.log_sigmoid(-fake_score).mean()
    return -jax.nn.log_sigmoid(fake_score).mean()


def optimizer(cfg: dict) -> optax.GradientTransformation:
    """RMSprop as torch.optim's: s ← αs + (1 − α)g², p ← p − lr·g / (√s + ε)."""
    return optax.rmsprop(cfg["lr"], decay=cfg["rms_alpha"], eps=cfg["opt_eps"], eps_in_sqrt=False)


def critic_updates(cfg: dict, opt, d_grad, state: dict, g: dict, batch: dict):
    """The critic after its n_critic updates against g, and their mean losses."""
    d = state["d"]
    d_opt = state["d_opt"]
    losses = []
    for k in range(cfg["n_critic"]):
        fake = mlp(g, batch["z_critic"][k])
        grads, aux = d_grad(d, batch["real"][k], fake, batch["eps"][k])
        updates, d_opt = opt.update(grads, d_opt, d)
        d = optax.apply_updates(d, updates)
        if cfg["variant"] == "wgan":
            d = jax.tree.map(lambda w: jnp.clip(w, -cfg["clip"], cfg["clip"]), d)
        losses.append(aux)
    return d, d_opt, jax.tree.map(lambda *m: sum(m) / len(m), *losses)


def generator_update(opt, g_grad, state: dict, d: dict, z):
    loss, grads = g_grad(state["g"], d, z)
    updates, g_opt = opt.update(grads, state["g_opt"], state["g"])
    return optax.apply_updates(state["g"], updates), g_opt, loss


def make_step(cfg: dict, steps_per_epoch: int):
    """The step (state, batch) -> (state, losses), as lab5.make_train_step's."""
    opt = optimizer(cfg)
    variant = cfg["variant"]
    d_loss = partial(critic_loss, gp_weight=cfg.get("gp_weight", 0.0), variant=variant)
    update_critic = partial(critic_updates, cfg, opt, jax.grad(d_loss, has_aux=True))
    g_loss = partial(generator_loss, variant=variant, gan_loss=cfg.get("gan_loss", "minimax"))
    update_generator = partial(generator_update, opt, jax.value_and_grad(g_loss))
    ema_first = (cfg["ema_start"] - 1) * steps_per_epoch + 1

    def step(state, batch):
        if cfg["order"] == "d-first":
            d, d_opt, aux = update_critic(state, state["g"], batch)
            g, g_opt, loss = update_generator(state, d, batch["z_gen"])
        else:
            g, g_opt, loss = update_generator(state, state["d"], batch["z_gen"])
            seen = g if cfg["order"] == "g-first" else state["g"]
            d, d_opt, aux = update_critic(state, seen, batch)
        count = state["ema"]["steps"] + 1
        decay = jnp.where(count > ema_first, cfg["ema"], 0.0)
        average = jax.tree.map(lambda a, p: decay * a + (1 - decay) * p, state["ema"]["g"], g)
        new = {"g": g, "d": d, "g_opt": g_opt, "d_opt": d_opt}
        return {**new, "ema": {"g": average, "steps": count}}, {"g_loss": loss, **aux}

    return step


def initial_state(cfg: dict, dtype=np.float32) -> dict:
    """lab5's initial parameters (lab5.init_state, the run's seed), as JAX arrays."""
    torch_state = lab5.init_state(cfg, lab5.make_rng(cfg["seed"], "init"), "cpu")
    g, d = ({k: jnp.asarray(v.numpy(), dtype) for k, v in torch_state[n].items()} for n in "gd")
    opt = optimizer(cfg)
    steps = jnp.zeros((), dtype)
    return {
        "g": g,
        "d": d,
        "g_opt": opt.init(g),
        "d_opt": opt.init(d),
        "ema": {"g": g, "steps": steps},
    }


def as_jax(batches: dict, dtype=np.float32) -> dict:
    return {k: jnp.asarray(v.numpy(), dtype) for k, v in batches.items()}


def scanned_epoch(step):
    """An epoch as one call: the step scanned over the epoch's batches, losses averaged."""

    def epoch(state, batches):
        state, losses = jax.lax.scan(step, state, batches)
        return state, jax.tree.map(lambda loss: loss.mean(0), losses)

    return jax.jit(epoch)


def looped_epoch(step, steps: int):
    """An epoch as `steps` calls of the jitted step from Python."""
    jitted = jax.jit(step)

    def epoch(state, batches):
        history = []
        for i in range(steps):
            state, losses = jitted(state, {k: v[i] for k, v in batches.items()})
            history.append(losses)
        return state, jax.tree.map(lambda *m: jnp.stack(m).mean(0), *history)

    return epoch


def train(cfg: dict, loop: bool) -> tuple[float, float]:
    """The run's training, timed: (seconds compiling, seconds training every epoch, batches
    drawn by lab5's streams included, as lab5's own training seconds include them)."""
    refused = {k: cfg[k] for k, v in SUPPORTED.items() if cfg.get(k, v) != v}
    if refused:
        raise UserError(f"the JAX peer does not do {refused}")
    points, _, source = load_data(cfg)
    data = torch.as_tensor(split_data(cfg, points, source)[0], dtype=torch.float32)
    steps = len(data) // (cfg["batch_size"] * cfg["n_critic"])
    step = make_step(cfg, steps)
    state = initial_state(cfg)
    rng = lab5.make_rng(cfg["seed"], "train")
    started = time.perf_counter()
    first = as_jax(lab5.epoch_batches(data, cfg, steps, lab5.make_rng(0, "train"), "cpu"))
    epoch = looped_epoch(step, steps) if loop else scanned_epoch(step)
    jax.block_until_ready(epoch(state, first))  # compiles, on throw-away noise
    compiled = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(cfg["epochs"]):
        batches = as_jax(lab5.epoch_batches(data, cfg, steps, rng, "cpu"))
        state, losses = epoch(state, batches)
    jax.block_until_ready(state)
    return compiled, time.perf_counter() - started


if __name__ == "__main__":
    if jax is None:
        print(
            f"error: the JAX peer needs {MISSING}: pip install -r requirements-bench.txt",
            file=sys.stderr,
        )
        sys.exit(2)
    loop = "--loop" in sys.argv
    argv = [a for a in sys.argv[2:] if a != "--loop"]
    try:
        seconds = train(parse_config(sys.argv[1], argv), loop)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(" ".join(f"{s:.2f}" for s in seconds))
